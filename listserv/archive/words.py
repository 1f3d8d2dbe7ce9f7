"""Words as the full-text index holds them: case-folded, without diacritics, stemmed (Russian
rules for Cyrillic words, English for Latin), so "экологии" finds "экология". The same function
reads posts at indexing and queries at search time, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import snowballstemmer

WORD = re.compile(r"\w+")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN = re.compile(r"[a-z]")
_stemmers = threading.local()  # snowball stemmers keep state between calls
# PostgreSQL's limit on a word of its index, in bytes: longer "words" (a dump of hex digits)
# are nothing a person searches for, and are left out on either database.
LONGEST = 2047


def _stemmer(language: str) -> snowballstemmer.stemmer:
    found = getattr(_stemmers, language, None)
    if found is None:
        found = snowballstemmer.stemmer(language)
        setattr(_stemmers, language, found)
    return found


def plain(word: str) -> str:
    """Case-folded, without accents (é → e, ё → е). Cyrillic letters are kept whole
    otherwise: й, ў and the Kazakh letters are letters of their own, not и or у with a mark."""
    letters = []
    for char in unicodedata.normalize("NFC", word.casefold()):
        if CYRILLIC.match(char):
            letters.append("е" if char == "ё" else char)
        else:
            decomposed = unicodedata.normalize("NFKD", char)
            letters.append("".join(c for c in decomposed if not unicodedata.combining(c)))
    return "".join(letters)


@lru_cache(maxsize=65536)  # the words of a language repeat: most are stemmed once
def stem(word: str) -> str:
    """The word as the index holds it; "" for a word too long to index."""
    word = plain(word)
    if CYRILLIC.search(word):
        word = _stemmer("russian").stemWord(word)
    elif LATIN.search(word):
        word = _stemmer("english").stemWord(word)
    return word if len(word.encode()) <= LONGEST else ""


def stems(text: str) -> list[str]:
    """The stemmed words of *text*, in order (underscores split words, as the indexes do)."""
    return [s for w in WORD.findall(text.replace("_", " ")) if (s := stem(w))]


def index_text(text: str) -> str:
    """The stemmed words of *text* joined by spaces (written out for speed: an import reads
    every word of every post)."""
    return " ".join(filter(None, map(stem, WORD.findall(text.replace("_", " ")))))
