"""What intake tells the operator: one log line per accepted message and per refusal, and
the counters ``/metrics`` shows. aiosmtpd's own line per command stays at DEBUG
(``listserv.logs``)."""

from __future__ import annotations

import logging
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, syntax
from prometheus_client import Counter

from listserv.intake.xforward import Client, peer_addr

log = logging.getLogger("listserv.intake")
ACCEPTED = Counter("listserv_intake_accepted", "Messages stored by intake, one per recipient")
REFUSED = Counter(
    "listserv_intake_refused", "Refusals (4xx and 5xx replies) given by intake", ["code"]
)


def accepted(ids: list[int], mail_from: str, rcpt_tos: list[str], client: Client) -> None:
    ACCEPTED.inc(len(ids))
    log.info(
        "accepted %s from <%s> for %s, client %s",
        ",".join(map(str, ids)),
        mail_from,
        ", ".join(rcpt_tos),
        client.describe(),
    )


class RefusalJournal:
    """A mixin for aiosmtpd's protocol class: every 4xx/5xx reply it sends is logged once,
    with the peer and the command it answers, and counted by code."""

    session: Any
    last_command = ""

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        if text[:1] in ("4", "5"):
            first = text.split("\r\n", 1)[0]
            REFUSED.labels(first[:3]).inc()
            log.info(
                "refused %s from %s: %s",
                self.last_command or "connection",
                peer_addr(self.session),
                first,
            )
        await super().push(status)  # type: ignore[misc]

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        self.last_command = f"MAIL {arg}"
        await super().smtp_MAIL(arg)  # type: ignore[misc]

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str) -> None:
        self.last_command = f"RCPT {arg}"
        await super().smtp_RCPT(arg)  # type: ignore[misc]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self.last_command = "DATA"
        await super().smtp_DATA(arg)  # type: ignore[misc]


def journaled(cls: type[SMTP]) -> type[SMTP]:
    """*cls* (SMTP or LMTP) that logs and counts its refusals."""
    return type(f"Journaled{cls.__name__}", (RefusalJournal, cls), {})
