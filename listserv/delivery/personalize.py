"""Personalized posts: one message per recipient, with its own envelope sender and links.

With ``[delivery] verp = true`` each member's copy goes out from
``NAME-bounces+local=domain+SIG@domain`` (VERP, signed: ``auth.verp``), so a bounce names the
member whatever its format.
With ``[web] base_url`` each copy also carries the member's own one-click unsubscribe link
(RFC 8058) in ``List-Unsubscribe`` and in the footer; that needs one copy per member, so a
base URL implies per-recipient sending, with VERP.

The post is stored once. Everything that is the same for every member (parsing, decorating,
serialising) is done once when it is queued; at send time a member's copy is made from bytes
only: the stored post with the member's List-Unsubscribe lines added and the member's link put
where the footer marker stands. No email parsing per recipient.

With ``[dkim]`` every copy is signed on its own (its List-Unsubscribe lines are signed too).
A post's copies differ only by the member's link, so the post is kept as one template with a
marker where the link goes, in the headers and in the footer: the signer parses, canonicalizes
and hashes it once (``Signer.copy_signer``) and a copy costs its RSA step and a few hundred
bytes of hashing. For SMTP the template is dot-stuffed once too, and a copy is its signature
and the template's parts joined by the link. The copies of a batch are made in the delivery
workers' pool of one thread per core (``worker.deliver_one``), which sign on every core at
once, OpenSSL releasing the GIL. With VERP but no links every copy is the same message, signed
once. Copies are not ARC-sealed: a seal per copy would triple the RSA work per member, and the
stored post carries our Authentication-Results either way.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cached_property

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.dkim import Signer
from listserv.auth.one_click import link_maker
from listserv.auth.verp import verp_address, verp_secret
from listserv.delivery.smtp_terms import data_payload
from listserv.mail.addresses import list_address
from listserv.mail.codec import to_bytes
from listserv.store.models import MailingList, Outgoing

# ``link → header lines`` put on top of a copy: its DKIM signature, or nothing.
Sign = Callable[[bytes], bytes]


def sends_personalized(app: App) -> bool:
    web = app.config.web
    return app.config.delivery.verp or bool(web and web.base_url)


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """(header block ending in CRLF, body) of a serialised message."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    return (head + b"\r\n", body) if sep else (raw, b"")


Decorate = Callable[[EmailMessage, str], EmailMessage]
# Bytes of personalized copies made at once (see ``Personalized.in_memory_bounded_groups``).
COPY_BYTES = 16 * 1024 * 1024


def new_marker() -> str:
    """A token standing where each member's link goes: no whitespace, nothing that any
    encoding or canonicalization changes, and in no real message."""
    return "lsvlink" + secrets.token_hex(12)


def prepare_post(message: EmailMessage, decorate: Decorate, one_click: bool) -> tuple[bytes, str]:
    """The stored form of a personalized post and its footer marker ("" when the footer
    cannot carry a link: no footer, or a body encoding that would hide the marker)."""
    if not one_click:
        return to_bytes(decorate(message, "")), ""
    marker = new_marker()
    fallback = copy.deepcopy(message)
    decorated = decorate(message, marker)
    # The member's own List-Unsubscribe lines are added at send time.
    del decorated["List-Unsubscribe"]
    raw = to_bytes(decorated)
    if marker.encode() in split_message(raw)[1]:
        return raw, marker
    plain = decorate(fallback, "")
    del plain["List-Unsubscribe"]
    return to_bytes(plain), ""


def splices_into_data(link: bytes) -> bool:
    """Whether *link*, put where the marker stands in the dot-stuffed template, gives the
    dot-stuffed copy: it neither ends a line nor starts one with a dot."""
    return bool(link) and not link.startswith(b".") and b"\r" not in link and b"\n" not in link


def spliced(head: bytes, link: bytes, parts: list[bytes]) -> bytes:
    """*head*, then *parts* joined by *link*: in one copy of the post, where
    ``head + link.join(parts)`` makes two."""
    pieces = [head, parts[0]]
    for part in parts[1:]:
        pieces.append(link)
        pieces.append(part)
    return b"".join(pieces)


