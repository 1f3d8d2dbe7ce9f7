"""Posting rules: small named checks that decide what becomes of a post.

A rule is a pure function of a :class:`Post` returning a :class:`Decision` or None (no
opinion). The chain runs them in order and the first decision wins; a post no rule decides is
accepted. A held post records the rule that held it and that rule's one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from listserv.mail.addresses import addresses_in
from listserv.mail.codec import raw_values, subject_of
from listserv.mail.headers import RESPONSE_MARKERS
from listserv.mail.list_headers import already_seen
from listserv.mail.text import own_lines, plain_text
from listserv.store.lists import MailList

Action = Literal["accept", "hold", "reject", "discard"]


@dataclass(frozen=True)
class Post:
    """A post and what is known of its sender, all a rule may look at."""

    mlist: MailList
    message: EmailMessage
    sender: str
    is_member: bool = False
    member_moderated: bool = False
    is_moderator: bool = False
    is_owner: bool = False
    size: int = 0
    # The post fails DMARC and its From domain publishes p=reject: most likely forged.
    fails_dmarc_reject: bool = False
    # On the list's accepted senders ("approve always").
    is_accepted: bool = False
    # Posts accepted or held in the last 24 hours, this one not included.
    posts_today_by_sender: int = 0
    posts_today_to_list: int = 0

    @property
    def is_privileged(self) -> bool:
        return self.is_moderator or self.is_owner

    @property
    def is_trusted(self) -> bool:
        """Skips the posting policy (but not the safety holds)."""
        return self.is_privileged or self.is_accepted


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str
    reason: str


Rule = Callable[[Post], Decision | None]


def loop(post: Post) -> Decision | None:
    if already_seen(post.message, post.mlist):
        return Decision("discard", "loop", "the message already went through this list")
    return None


def dmarc_failure(post: Post) -> Decision | None:
    if post.mlist.config.dmarc_hold_failures and post.fails_dmarc_reject:
        return Decision(
            "hold", "dmarc-failure", "the post fails DMARC of a domain publishing p=reject"
        )
    return None


def nonmember_decision(post: Post, rule: str, reason: str) -> Decision:
    action = post.mlist.config.nonmember_action
    return Decision(action, rule, reason)


# Posting policy. Moderators, owners and accepted senders always pass it: each policy rule
# has no opinion on them.


def announce_only(post: Post) -> Decision | None:
    if post.mlist.config.posting == "announce" and not post.is_trusted:
        if post.is_member:
            return Decision("hold", "announce-only", "only moderators post to this list")
        return nonmember_decision(post, "announce-only", "only moderators post to this list")
    return None


def moderated_list(post: Post) -> Decision | None:
    if post.mlist.config.posting == "moderated" and not post.is_trusted:
        return Decision("hold", "moderated-list", "every post to this list is moderated")
    return None


def moderated_member(post: Post) -> Decision | None:
    if post.is_member and post.member_moderated and not post.is_trusted:
        return Decision("hold", "moderated-member", "posts from this member are moderated")
    return None


def nonmember(post: Post) -> Decision | None:
    if post.mlist.config.posting == "members" and not post.is_member and not post.is_trusted:
        return nonmember_decision(post, "nonmember", f"{post.sender} is not a member")
    return None


# Safety holds, whoever the sender, moderators included: they catch mistakes and a hijacked
# account, and a moderator's own held post is released with one reply.


def oversized(post: Post) -> Decision | None:
    limit = post.mlist.config.max_post_size
    if limit and post.size > limit:
        return Decision("hold", "size", f"the message is larger than {limit} bytes")
    return None


def too_many_recipients(post: Post) -> Decision | None:
    limit = post.mlist.config.max_post_recipients
    # Counted on the raw values: the header registry's parser is quadratic in their length.
    count = len(addresses_in(*raw_values(post.message, "To", "Cc")))
    if limit and count > limit:
        return Decision("hold", "recipients", f"the message has more than {limit} recipients")
    return None


# Words of list commands, in the three languages: a post that is no more than one of them
# (and a few more words) was meant for the -request address, not for every member.
COMMAND_WORDS = (
    "subscribe",
    "unsubscribe",
    "unsub",
    "signoff",
    "sign off",
    "remove me",
    "set delivery",
    "подписаться",
    "подпишите",
    "подписка",
    "отписаться",
    "отпишите",
    "отписка",
    "удалите меня",
    "жазылу",
    "жазылым",
    "жазылымнан",
    "мені алып тастаңыз",
    "мені шығарыңыз",
)
COMMAND_MAX_WORDS = 4
COMMAND_LINES = 5


def is_command_like(line: str) -> bool:
    words = re.findall(r"\w+", line.casefold())
    if not words or len(words) > COMMAND_MAX_WORDS:
        return False
    text = " ".join(words)
    return any(text == word or text.startswith(word + " ") for word in COMMAND_WORDS)


def command_like(post: Post) -> Decision | None:
    if not post.mlist.config.hold_command_like:
        return None
    subject = subject_of(post.message)
    prefix = (post.mlist.config.subject_prefix or "").strip()
    if prefix:
        subject = subject.replace(prefix, "")
    subject = RESPONSE_MARKERS.sub("", subject)
    lines = [subject, *own_lines(plain_text(post.message))[:COMMAND_LINES]]
    if any(is_command_like(line) for line in lines):
        return Decision(
            "hold",
            "command-like",
            f"the message looks like a command for {post.mlist.address('request')}",
        )
    return None


SENDER_CAP = "sender-daily-cap"


def sender_daily_cap(post: Post) -> Decision | None:
    cap = post.mlist.config.max_posts_per_sender_per_day
    if cap and post.posts_today_by_sender >= cap:
        return Decision("hold", SENDER_CAP, f"{post.sender} already posted {cap} times today")
    return None


def list_daily_cap(post: Post) -> Decision | None:
    cap = post.mlist.config.max_posts_per_day
    if cap and post.posts_today_to_list >= cap:
        return Decision("hold", "list-daily-cap", f"the list already had {cap} posts today")
    return None


CHAIN: tuple[Rule, ...] = (
    loop,
    # Before the policy rules, which trust moderators: a forged moderator From must not pass.
    dmarc_failure,
    announce_only,
    moderated_list,
    moderated_member,
    nonmember,
    oversized,
    too_many_recipients,
    command_like,
    sender_daily_cap,
    list_daily_cap,
)


def decide(post: Post, chain: tuple[Rule, ...] = CHAIN) -> Decision:
    for rule in chain:
        decision = rule(post)
        if decision is not None:
            return decision
    return Decision("accept", "default", "no rule objected")
