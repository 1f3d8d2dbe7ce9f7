"""Feedback-loop reports (ARF, RFC 5965): a member marked list mail as spam.

Providers (Mail.ru, Yahoo, Outlook.com…) send them to the bounce address as multipart/report
with ``report-type=feedback-report``. Anyone can send one, with a null sender, naming anyone,
so a complaint is acted on only when it carries proof that we issued it: the signed VERP
address it came back to, or the signed one-click link in the returned message's
``List-Unsubscribe``. Then, with the list's ``feedback_unsubscribe`` (the default), that member
is unsubscribed at once — they no longer want the mail, and every further complaint hurts the
list's standing with the provider. A report naming a member only by ``Original-Rcpt-To`` or an
unsigned VERP address is recorded and changes nothing.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.one_click import read_token
from listserv.auth.verp import verp_hint, verp_member, verp_secret
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.lists import MailList
from listserv.store.members import find_member, remove_member
from listserv.store.models import InboxMessage, MemberEvent

UNSUBSCRIBE_LINK = re.compile(r"/u/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)>")


def is_feedback_report(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "feedback-report"
    )


def _report_fields(message: Message) -> Message:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
            return HeaderParser().parsestr(str(payload))
    return Message()


def _returned_headers(message: Message) -> Message:
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if part.get_content_type() == "text/rfc822-headers":
            return HeaderParser().parsestr(part.get_payload(decode=True).decode("utf-8", "replace"))
    return Message()


def proven_members(app: App, mlist: MailList, message: Message, detail: str) -> list[str]:
    """Who the report is about, by proof only we can give: the signed VERP address it was
    sent to, or a signed one-click link in the returned message's headers."""
    secret = verp_secret(app.config)
    found = []
    if detail and (address := verp_member(secret, mlist.name, detail)):
        found.append(address)
    for value in _returned_headers(message).get_all("List-Unsubscribe", []):
        for token in UNSUBSCRIBE_LINK.findall(" ".join(str(value).split())):
            named = read_token(secret, token)
            if named is not None and named[0] == mlist.name:
                found.append(named[1])
    return found


def claimed_members(message: Message, detail: str) -> list[str]:
    """Who the report says it is about (``Original-Rcpt-To``, an unsigned VERP address):
    anyone can write these, so they are recorded, never acted on."""
    found = [address] if detail and (address := verp_hint(detail)) else []
    for value in _report_fields(message).get_all("Original-Rcpt-To", []):
        try:
            found.append(normalize(str(value)))
        except InvalidAddress:
            continue
    return found


def handle_complaint(
    app: App,
    session: Session,
    mlist: MailList,
    stored: InboxMessage,
    message: Message,
    detail: str,
) -> str:
    feedback_type = str(_report_fields(message).get("Feedback-Type", "abuse")).strip().lower()
    unsubscribe = mlist.config.feedback_unsubscribe
    proven = proven_members(app, mlist, message, detail)
    for address in [*proven, *claimed_members(message, detail)]:
        if find_member(session, mlist.id, address) is None:
            continue
        if address not in proven:
            outcome = "recorded: not proven (no signed VERP address or link)"
        elif unsubscribe:
            remove_member(session, mlist.id, address)
            outcome = "unsubscribed"
        else:
            outcome = "recorded"
        session.add(
            MemberEvent(
                list_id=mlist.id,
                address=address,
                kind="complaint",
                outcome=outcome,
                status=feedback_type[:32],
                message_id=stored.id,
            )
        )
        return f"complaint ({feedback_type}) from {address}: {outcome}"
    return f"discarded: complaint ({feedback_type}) about no member"