@dataclass(frozen=True)
class Personalized:
    """A stored post ready to be copied per member: *template* is every copy with *marker*
    where the member's link goes (``personalized``)."""

    template: bytes
    marker: bytes
    list_name: str
    domain: str
    link: Callable[[str, str], str] | None
    sign: Sign
    verp_secret: bytes  # signs each copy's VERP envelope sender

    @cached_property
    def parts(self) -> list[bytes]:
        return self.template.split(self.marker)

    @cached_property
    def data_parts(self) -> list[bytes]:
        """The parts of the template as a DATA payload (``smtp_client.data_payload``)."""
        return data_payload(self.template).split(self.marker)

    @cached_property
    def same_for_all(self) -> tuple[bytes, bytes]:
        """The copy every member gets when there are no links (VERP only), signed once: as
        a message and as a DATA payload."""
        message = self.sign(b"") + self.template
        return message, data_payload(message)

    def message_for(self, address: str, dot_stuffed: bool = False) -> bytes:
        """*address*'s copy; a DATA payload when *dot_stuffed*."""
        if self.link is None:
            return self.same_for_all[dot_stuffed]
        link = self.link(self.list_name, address).encode("ascii")
        if not dot_stuffed:
            return spliced(self.sign(link), link, self.parts)
        if not splices_into_data(link):
            return data_payload(self.message_for(address))
        return spliced(self.sign(link), link, self.data_parts)

    def in_memory_bounded_groups(self, recipients: list[str]) -> list[list[str]]:
        """The recipients of a batch in groups whose copies together take about
        ``COPY_BYTES``: the copies of a large post are made and sent a group at a time, so
        memory does not grow with the post times the batch."""
        group = max(1, COPY_BYTES // (len(self.template) + 1024))
        return [recipients[i : i + group] for i in range(0, len(recipients), group)]

    def copies(
        self, recipients: list[str], dot_stuffed: bool = False
    ) -> list[tuple[str, str, bytes]]:
        """(VERP envelope sender, recipient, message or DATA payload) of every recipient's
        copy."""
        return [
            (
                verp_address(self.verp_secret, self.list_name, self.domain, rcpt),
                rcpt,
                self.message_for(rcpt, dot_stuffed),
            )
            for rcpt in recipients
        ]


def personalized(
    raw: bytes,
    footer_marker: str,
    list_name: str,
    domain: str,
    link: Callable[[str, str], str] | None,
    signer: Signer | None,
    verp_secret: bytes,
) -> Personalized:
    """What the copies of the stored post *raw* are made from. With links, each copy gets
    the member's own List-Unsubscribe lines (RFC 8058) after the stored header block, and
    its link where *footer_marker* stands; without them the marker, if any, is dropped."""
    marker = (footer_marker or new_marker()).encode()
    if link is None:
        template = raw.replace(marker, b"")
    else:
        head, body = split_message(raw)
        leave = list_address(list_name, domain, "leave").encode("ascii")
        template = (
            head
            + b"List-Unsubscribe: <"
            + marker
            + b">, <mailto:"
            + leave
            + b">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
            + body
        )
    return Personalized(
        template=template,
        marker=marker,
        list_name=list_name,
        domain=domain,
        link=link,
        sign=(lambda value: b"") if signer is None else signer.copy_signer(template, marker),
        verp_secret=verp_secret,
    )


# Built once: it is read for every message sent.
PAYLOAD = (
    select(Outgoing.raw, Outgoing.personalized, Outgoing.footer_marker, MailingList.name)
    .outerjoin(MailingList, MailingList.id == Outgoing.list_id)
    .where(Outgoing.id == bindparam("outgoing"))
)


def load_payload(app: App, session: Session, outgoing_id: int) -> bytes | Personalized:
    """The stored message, or for a personalized one what copies are made from."""
    row = session.connection().execute(PAYLOAD, {"outgoing": outgoing_id}).first()
    if row is None:
        return b""
    raw, personalized_post, marker, list_name = row
    if not personalized_post or list_name is None:
        return raw
    return personalized(
        raw,
        marker or "",
        list_name,
        app.domain,
        link_maker(app.config),
        app.signer,
        verp_secret(app.config),
    )
