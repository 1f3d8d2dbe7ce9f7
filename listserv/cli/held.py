"""``listserv held``: posts held for moderation, and deciding them."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from listserv.cli.base import (
    Context,
    Group,
    as_text,
    emit,
    fail,
    json_option,
    pass_context,
    when,
)
from listserv.moderation.decisions import (
    Decider,
    NotPending,
    held_posts,
    held_summary,
    locked_held,
    received_text,
    settle,
)
from listserv.moderation.expiry import run_schedule
from listserv.store.lists import MailList, all_lists, get_list, list_by_id
from listserv.store.models import HeldMessage


@click.group(cls=Group)
def held() -> None:
    """Posts held for moderation."""


def operator() -> str:
    """Who decides at the command line, as recorded with the decision."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return f"{user} (command line)"


def decision(row: dict[str, Any]) -> str:
    """`` [rejected 2026-12-02 03:50 by ana@x.example]``; nothing while pending."""
    if row["status"] == "pending":
        return ""
    at = f" {when(row['decided_at'])}" if row["decided_at"] else ""
    by = f" by {row['decided_by']}" if row["decided_by"] else ""
    return f" [{row['status']}{at}{by}]"


def held_line(row: dict[str, Any]) -> str:
    status = decision(row)
    who = f"{row['id']:>6}  {row['list']:<20} {row['sender']:<32}"
    return f"{who} {row['rule']}{status}  {row['subject']}"


@held.command("list")
@click.argument("name", required=False)
@click.option("--all", "include_decided", is_flag=True, help="Include decided posts.")
@json_option
@pass_context
def held_list(context: Context, name: str | None, include_decided: bool, as_json: bool) -> None:
    """Show posts waiting for a decision (all lists without NAME)."""
    with context.session() as session:
        lists = {m.id: m for m in all_lists(session, context.app.domain)}
        list_id = get_list(session, name, context.app.domain).id if name else None
        data = [
            held_summary(post, lists[post.list_id])
            for post in held_posts(session, list_id, include_decided)
        ]
    emit(data, as_json, lambda rows: "\n".join(held_line(r) for r in rows))


def find_held(session: Session, held_id: int, domain: str) -> tuple[HeldMessage, MailList]:
    post = locked_held(session, held_id)
    if post is None:
        fail(f"no held message {held_id}")
    return post, list_by_id(session, post.list_id, domain)


@held.command("show")
@click.argument("held_id", metavar="ID", type=int)
@json_option
@pass_context
def held_show(context: Context, held_id: int, as_json: bool) -> None:
    """Show a held post and the message as received."""
    with context.session() as session:
        post, mlist = find_held(session, held_id, context.app.domain)
        data = held_summary(post, mlist)
        data["message"] = received_text(session, post)
    emit(
        data,
        as_json,
        lambda d: as_text({k: v for k, v in d.items() if k != "message"}) + "\n\n" + d["message"],
    )


def decide_held(context: Context, held_id: int, action: str, **options: Any) -> None:
    app = context.app
    with context.session() as session:
        post, mlist = find_held(session, held_id, app.domain)
        try:
            outcome = settle(
                app, session, mlist, post, action, Decider(operator(), "cli"), **options
            )
        except NotPending as error:
            fail(str(error))
    click.echo(outcome)


@held.command("approve")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--always", is_flag=True, help="Let this sender post without moderation.")
@pass_context
def held_approve(context: Context, held_id: int, always: bool) -> None:
    """Send a held post to the list."""
    decide_held(context, held_id, "approve", always=always)


@held.command("reject")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--reason", default="", help="Told to the sender.")
@pass_context
def held_reject(context: Context, held_id: int, reason: str) -> None:
    """Refuse a held post; the sender is told (with the reason)."""
    decide_held(context, held_id, "reject", reason=reason)


@held.command("discard")
@click.argument("held_id", metavar="ID", type=int)
@pass_context
def held_discard(context: Context, held_id: int) -> None:
    """Drop a held post without telling the sender."""
    decide_held(context, held_id, "discard")


@held.command("expire")
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
    metavar="TIME",
    help="Run as of this UTC time (YYYY-MM-DD[THH:MM[:SS]]) instead of now.",
)
@pass_context
def held_expire(context: Context, at: datetime | None) -> None:
    """Expire overdue held posts and send due reminders now (serve does it on a schedule)."""
    run = run_schedule(context.app, at.replace(tzinfo=UTC) if at else None)
    click.echo(f"expired {run.expired} held messages, sent {run.reminders} reminders")
