"""mbox in and out: archives imported from Mailman 2 (pipermail ``NAME.mbox``) or Mailman 3
(HyperKitty export, also gzipped) and exported by month, in mboxrd quoting so any
"From " line in a body survives the round trip."""

from __future__ import annotations

import gzip
import mailbox
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from listserv.archive.render import hide_addresses_in_bytes
from listserv.store.models import ArchivedMessage

FROM_LINE = re.compile(rb"^(>*From )", re.M)


def mbox_entry(sender: str, date: datetime, raw: bytes) -> bytes:
    """One message of an mbox: the separator line, the message with "From " lines quoted,
    and a blank line."""
    stamp = date.strftime("%a %b %d %H:%M:%S %Y")
    body = raw.replace(b"\r\n", b"\n")
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {stamp}\n".encode() + FROM_LINE.sub(rb">\1", body) + b"\n"


def mbox_of(rows: Iterable[ArchivedMessage], hide: bool = False) -> Iterator[bytes]:
    """The posts still archived, as mbox; *hide* obfuscates every address (for visitors who
    may not see posters' addresses)."""
    for row in rows:
        if row.raw is None:
            continue
        raw = hide_addresses_in_bytes(row.raw) if hide else row.raw
        sender = (row.sender_obfuscated if hide else row.sender_address) or "MAILER-DAEMON"
        yield mbox_entry(sender, row.date, raw)


@contextmanager
def opened_mbox(path: Path) -> Iterator[mailbox.mbox]:
    """An mbox file, gunzipped to a scratch copy first when it is gzipped."""
    with path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if not gzipped:
        box = mailbox.mbox(path, create=False)
        try:
            yield box
        finally:
            box.close()
        return
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "archive.mbox"
        with gzip.open(path, "rb") as source, plain.open("wb") as target:
            shutil.copyfileobj(source, target)
        box = mailbox.mbox(plain, create=False)
        try:
            yield box
        finally:
            box.close()


def unquote_from(raw: bytes) -> bytes:
    """Undo mboxrd quoting of "From " lines."""
    return re.sub(rb"^>(>*From )", rb"\1", raw, flags=re.M)
