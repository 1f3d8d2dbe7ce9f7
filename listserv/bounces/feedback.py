"""Feedback-loop reports (ARF, RFC 5965): a member marked list mail as spam.

Providers (Mail.ru, Yahoo, Outlook.com…) send them to the bounce address as multipart/report
with ``report-type=feedback-report``. The complaining member is named by the VERP bounce
address, else by the report's ``Original-Rcpt-To``, else by the signed one-click link in the
returned message's ``List-Unsubscribe``. With the list's ``feedback_unsubscribe`` (the default)
that member is unsubscribed at once — they no longer want the mail, and every further
complaint hurts the list's standing with the provider; either way the report is recorded.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.one_click import load_secret, read_token
from listserv.delivery.personalize import verp_decode
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


def candidates(app: App, mlist: MailList, message: Message, detail: str) -> list[str]:
    """Who the report may be about, most trustworthy first."""
    found = []
    if detail and (address := verp_decode(detail)):
        found.append(address)
    for value in _report_fields(message).get_all("Original-Rcpt-To", []):
        try:
            found.append(normalize(str(value)))
        except InvalidAddress:
            continue
    web = app.config.web
    if web is not None and web.base_url:
        secret = load_secret(app.config.resolve(web.secret_file))
        for value in _returned_headers(message).get_all("List-Unsubscribe", []):
            for token in UNSUBSCRIBE_LINK.findall(" ".join(str(value).split())):
                named = read_token(secret, token)
                if named is not None and named[0] == mlist.name:
                    found.append(named[1])
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
    for address in candidates(app, mlist, message, detail):
        if find_member(session, mlist.id, address) is None:
            continue
        unsubscribe = mlist.config.feedback_unsubscribe
        if unsubscribe:
            remove_member(session, mlist.id, address)
        outcome = "unsubscribed" if unsubscribe else "recorded"
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
