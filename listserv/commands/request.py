"""The ``NAME-request``, ``NAME-join`` and ``NAME-leave`` addresses: email commands.

A command mail gets one reply listing each command and its result, in the list's language.
Nothing here answers a machine (bounces, auto-replies, list mail), mails an address other
than the sender's, or tells anyone who the members are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.commands.confirm import confirm_token
from listserv.commands.parse import Command, message_commands, mode_of
from listserv.commands.subscriptions import (
    ALREADY_MEMBER,
    DELIVERY_CHANGED,
    NOT_MEMBER,
    SET_DELIVERY,
    SUBSCRIBE,
    UNSUBSCRIBE,
    WRONG_ADDRESS,
    request_confirmation,
)
from listserv.mail.codec import parse
from listserv.notices import allow_auto_reply, is_automated, notice, send_notice
from listserv.posting.pipeline import post_sender
from listserv.store.lists import MailList, all_lists
from listserv.store.members import find_member
from listserv.store.models import InboxMessage

SUBSCRIBE_MODES = ("regular", "digest", "plain")
SET_MODES = ("regular", "digest", "plain", "nomail")
# A change waiting to be sent for confirmation; sent, or replaced by a later one in the mail.
ASKED, CONFIRMATION_SENT, REPLACED = "asked", "confirmation-sent", "replaced"
# Results whose own mail (the confirmation request) is the answer: no reply besides it.
ANSWERED_BY_CONFIRMATION = (CONFIRMATION_SENT, REPLACED)


@dataclass(frozen=True)
class Request:
    """A command mail: who sent it, to which list."""

    app: App
    session: Session
    mlist: MailList
    sender: str
    message: EmailMessage


@dataclass(frozen=True)
class CommandResult:
    """What became of one command: a key the reply template words, and its details."""

    line: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)


def ask(request: Request, command: Command, action: str, **payload: Any) -> CommandResult:
    """A change that waits for confirmation; the request goes out once the whole mail is
    read (``confirm_last``), so one mail asks for one confirmation."""
    return CommandResult(command.line, ASKED, {"action": action, **payload})


def confirm_last(request: Request, results: list[CommandResult]) -> list[CommandResult]:
    """One request per address and list: the last change a mail asks for is the one sent
    for confirmation, the earlier ones are reported replaced by it."""
    asked = [i for i, r in enumerate(results) if r.key == ASKED]
    settled = list(results)
    for i in asked[:-1]:
        settled[i] = CommandResult(results[i].line, REPLACED, results[i].data)
    if asked:
        last = results[asked[-1]]
        payload = {k: v for k, v in last.data.items() if k != "action"}
        sent = request_confirmation(
            request.app,
            request.session,
            request.mlist,
            request.sender,
            last.data["action"],
            **payload,
        )
        settled[asked[-1]] = CommandResult(
            last.line, CONFIRMATION_SENT if sent else "not-sent", last.data
        )
    return settled


def names_other_address(command: Command) -> bool:
    # "subscribe other@x": a confirmation goes only to the sender, never to a named address.
    return any("@" in arg for arg in command.args)


def do_help(request: Request, command: Command) -> CommandResult:
    return CommandResult(command.line, "help")


def do_lists(request: Request, command: Command) -> CommandResult:
    advertised = [m for m in all_lists(request.session, request.app.domain) if m.config.advertised]
    # By region, lists without one last.
    advertised.sort(key=lambda m: (not m.config.region, m.config.region, m.name))
    groups = [
        (region, list(members))
        for region, members in groupby(advertised, key=lambda m: m.config.region)
    ]
    return CommandResult(command.line, "lists", {"groups": groups})


def do_info(request: Request, command: Command) -> CommandResult:
    member = find_member(request.session, request.mlist.id, request.sender)
    return CommandResult(command.line, "info", {"delivery": member.delivery if member else ""})


def do_subscribe(request: Request, command: Command) -> CommandResult:
    if names_other_address(command):
        return CommandResult(command.line, "other-address")
    modes = [mode_of(arg) for arg in command.args]
    if len(modes) > 1 or (modes and modes[0] not in SUBSCRIBE_MODES):
        return CommandResult(command.line, "bad-argument", {"usage": "subscribe"})
    if find_member(request.session, request.mlist.id, request.sender):
        return CommandResult(command.line, ALREADY_MEMBER)
    return ask(request, command, SUBSCRIBE, delivery=modes[0] if modes else "regular")


def do_unsubscribe(request: Request, command: Command) -> CommandResult:
    if names_other_address(command):
        return CommandResult(command.line, "other-address")
    if not find_member(request.session, request.mlist.id, request.sender):
        return CommandResult(command.line, NOT_MEMBER)
    return ask(request, command, UNSUBSCRIBE)


def do_set(request: Request, command: Command) -> CommandResult:
    # "set delivery digest" in English; "режим дайджест", "алу тәсілі дайджест" say no more.
    args = list(command.args)
    if args and args[0].lower() == "delivery":
        args = args[1:]
    mode = mode_of(args[0]) if len(args) == 1 else None
    if mode not in SET_MODES:
        return CommandResult(command.line, "bad-argument", {"usage": "set"})
    member = find_member(request.session, request.mlist.id, request.sender)
    if member is None:
        return CommandResult(command.line, NOT_MEMBER)
    if member.delivery == mode:
        return CommandResult(command.line, "unchanged", {"delivery": member.delivery})
    return ask(request, command, SET_DELIVERY, delivery=mode)


def do_confirm(request: Request, command: Command) -> CommandResult:
    if len(command.args) != 1:
        return CommandResult(command.line, "bad-argument", {"usage": "confirm"})
    outcome = confirm_token(
        request.app,
        request.session,
        request.mlist,
        command.args[0],
        request.message,
        request.sender,
    )
    if outcome is None:
        return CommandResult(command.line, "bad-token")
    if outcome == WRONG_ADDRESS:
        return CommandResult(command.line, "wrong-address")
    member = find_member(request.session, request.mlist.id, request.sender)
    delivery = member.delivery if member and outcome == DELIVERY_CHANGED else ""
    return CommandResult(command.line, outcome, {"delivery": delivery})


COMMANDS: dict[str, Callable[[Request, Command], CommandResult]] = {
    "help": do_help,
    "lists": do_lists,
    "info": do_info,
    "subscribe": do_subscribe,
    "unsubscribe": do_unsubscribe,
    "set": do_set,
    "confirm": do_confirm,
}


def reply(request: Request, results: list[CommandResult], ignored: int = 0) -> bool:
    """Send the one reply to a command mail, unless the sender had its share today."""
    app, session, mlist = request.app, request.session, request.mlist
    if not allow_auto_reply(app, session, request.sender):
        return False
    message = notice(
        app,
        mlist,
        "command-reply.txt",
        request.sender,
        sender=mlist.address("request"),
        address=request.sender,
        results=results,
        ignored=ignored,
    )
    original_id = request.message.get("Message-ID")
    if original_id and "\n" not in str(original_id):
        message["In-Reply-To"] = str(original_id)
        message["References"] = str(original_id)
    send_notice(app, session, mlist, message, [request.sender], kind="reply")
    return True


def read_request(
    app: App, session: Session, mlist: MailList, stored: InboxMessage
) -> Request | str:
    """The command mail, or why it is not answered."""
    message = parse(stored.raw)
    if is_automated(message, stored.mail_from):
        return "discarded: automated mail is never answered"
    sender = post_sender(message, stored.mail_from)
    if "@" not in sender:
        return "discarded: no sender address"
    return Request(app, session, mlist, sender, message)


def summary(results: list[CommandResult]) -> str:
    return "commands: " + (", ".join(f"{r.line.split()[0]} {r.key}" for r in results) or "none")


def handle_request(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    """``NAME-request``: run each command and reply once with the results."""
    request = read_request(app, session, mlist, stored)
    if isinstance(request, str):
        return request
    found = message_commands(request.message)
    results = confirm_last(request, [COMMANDS[c.name](request, c) for c in found.commands])
    if results and all(r.key in ANSWERED_BY_CONFIRMATION for r in results):
        # The confirmation request says what was asked: one mail, not a reply besides it.
        return summary(results)
    if not reply(request, results, len(found.unknown)):
        return summary(results) + "; reply not sent: daily limit reached"
    return summary(results)


def handle_address_command(
    app: App, session: Session, mlist: MailList, stored: InboxMessage, command: Command
) -> str:
    """``NAME-join`` and ``NAME-leave``: the confirmation request is the answer; anything
    else (already a member…) gets a reply saying so."""
    request = read_request(app, session, mlist, stored)
    if isinstance(request, str):
        return request
    [result] = confirm_last(request, [COMMANDS[command.name](request, command)])
    if result.key != CONFIRMATION_SENT:
        reply(request, [result])
    return summary([result])


def handle_join(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    command = Command("subscribe", (), "subscribe")
    return handle_address_command(app, session, mlist, stored, command)


def handle_leave(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    command = Command("unsubscribe", (), "unsubscribe")
    return handle_address_command(app, session, mlist, stored, command)
