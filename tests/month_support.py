"""A month of an archive longer than a page, as an mbox for ``listserv archive import``:
posting a few hundred posts by SMTP would take too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import DOMAIN

from listserv.archive.mbox import mbox_entry
from listserv.web.archive import PAGE_SIZE

THREADS = PAGE_SIZE + 15  # two pages of threads; each has a post and a reply: three by date
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def raw_post(number: int, sender: str, subject: str, date: datetime, reply_to: str = "") -> bytes:
    headers = [
        f"From: {sender}",
        f"To: test@{DOMAIN}",
        f"Subject: {subject}",
        f"Message-ID: <{number}@month.example>",
        f"Date: {date:%a, %d %b %Y %H:%M:%S +0000}",
        *([f"In-Reply-To: <{reply_to}>"] if reply_to else []),
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\n".join(headers) + "\n\nТекст письма.\n").encode()


def month_mbox(path: Path) -> Path:
    """Thread k starts at START + 10k minutes and is answered 5 minutes later: the threads,
    most recently active first, are THREADS-1 … 0. Thread 113 starts with the only post of
    gone@x.example."""
    with path.open("wb") as f:
        for k in range(THREADS):
            first = START + timedelta(minutes=10 * k)
            sender = "Гость <gone@x.example>" if k == 113 else f"Участник {k} <m{k}@x.example>"
            posts = [
                raw_post(2 * k, sender, f"Тема {k:03}", first),
                raw_post(
                    2 * k + 1,
                    "Ответчик <answers@y.example>",
                    f"Re: Тема {k:03}",
                    first + timedelta(minutes=5),
                    reply_to=f"{2 * k}@month.example",
                ),
            ]
            for post in posts:
                f.write(mbox_entry("x@example.org", first, post))
    return path
