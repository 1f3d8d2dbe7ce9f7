"""The posting pipeline: a post is checked by the rule chain, then held, refused, dropped, or
decorated and queued for every member.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.archive.store import archive_distributed, raw_header
from listserv.auth.authentication import Authentication, authenticate_stored, stamp
from listserv.auth.dmarc import Mitigation, lookup_policy, mitigate
from listserv.auth.one_click import link_maker
from listserv.delivery.outbound import send
from listserv.delivery.personalize import prepare_post, sends_personalized
from listserv.digests.issues import add_to_digest
from listserv.mail.addresses import author_of, sender_of
from listserv.mail.codec import parse, subject_of, to_bytes
from listserv.mail.headers import one_line
from listserv.mail.list_headers import add_list_headers
from listserv.notices import allow_auto_reply, is_automated, notice, send_notice
from listserv.posting.accepted import standing
from listserv.posting.aliases import choose_mitigation
from listserv.posting.decorate import add_footer, add_subject_prefix, set_reply_to
from listserv.posting.hold import announce_hold
from listserv.posting.rules import Decision, Post, decide
from listserv.store.lists import MailList
from listserv.store.members import recipients_query
from listserv.store.models import HeldMessage, InboxMessage, utcnow
from listserv.store.postlog import WINDOW, log_post, posts_since


def post_sender(message: EmailMessage, envelope_sender: str) -> str:
    """Who the post is from: the From address, else the envelope sender."""
    return author_of(message) or sender_of(envelope_sender) or envelope_sender


def evaluate(
    session: Session,
    mlist: MailList,
    message: EmailMessage,
    stored: InboxMessage,
    authentication: Authentication | None = None,
) -> tuple[Post, Decision]:
    sender = post_sender(message, stored.mail_from)
    moderated, accepted = standing(session, mlist.id, sender)
    since = utcnow() - WINDOW
    post = Post(
        mlist=mlist,
        message=message,
        sender=sender,
        is_member=moderated is not None,
        member_moderated=bool(moderated),
        is_moderator=sender in {a.lower() for a in mlist.config.moderators},
        is_owner=sender in {a.lower() for a in mlist.config.owners},
        size=len(stored.raw),
        fails_dmarc_reject=bool(authentication and authentication.fails_reject_policy),
        is_accepted=accepted,
        # Counted only for a cap the list sets.
        posts_today_by_sender=(
            posts_since(session, mlist.id, since, sender)
            if mlist.config.max_posts_per_sender_per_day
            else 0
        ),
        posts_today_to_list=(
            posts_since(session, mlist.id, since) if mlist.config.max_posts_per_day else 0
        ),
    )
    return post, decide(post)


def process_post(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    """Run one received post through the rules; returns what became of it."""
    message = parse(stored.raw)
    authentication = authenticate_stored(app.resolver, stored, message)
    post, decision = evaluate(session, mlist, message, stored, authentication)
    if decision.action in ("accept", "hold"):
        log_post(session, mlist.id, post.sender, utcnow())
    if decision.action == "accept":
        distribute(app, session, mlist, message, stored.id, authentication)
        return "distributed"
    if decision.action == "hold":
        held = hold(session, mlist, post, decision, stored)
        announce_hold(app, session, mlist, held, message, stored.mail_from)
        return f"held: {decision.rule}"
    if decision.action == "reject":
        refuse(app, session, mlist, post, decision, stored.mail_from)
        return f"rejected: {decision.rule}"
    return f"discarded: {decision.rule}"


def decorate(
    app: App,
    mlist: MailList,
    message: EmailMessage,
    mitigation: Mitigation | None = None,
    unsubscribe_url: str = "",
) -> EmailMessage:
    """The post as members receive it (pure but for reading the footer template)."""
    if mitigation is not None:
        message = mitigate(message, mitigation)
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
            unsubscribe_url=unsubscribe_url,
        )
        add_footer(message, footer)
    return message


def distribute(
    app: App,
    session: Session,
    mlist: MailList,
    message: EmailMessage,
    message_id: int | None,
    authentication: Authentication | None = None,
) -> None:
    """Decorate an accepted post and queue it for every member who gets posts one by one.
    It carries our Authentication-Results of the message as received, and is rewritten when
    the poster's domain enforces DMARC. It is stored once, and sent as one copy per member
    when personalized (VERP, one-click links); those copies are signed one by one at
    sending. It is also kept for the list's next digest, and archived."""
    poster = raw_header(message, "From")  # as written, before a DMARC rewrite
    if authentication is None and message_id is not None:
        stored_message = session.get(InboxMessage, message_id)
        authentication = (
            authenticate_stored(app.resolver, stored_message, message) if stored_message else None
        )
    if authentication is not None:
        policy = authentication.policy
    else:
        poster = author_of(message)
        policy = lookup_policy(app.resolver, poster.partition("@")[2]) if poster else None
    mitigation = choose_mitigation(app, session, mlist, message, policy)

    def decorated(original: EmailMessage, unsubscribe_url: str) -> EmailMessage:
        result = decorate(app, mlist, original, mitigation, unsubscribe_url)
        if authentication is not None:
            stamp(result, authentication, app.domain)
        return result

    personalized = sends_personalized(app)
    if personalized:
        stored, marker = prepare_post(
            message, decorated, one_click=link_maker(app.config) is not None
        )
    else:
        stored, marker = to_bytes(decorated(message, "")), ""
    send(
        app,
        session,
        mlist,
        "post",
        stored,
        recipients_query(),
        message_id=message_id,
        personalized=personalized,
        footer_marker=marker,
    )
    # The digest keeps the post as members read it, with the list's leave address where each
    # member's own link would be.
    leave = mlist.address("leave").encode()
    as_distributed = stored.replace(marker.encode(), leave) if marker else stored
    add_to_digest(session, mlist.id, as_distributed, message_id)
    # Archived in this same transaction: a distributed post is archived, or neither.
    if mlist.config.archive != "none":
        archive_distributed(session, mlist, as_distributed, poster)


def hold(
    session: Session, mlist: MailList, post: Post, decision: Decision, stored: InboxMessage
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
    """Tell the sender the post was refused, unless the sender is a machine or already had
    its share of notices today (a forged From must not turn us into a backscatter source)."""
    if is_automated(post.message, envelope_sender) or "@" not in post.sender:
        return
    if not allow_auto_reply(app, session, post.sender):
        return
    reply = notice(
        app,
        mlist,
        "rejected.txt",
        post.sender,
        subject=one_line(subject_of(post.message)),
        rule=decision.rule,
        poster=post.sender,
        reason=decision.reason,
    )
    send_notice(app, session, mlist, reply, [post.sender])
