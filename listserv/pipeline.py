"""The posting pipeline: a post is checked by the rule chain, then held, refused, dropped, or
decorated and queued for every member.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from .addresses import sender_of
from .app import App
from .decorate import (
    add_footer,
    add_list_headers,
    add_subject_prefix,
    parse,
    set_reply_to,
    subject_of,
)
from .lists import MailList
from .members import find_member, recipients_query
from .models import HeldMessage
from .models import Message as StoredMessage
from .notices import is_automated, notice, send_notice
from .outbound import queue_mail
from .rules import Decision, Post, decide


def post_sender(message: EmailMessage, envelope_sender: str) -> str:
    """Who the post is from: the From address, else the envelope sender."""
    return sender_of(message.get("From")) or sender_of(envelope_sender) or envelope_sender


def evaluate(
    session: Session, mlist: MailList, message: EmailMessage, stored: StoredMessage
) -> tuple[Post, Decision]:
    sender = post_sender(message, stored.mail_from)
    member = find_member(session, mlist.id, sender) if "@" in sender else None
    post = Post(
        mlist=mlist,
        message=message,
        sender=sender,
        is_member=member is not None,
        member_moderated=bool(member and member.moderated),
        is_moderator=sender in {a.lower() for a in mlist.config.moderators},
        is_owner=sender in {a.lower() for a in mlist.config.owners},
        size=len(stored.raw),
    )
    return post, decide(post)


def process_post(app: App, session: Session, mlist: MailList, stored: StoredMessage) -> str:
    """Run one received post through the rules; returns what became of it."""
    message = parse(stored.raw)
    post, decision = evaluate(session, mlist, message, stored)
    if decision.action == "accept":
        distribute(app, session, mlist, message, stored.id)
        return "distributed"
    if decision.action == "hold":
        hold(session, mlist, post, decision, stored)
        return f"held: {decision.rule}"
    if decision.action == "reject":
        refuse(app, session, mlist, post, decision, stored.mail_from)
        return f"rejected: {decision.rule}"
    return f"discarded: {decision.rule}"


def decorate(app: App, mlist: MailList, message: EmailMessage) -> EmailMessage:
    """The post as members receive it (pure but for reading the footer template)."""
    add_list_headers(message, mlist)
    add_subject_prefix(message, mlist.config.subject_prefix or "")
    set_reply_to(message, mlist)
    if mlist.config.footer:
        footer = app.templates.text(
            mlist.config.language,
            "footer.txt",
            mlist=mlist,
            list_address=mlist.address(),
            request_address=mlist.address("request"),
            leave_address=mlist.address("leave"),
        )
        add_footer(message, footer)
    return message


def distribute(
    app: App, session: Session, mlist: MailList, message: EmailMessage, message_id: int | None
) -> None:
    """Decorate an accepted post and queue it for every member who gets posts one by one."""
    decorate(app, mlist, message)
    queue_mail(
        session,
        kind="post",
        mail_from=mlist.address("bounces"),
        message=message,
        recipients=recipients_query(mlist.id),
        batch_size=app.config.delivery.max_recipients,
        list_id=mlist.id,
        message_id=message_id,
    )


def hold(
    session: Session, mlist: MailList, post: Post, decision: Decision, stored: StoredMessage
) -> HeldMessage:
    held = HeldMessage(
        list_id=mlist.id,
        message_id=stored.id,
        sender=post.sender,
        subject=subject_of(post.message)[:500],
        rule=decision.rule,
        reason=decision.reason,
    )
    session.add(held)
    session.flush()
    return held


def refuse(
    app: App,
    session: Session,
    mlist: MailList,
    post: Post,
    decision: Decision,
    envelope_sender: str,
) -> None:
    """Tell the sender the post was refused, unless the sender is a machine."""
    if is_automated(post.message, envelope_sender):
        return
    reply = notice(
        app,
        mlist,
        "rejected.txt",
        post.sender,
        subject=subject_of(post.message),
        reason=decision.reason,
    )
    send_notice(app, session, mlist, reply, [post.sender])
