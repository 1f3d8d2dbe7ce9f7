"""Posting rules: small named checks that decide what becomes of a post.

A rule is a pure function of a :class:`Post` returning a :class:`Decision` or None (no
opinion). The chain runs them in order and the first decision wins; a post no rule decides is
accepted. A held post records the rule that held it and that rule's one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from .decorate import already_seen
from .lists import MailList

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

    @property
    def is_privileged(self) -> bool:
        return self.is_moderator or self.is_owner


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


def privileged_sender(post: Post) -> Decision | None:
    if post.is_privileged:
        return Decision("accept", "privileged-sender", "moderators and owners always post")
    return None


def nonmember_decision(post: Post, rule: str, reason: str) -> Decision:
    action = post.mlist.config.nonmember_action
    return Decision(action, rule, reason)


def announce_only(post: Post) -> Decision | None:
    if post.mlist.config.posting == "announce":
        if post.is_member:
            return Decision("hold", "announce-only", "only moderators post to this list")
        return nonmember_decision(post, "announce-only", "only moderators post to this list")
    return None


def moderated_list(post: Post) -> Decision | None:
    if post.mlist.config.posting == "moderated":
        return Decision("hold", "moderated-list", "every post to this list is moderated")
    return None


def moderated_member(post: Post) -> Decision | None:
    if post.is_member and post.member_moderated:
        return Decision("hold", "moderated-member", "posts from this member are moderated")
    return None


def nonmember(post: Post) -> Decision | None:
    if post.mlist.config.posting == "members" and not post.is_member:
        return nonmember_decision(post, "nonmember", f"{post.sender} is not a member")
    return None


CHAIN: tuple[Rule, ...] = (
    loop,
    # Before the privileged senders: a forged moderator From must not get through.
    dmarc_failure,
    privileged_sender,
    announce_only,
    moderated_list,
    moderated_member,
    nonmember,
)


def decide(post: Post, chain: tuple[Rule, ...] = CHAIN) -> Decision:
    for rule in chain:
        decision = rule(post)
        if decision is not None:
            return decision
    return Decision("accept", "default", "no rule objected")
