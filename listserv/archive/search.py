"""Full-text search over archived posts, behind one function for both databases: SQLite's
FTS5 table ``archive_fts`` or PostgreSQL's GIN-indexed ``words_vector``, generated as
``words::tsvector`` (migration 0015_archive_vector). Both hold words stemmed by
archive/words.py, and the query is stemmed the same way, so both find the same posts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape
from sqlalchemy import cast, column, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from listserv.archive.words import stem, stems
from listserv.store.models import ArchivedMessage, ArchiveSearchText

FTS = table("archive_fts", column("rowid"))
SNIPPET_WORDS = 30


@dataclass(frozen=True)
class Filters:
    list_ids: list[int]
    sender: str = ""
    after: datetime | None = None
    before: datetime | None = None


def search(
    session: Session, query: str, filters: Filters, limit: int = 50
) -> list[ArchivedMessage]:
    """Archived posts of the given lists holding every word of *query* (stemmed), the last
    archived first; removed posts have no words and are never found. In the order of the
    index (its rowid, the post's id) both databases stop at *limit* without reading every
    match, which a word in half the archive would make slow (or ranking every match)."""
    words = stems(query)
    if not words or not filters.list_ids:
        return []
    statement = select(ArchivedMessage).join(
        ArchiveSearchText, ArchiveSearchText.archived_id == ArchivedMessage.id
    )
    if session.get_bind().dialect.name == "sqlite":
        # Quoted, each word is a plain term (the stemmer's output has no quotes).
        match = " ".join(f'"{w}"' for w in words)
        statement = (
            statement.join(FTS, FTS.c.rowid == ArchiveSearchText.archived_id)
            .where(text("archive_fts MATCH :match").bindparams(match=match))
            .order_by(FTS.c.rowid.desc())
        )
    else:
        vector = literal_column("archive_search.words_vector")  # generated, GIN-indexed
        wanted = cast(all_of(words), TSQUERY)
        statement = statement.where(vector.op("@@")(wanted)).order_by(
            ArchiveSearchText.archived_id.desc()
        )
    statement = statement.where(ArchiveSearchText.list_id.in_(filters.list_ids))
    if filters.sender:
        pattern = f"%{filters.sender.strip()}%"
        statement = statement.where(
            ArchivedMessage.sender_name.ilike(pattern)
            | (ArchivedMessage.sender_obfuscated == filters.sender.strip())
        )
    if filters.after is not None:
        statement = statement.where(ArchivedMessage.date >= filters.after)
    if filters.before is not None:
        statement = statement.where(ArchivedMessage.date < filters.before)
    return list(session.scalars(statement.limit(limit)))


def all_of(words: list[str]) -> str:
    """A tsquery matching the vectors holding every word, each word a lexeme as it is (the
    vector holds them unparsed: ``words::tsvector``, split at spaces only, which a few
    compatibility letters turn into); quoted, as tsquery input reads them."""
    lexemes = " ".join(words).split()
    return " & ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in lexemes)


def highlight(content: str, query: str, width: int = SNIPPET_WORDS) -> Markup:
    """A stretch of *content* around the first word matching *query*, escaped, with the
    matching words in <mark>."""
    wanted = set(stems(query))
    tokens = re.split(r"(\w+)", content)  # odd positions are words
    words = list(range(1, len(tokens), 2))
    first = next((n for n, i in enumerate(words) if stem(tokens[i]) in wanted), 0)
    start = max(0, first - width // 3)
    shown = words[start : start + width]
    if not shown:
        return Markup("")
    out = ["… " if start else ""]
    first_token = shown[0] if start else 0
    last_token = shown[-1] if shown[-1] < words[-1] else len(tokens) - 1
    for i in range(first_token, last_token + 1):
        piece = tokens[i]
        if i % 2 and stem(piece) in wanted:
            out.append(f"<mark>{escape(piece)}</mark>")
        else:
            out.append(str(escape(re.sub(r"\s+", " ", piece))))
    if shown[-1] < words[-1]:
        out.append(" …")
    return Markup("".join(out))
