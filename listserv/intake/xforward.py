"""Who really sent a message, when intake sits behind an MTA.

Behind Postfix or Exim every connection comes from the MTA (127.0.0.1), so SPF judged against
the peer would fail genuine mail. A relay in ``[server] trusted_relays`` may tell us the real
client with Postfix's XFORWARD command (``smtp_send_xforward_command`` /
``lmtp_send_xforward_command``): its ADDR, HELO and NAME are used for that transaction. When a
trusted relay sends no XFORWARD, the client is read from the ``Received:`` header it added on
top. From any other peer neither is believed: XFORWARD is refused and Received is ignored.

XFORWARD (www.postfix.org/XFORWARD_README.html): ``XFORWARD NAME=x ADDR=y HELO=z …``, values
in xtext (RFC 3461), ``[UNAVAILABLE]`` and ``[TEMPUNAVAIL]`` meaning unknown; it may be sent
several times before MAIL, and what it says holds until the transaction ends (after DATA,
RSET, a new EHLO).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import SMTP, Session, syntax

from listserv.intake.limits import HEADER_END

ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
ADVERTISED = "XFORWARD " + " ".join(ATTRIBUTES)
UNKNOWN = {"[UNAVAILABLE]", "[TEMPUNAVAIL]"}
XTEXT = re.compile(r"\+([0-9A-Fa-f]{2})")
# The parts of a Received: header's "from" clause, in Postfix's form
# ``from HELO (NAME [ADDR])`` and Exim's ``from NAME ([ADDR] helo=HELO)``.
RECEIVED_ADDR = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]", re.IGNORECASE)
RECEIVED_HELO = re.compile(r"\bhelo=([^\s)]+)")
RECEIVED_NAME = re.compile(r"\(([^\s()\[\]]+)\s+\[")


@dataclass(frozen=True)
class Client:
    """The SMTP client a message came from: its address, HELO name and host name."""

    addr: str | None = None
    helo: str | None = None
    name: str | None = None

    def __bool__(self) -> bool:
        return self.addr is not None

    def describe(self) -> str:
        """``name[addr]`` as MTAs log a client."""
        return f"{self.name or 'unknown'}[{self.addr or 'unknown'}]"


class Relays:
    """The networks of ``[server] trusted_relays``."""

    def __init__(self, networks: list[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trust(self, addr: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(addr or "")
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


def xtext_decode(value: str) -> str:
    return XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)


def parse_xforward(arg: str) -> dict[str, str]:
    """``NAME=x ADDR=y`` as {attribute: value}; ValueError for anything else."""
    attributes: dict[str, str] = {}
    for item in arg.split():
        name, sep, value = item.partition("=")
        name = name.upper()
        if not sep or name not in ATTRIBUTES:
            raise ValueError(item)
        attributes[name] = xtext_decode(value)
    if not attributes:
        raise ValueError(arg)
    return attributes


def known(value: str | None) -> str | None:
    return None if value is None or value.upper() in UNKNOWN else value


def ip_of(value: str | None) -> str | None:
    """A client address as XFORWARD (``IPV6:2001:db8::1``) or Received gives it, checked."""
    value = known(value)
    if value is None:
        return None
    if value[:5].upper() == "IPV6:":
        value = value[5:]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def forwarded_client(current: Client | None, attributes: dict[str, str]) -> Client:
    """The client after one more XFORWARD command (later ones add to earlier ones)."""
    client = current or Client()
    if "ADDR" in attributes:
        client = replace(client, addr=ip_of(attributes["ADDR"]))
    if "HELO" in attributes:
        client = replace(client, helo=known(attributes["HELO"]))
    if "NAME" in attributes:
        client = replace(client, name=known(attributes["NAME"]))
    return client


def received_client(raw: bytes) -> Client:
    """The client named by the topmost Received: header (added by the relay in front of us);
    an empty Client when it names none (mail submitted on the relay's own machine)."""
    # The header block only: the parser's headers end at or before its empty line, and the
    # body would cost a third of the parse.
    end = HEADER_END.search(raw)
    headers = BytesHeaderParser().parsebytes(raw[: end.end()] if end else raw)
    value = " ".join(str(headers.get("Received", "")).split())
    clause = value.split(" by ", 1)[0] if value.lower().startswith("from ") else ""
    addr = RECEIVED_ADDR.search(clause)
    if not clause or addr is None:
        return Client()
    first = clause.split()[1]
    first = None if first.startswith(("[", "(")) else first
    helo = RECEIVED_HELO.search(clause)
    if helo is not None:  # Exim: the first word is the client's name
        return Client(ip_of(addr.group(1)), helo.group(1), first)
    # Postfix: the first word is the HELO name, the client's name is in the parentheses.
    name = RECEIVED_NAME.search(clause)
    known_name = name.group(1) if name and name.group(1) != "unknown" else None
    return Client(ip_of(addr.group(1)), first, known_name)


def peer_addr(session: Session) -> str | None:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def client_of(session: Session, raw: bytes, relays: Relays) -> Client:
    """Who sent the message of this transaction: the peer itself, or, when the peer is a
    trusted relay, the client its XFORWARD or its Received: header names."""
    direct = Client(peer_addr(session), session.host_name or None)
    if not relays.trust(direct.addr):
        return direct
    # No client address forwarded (SOURCE=LOCAL) and no "from" clause in Received: the
    # relay's own mail (its bounces, a local submission), judged as the relay's.
    return getattr(session, "xforward", None) or received_client(raw) or direct


def reset(session: Session) -> None:
    """The transaction is over: what XFORWARD said no longer holds."""
    session.xforward = None  # type: ignore[attr-defined]


def advertise(session: Session, responses: list[str], relays: Relays) -> list[str]:
    """The EHLO/LHLO reply, offering XFORWARD to trusted relays only."""
    if relays.trust(peer_addr(session)):
        responses.insert(len(responses) - 1, f"250-{ADVERTISED}")
    return responses


class XForwardCommand:
    """The XFORWARD command for an aiosmtpd SMTP or LMTP protocol class (a mixin)."""

    session: Session
    envelope: Any
    event_handler: Any

    @syntax("XFORWARD attribute=value...")
    async def smtp_XFORWARD(self, arg: str) -> None:
        await self.push(self.xforward_reply(arg))  # type: ignore[attr-defined]

    def xforward_reply(self, arg: str) -> str:
        relays: Relays = self.event_handler.relays
        if not relays.trust(peer_addr(self.session)):
            return "550 5.7.0 Error: insufficient authorization"
        if self.envelope.mail_from is not None:
            return "503 5.5.1 Error: MAIL transaction in progress"
        try:
            attributes = parse_xforward(arg or "")
        except ValueError:
            return "501 5.5.4 Syntax: XFORWARD attribute=value..."
        current = getattr(self.session, "xforward", None)
        self.session.xforward = forwarded_client(current, attributes)  # type: ignore[attr-defined]
        return "250 2.0.0 Ok"

    def _set_post_data_state(self) -> None:
        # aiosmtpd's one place where a transaction ends (after DATA, RSET and EHLO, whatever
        # the outcome): what XFORWARD said held for that transaction only.
        if self.session is not None:
            reset(self.session)
        super()._set_post_data_state()  # type: ignore[misc]


def with_xforward(cls: type[SMTP]) -> type[SMTP]:
    """*cls* (SMTP or LMTP) that also takes XFORWARD."""
    return type(f"XForward{cls.__name__}", (XForwardCommand, cls), {})
