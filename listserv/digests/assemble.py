"""Putting an issue together so that one bad post cannot stop a list's digests: a post the
builders cannot take (nested too deep for the serialiser, a part no codec reads) is set
aside, named in the log, and the issue goes out without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser

from listserv.app import App
from listserv.digests.format import Issue
from listserv.digests.html import html_digest
from listserv.digests.mime import mime_digest
from listserv.digests.plain import plain_digest
from listserv.mail.codec import parse, to_bytes
from listserv.mail.templates import Templates
from listserv.store.lists import MailList
from listserv.store.models import DigestEntry

log = logging.getLogger(__name__)
# Which builder serves each digest delivery mode of members.
BUILDERS: dict[str, Callable[[Issue, Templates], EmailMessage]] = {
    "digest": mime_digest,
    "plain": plain_digest,
    "html": html_digest,
}


def assemble(
    app: App, mlist: MailList, volume: int, number: int, now: datetime, entries: list[DigestEntry]
) -> tuple[dict[str, bytes], list[DigestEntry]]:
    """The issue in every digest format, and the entries set aside; no formats when every
    entry was set aside."""
    try:
        return _build(app, mlist, volume, number, now, entries), []
    except Exception:  # RecursionError included: the issue is looked at post by post
        pass
    good, bad = [], []
    for entry in entries:
        try:
            _build(app, mlist, volume, number, now, [entry])
            good.append(entry)
        except Exception as error:
            log.error(
                "digest of %s: post %s (message %s) set aside, the issue goes out without it: %s",
                mlist.name,
                _message_id(entry.raw),
                entry.message_id,
                f"{type(error).__name__}: {error}"[:300],
            )
            bad.append(entry)
    return (_build(app, mlist, volume, number, now, good) if good else {}), bad


def _build(
    app: App, mlist: MailList, volume: int, number: int, now: datetime, entries: list[DigestEntry]
) -> dict[str, bytes]:
    issue = Issue(mlist, volume, number, now, [parse(entry.raw) for entry in entries])
    return {mode: to_bytes(build(issue, app.templates)) for mode, build in BUILDERS.items()}


def _message_id(raw: bytes) -> str:
    headers = BytesHeaderParser().parsebytes(raw)
    return str(headers.get("Message-ID", "")).strip() or "without Message-ID"
