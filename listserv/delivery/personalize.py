"""Personalized posts: one message per recipient, with its own envelope sender and links.

With ``[delivery] verp = true`` each member's copy goes out from
``NAME-bounces+local=domain@domain`` (VERP), so a bounce names the member whatever its format.
With ``[web] base_url`` each copy also carries the member's own one-click unsubscribe link
(RFC 8058) in ``List-Unsubscribe`` and in the footer; that needs one copy per member, so a
base URL implies per-recipient sending, with VERP.

The post is stored once. Everything that is the same for every member (parsing, decorating,
serialising) is done once when it is queued; at send time a member's copy is made from bytes
only: the stored header block, the member's header lines, and the body with the member's
link put where the footer marker stands. No email parsing per recipient.

With ``[dkim]`` every copy is signed on its own (its List-Unsubscribe lines are signed too).
The footer link makes every body different, yet its body hash costs next to nothing: the hash
state of the body up to the link is computed once per post and only the link and what follows
it are hashed per copy (``dkim.body_hasher``); the common head is parsed and canonicalized
once too (``Signer.copy_signer``), which leaves the RSA step as most of the cost of a copy.
The copies of a batch are made in a worker thread (``delivery.deliver_one``), and the
delivery workers' threads sign on both cores at once, OpenSSL releasing the GIL. With VERP
but no links every copy is the same message, signed once.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cached_property

from sqlalchemy import select

from listserv.app import App
from listserv.auth.dkim import body_hasher
from listserv.auth.one_click import link_maker
from listserv.mail.addresses import ATOM, list_address, normalize
from listserv.mail.codec import to_bytes
from listserv.store.models import MailingList, Outgoing

# The header lines put on top of a finished copy, given its own header lines and the link its
# body carries (b"" for none): the place for its DKIM signature.
Finish = Callable[[bytes, bytes], bytes]


def finisher(app: App, head: bytes, body: list[bytes], marker: bytes) -> Finish:
    """What each personalized copy of the post made of *head* and *body* split at *marker*
    gets last: its own DKIM signature. Copies are not ARC-sealed: a seal per copy would
    triple the RSA work per member, and the stored post carries our Authentication-Results
    either way."""
    if app.signer is None:
        return lambda lines, link: b""
    signature = app.signer.copy_signer(head)
    body_hash = body_hasher(body, marker)
    return lambda lines, link: signature(lines, body_hash(link))


def sends_personalized(app: App) -> bool:
    web = app.config.web
    return app.config.delivery.verp or bool(web and web.base_url)


def verp_address(list_name: str, domain: str, member: str) -> str:
    """``NAME-bounces+local=domain@domain``; the plain bounce address for a member whose
    local part cannot be carried (quoted)."""
    local, _, member_domain = member.rpartition("@")
    if not ATOM.match(local):
        return list_address(list_name, domain, "bounces")
    return list_address(list_name, domain, "bounces", f"{local}={member_domain}")


def verp_decode(detail: str) -> str | None:
    """The member address a VERP detail (``local=domain``) stands for."""
    local, sep, domain = detail.rpartition("=")
    if not sep:
        return None
    try:
        return normalize(f"{local}@{domain}")
    except ValueError:
        return None


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """(header block ending in CRLF, body) of a serialised message."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    return (head + b"\r\n", body) if sep else (raw, b"")


Decorate = Callable[[EmailMessage, str], EmailMessage]


def prepare_post(message: EmailMessage, decorate: Decorate, one_click: bool) -> tuple[bytes, str]:
    """The stored form of a personalized post and its footer marker ("" when the footer
    cannot carry a link: no footer, or a body encoding that would hide the marker)."""
    if not one_click:
        return to_bytes(decorate(message, "")), ""
    marker = "lsvlink" + secrets.token_hex(12)
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


@dataclass(frozen=True)
class Personalized:
    """A stored post ready to be copied per member."""

    head: bytes
    body: list[bytes]  # the body split at the footer marker
    list_name: str
    domain: str
    link: Callable[[str, str], str] | None
    finish: Finish

    @cached_property
    def same_for_all(self) -> bytes:
        """The copy every member gets when there are no links (VERP only): signed once."""
        return self.finish(b"", b"") + self.head + b"\r\n" + b"".join(self.body)

    def message_for(self, address: str) -> bytes:
        if self.link is None:
            return self.same_for_all
        url = self.link(self.list_name, address).encode("ascii")
        leave = list_address(self.list_name, self.domain, "leave").encode("ascii")
        headers = (
            b"List-Unsubscribe: <" + url + b">, <mailto:" + leave + b">\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        )
        return self.finish(headers, url) + self.head + headers + b"\r\n" + url.join(self.body)

    def copies(self, recipients: list[str]) -> list[tuple[str, str, bytes]]:
        """(VERP envelope sender, recipient, message) of every recipient's copy."""
        return [
            (verp_address(self.list_name, self.domain, rcpt), rcpt, self.message_for(rcpt))
            for rcpt in recipients
        ]


def load_payload(app: App, outgoing_id: int) -> bytes | Personalized:
    """The stored message, or for a personalized one what copies are made from."""
    with app.sessions() as session:
        row = session.execute(
            select(Outgoing.raw, Outgoing.personalized, Outgoing.footer_marker, MailingList.name)
            .outerjoin(MailingList, MailingList.id == Outgoing.list_id)
            .where(Outgoing.id == outgoing_id)
        ).one_or_none()
    if row is None:
        return b""
    raw, personalized, marker, list_name = row
    if not personalized or list_name is None:
        return raw
    head, body = split_message(raw)
    parts = body.split(marker.encode()) if marker else [body]
    return Personalized(
        head=head,
        body=parts,
        list_name=list_name,
        domain=app.domain,
        link=link_maker(app.config),
        finish=finisher(app, head, parts, marker.encode()),
    )
