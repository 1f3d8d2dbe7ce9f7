"""Command mail that tries to use the server against others, over real SMTP: replies into
our own lists, a tagged victim's mailbox flooded, someone else's text carried in a reply."""

from __future__ import annotations

from support import DOMAIN, Sink, cli, list_table
from test_email_commands import notices, send_command, sentinel, text

LIST = f"test@{DOMAIN}"


def test_commands_from_our_own_addresses_are_never_answered(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", posting="open")])
    added = cli(server.config_path, "members", "add", "--no-welcome", "test", "m@x.example")
    assert added.exit_code == 0
    spam = "subscribe BUY CHEAP PILLS AT pills.example"
    for forged in (LIST, f"test-owner@{DOMAIN}", f"other@{DOMAIN}"):
        send_command(server, spam, sender=forged)
        send_command(server, "", sender=forged, to=f"test-join@{DOMAIN}")
    sentinel(server, sink)
    answered = {r for m in sink.received for r in m.rcpt_tos}
    assert answered == {"sentinel@example.net"}


def test_the_daily_cap_counts_a_tagged_mailbox_once(start_server, sink: Sink) -> None:
    server = start_server(server={"max_autoreplies_per_day": 2})
    for tag in range(4):
        send_command(server, "help", sender=f"victim+{tag}@example.org")
    sentinel(server, sink)
    replies = [r for m in sink.received for r in m.rcpt_tos if r.startswith("victim")]
    assert len(replies) == 2


def test_a_reply_quotes_only_a_short_clean_line_of_the_command(start_server, sink: Sink) -> None:
    server = start_server()
    line = "subscribe " + "digest " * 12 + "Visit pills.example for CHEAP PILLS\u202e"
    send_command(server, line, sender="alice@example.com")
    reply = sink.wait_for(lambda got: bool(notices(sink, "alice@example.com", "command-reply")))
    body = text(notices(sink, "alice@example.com", "command-reply")[0])
    assert reply and "pills.example" not in body and "\u202e" not in body
    quoted = next(q for q in body.splitlines() if q.startswith("> "))
    assert quoted.startswith("> subscribe digest") and len(quoted) <= 62
