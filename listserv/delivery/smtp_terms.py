"""What the SMTP client and its callers share: the code it gives a connection that broke,
its error, what a transaction learned of each recipient, and a message's DATA payload."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LOST = 451


class SmtpError(Exception):
    """The connection broke or the server said something a client cannot go on from."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass
class Result:
    """What the receiving server said of each recipient of one transaction."""

    accepted: list[str] = field(default_factory=list)
    temporary: dict[str, tuple[int, str]] = field(default_factory=dict)
    permanent: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The smarthost's last reply to a message it took ("250 2.0.0 Ok: queued as 4Xyz"), for
    # the log: it names the message in the smarthost's own log.
    reply: str = ""

    def fail(self, recipients: list[str], code: int, reason: str) -> Result:
        target = self.temporary if code < 500 else self.permanent
        for rcpt in recipients:
            target[rcpt] = (code, reason)
        return self

    def undecided(self, recipients: list[str]) -> list[str]:
        """Recipients with no definite answer: not refused, and the message not taken (a
        connection that breaks after some personalized copies were taken leaves only the
        others to send again)."""
        taken = set(self.accepted)
        return [
            r
            for r in recipients
            if r not in self.permanent and r not in self.temporary and r not in taken
        ]


def data_payload(raw: bytes) -> bytes:
    """The DATA payload of *raw*: CRLF line ends, dot-stuffed, ending with ``.``. (Made
    once per personalized copy, so the usual all-CRLF message takes no regular expression.)"""
    text = raw
    if raw.count(b"\n") != raw.count(b"\r\n"):
        text = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    text = text.replace(b"\r\n.", b"\r\n..")
    if text.startswith(b"."):
        text = b"." + text
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text + b".\r\n"
