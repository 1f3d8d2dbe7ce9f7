"""Which post answers which: pure functions over a post's threading headers.

A post's parent is the newest archived post it names (In-Reply-To, then References from the
newest), else the latest earlier post with the same subject (without reply markers and the
list prefix) within ``SUBJECT_WINDOW``. A thread is identified by its first post.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from listserv.mail.headers import RESPONSE_MARKERS

SUBJECT_WINDOW = timedelta(days=30)
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class Headers:
    message_id: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    subject_key: str = ""
    date: datetime | None = None


def message_ids(value: str | None) -> list[str]:
    """The Message-IDs in a header value, without <>."""
    return MESSAGE_ID.findall(value or "")


def subject_key(subject: str, prefix: str = "") -> str:
    """The subject a thread shares: no list prefix, no Re:/Fwd:/Ответ: markers, lower case."""
    text = " ".join(subject.split())
    prefix = prefix.strip()
    while True:
        before = text
        if prefix and text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].lstrip()
        text = RESPONSE_MARKERS.sub("", text).lstrip()
        if text == before:
            return text.casefold()


def named_parents(headers: Headers) -> list[str]:
    """The Message-IDs a post names as what it answers, the most direct first."""
    named = [headers.in_reply_to] if headers.in_reply_to else []
    named += reversed(headers.references)
    seen: list[str] = []
    for message_id in named:
        if message_id and message_id != headers.message_id and message_id not in seen:
            seen.append(message_id)
    return seen


def missing_parents(headers: Headers, archived: Container[str]) -> list[str]:
    """The Message-IDs a post names as its parents that are not *archived* (yet)."""
    return [message_id for message_id in named_parents(headers) if message_id not in archived]


def parent_by_subject(headers: Headers, earlier: Iterable[Headers]) -> str | None:
    """The latest of *earlier* posts with the same subject within the window (a post that
    answers this one by name cannot be its parent)."""
    if not headers.subject_key or headers.date is None:
        return None
    best: Headers | None = None
    for other in earlier:
        if (
            other.message_id != headers.message_id
            and headers.message_id not in named_parents(other)
            and other.subject_key == headers.subject_key
            and other.date is not None
            and headers.date - SUBJECT_WINDOW <= other.date <= headers.date
            and (best is None or best.date is None or other.date > best.date)
        ):
            best = other
    return best.message_id if best else None


def thread_all(posts: Iterable[Headers]) -> dict[str, tuple[str | None, str]]:
    """Parent and thread root of every post, from scratch (import, reindex): what archiving
    the posts one by one in date order gives, with late parents taken into account."""
    ordered = sorted(posts, key=lambda h: (h.date is None, h.date or datetime.min, h.message_id))
    known = {h.message_id: h for h in ordered}
    parents: dict[str, str | None] = {}
    by_subject: dict[str, list[Headers]] = {}
    for headers in ordered:
        parent = next((m for m in named_parents(headers) if m in known), None)
        if parent is None:
            parent = parent_by_subject(headers, by_subject.get(headers.subject_key, []))
        parents[headers.message_id] = parent
        by_subject.setdefault(headers.subject_key, []).append(headers)
    break_loops(parents, [h.message_id for h in ordered])
    return {m: (parents[m], root_of(m, parents)) for m in parents}


class Placing:
    """Parents of posts given one at a time, each among the posts given before it (an import,
    in the file's order): what ``thread_all`` over the same posts gives when every parent
    comes before its replies; ``thread_all`` corrects the rest afterwards."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.by_subject: dict[str, list[Headers]] = {}

    def add(self, headers: Headers) -> None:
        self.known.add(headers.message_id)
        self.by_subject.setdefault(headers.subject_key, []).append(headers)

    def parent(self, headers: Headers) -> str | None:
        named = next((m for m in named_parents(headers) if m in self.known), None)
        return named or parent_by_subject(headers, self.by_subject.get(headers.subject_key, []))


def break_loops(parents: dict[str, str | None], order: list[str]) -> None:
    """Posts naming each other (forged or broken headers) would make a loop, not a thread:
    the earliest post of a loop becomes a first post."""
    rank = {m: i for i, m in enumerate(order)}
    for start in order:
        path: list[str] = []
        current: str | None = start
        while current is not None and current not in path:
            path.append(current)
            current = parents.get(current)
        if current is not None:  # came back to a post on the path: a loop
            loop = path[path.index(current) :]
            parents[min(loop, key=lambda m: rank.get(m, 0))] = None


def root_of(message_id: str, parents: Mapping[str, str | None]) -> str:
    """Follow parents up to the thread's first post."""
    seen = {message_id}
    current = message_id
    while (parent := parents.get(current)) is not None and parent not in seen:
        seen.add(parent)
        current = parent
    return current
