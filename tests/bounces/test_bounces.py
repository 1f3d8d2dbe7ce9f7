"""Bounces against the real daemon: real-world reports raise the right member's score, a
bouncing probe disables, reminders then removal, policy refusals and 5xx at delivery, VERP."""

from __future__ import annotations

from pathlib import Path

import pytest
from samples import dsn_bytes
from sqlalchemy import select
from support import (
    DOMAIN,
    Received,
    RunningServer,
    Sink,
    add,
    cli,
    events,
    list_table,
    make_message,
    members_of,
)

from listserv.store.models import Member

SAMPLES = Path(__file__).parents[1] / "data" / "bounces"
BOUNCES = f"test-bounces@{DOMAIN}"


def sample(name: str) -> bytes:
    """A stored real-world bounce, with the CRLF line ends SMTP carries."""
    return (SAMPLES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def scores(server: RunningServer) -> dict[str, float]:
    with server.app.sessions() as session:
        return {m.address: m.bounce_score for m in session.scalars(select(Member))}


def test_real_world_bounces_raise_the_right_members_score(start_server) -> None:
    server = start_server(
        lists=[list_table("test", bounce_threshold=100.0, bounce_score_interval_days=0.0)]
    )
    add(
        server,
        "anne.person@dom.ain",
        "userx@its.example.nl",
        "userx@example.com",
        "userx@example.de",
        "bystander@example.org",
    )
    # Postfix, Exim, Exchange, Gmail (same member as Exchange), qmail
    for name in ("dsn_10.txt", "exim_01.txt", "microsoft_01.txt", "simple_17.txt", "qmail_01.txt"):
        server.send("", BOUNCES, sample(name))
    expected = {
        "anne.person@dom.ain": 1.0,
        "userx@its.example.nl": 1.0,
        "userx@example.com": 2.0,
        "userx@example.de": 1.0,
        "bystander@example.org": 0.0,
    }
    server.wait_for_state(lambda: scores(server) == expected, what=f"scores {expected}")
    listed = members_of(server.config_path, "test")
    assert listed["userx@example.com"]["bounce_score"] == 2.0
    assert listed["userx@example.com"]["state"] == "enabled"


def test_policy_refusals_are_recorded_but_not_counted(start_server) -> None:
    server = start_server(lists=[list_table("test", bounce_score_interval_days=0.0)])
    add(server, "david.r@gmail.com", "dead@x.example")
    server.send("", BOUNCES, sample("simple_42.txt"))  # Gmail 5.7.1 spam
    dmarc = "smtp; 550-5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy"
    server.send("", BOUNCES, dsn_bytes("david.r@gmail.com", status="5.0.0", diag=dmarc))
    server.send("", BOUNCES, dsn_bytes("dead@x.example"))  # processed after the others
    server.wait_for_state(lambda: scores(server)["dead@x.example"] == 1.0, what="the later bounce")
    assert scores(server)["david.r@gmail.com"] == 0.0
    assert [e[:2] for e in events(server)] == [
        ("david.r@gmail.com", "policy"),
        ("david.r@gmail.com", "policy"),
        ("dead@x.example", "hard"),
    ]


def test_threshold_sends_probe_and_only_a_bouncing_probe_disables_then_removes(
    start_server, sink: Sink
) -> None:
    interval = 1.0 / 86400  # one second
    server = start_server(
        lists=[
            list_table(
                "test",
                bounce_threshold=2.0,
                bounce_score_interval_days=0.0,
                bounce_warnings=1,
                bounce_warning_interval_days=interval,
            )
        ]
    )
    add(server, "dead@x.example", "fine@y.example")
    server.send("", BOUNCES, dsn_bytes("dead@x.example"))
    server.send("", BOUNCES, dsn_bytes("dead@x.example"))
    probe = sink.wait_for(lambda got: any("probe-" in m.mail_from for m in got))[-1]
    assert probe.rcpt_tos == ["dead@x.example"]
    assert probe.mail_from.startswith("test-bounces+probe-")
    assert probe.message["X-Listserv-Notice"] == "bounce_probe"
    assert members_of(server.config_path, "test")["dead@x.example"]["state"] == "probing"

    # A post still reaches the member until the probe bounces.
    server.send("fine@y.example", f"test@{DOMAIN}", make_message("fine@y.example", subject="1"))
    sink.wait_for(lambda got: any("dead@x.example" in m.rcpt_tos for m in posts(got, "[test] 1")))

    server.send("", probe.mail_from, dsn_bytes("dead@x.example"))
    notice = sink.wait_for(lambda got: bool(notices(got, "bounce_disabled")))
    disabled = notices(notice, "bounce_disabled")[0]
    assert disabled.rcpt_tos == ["dead@x.example"]
    assert "dead@x.example" in disabled.message.get_content()
    listed = members_of(server.config_path, "test")["dead@x.example"]
    assert (listed["state"], listed["disabled_reason"]) == ("disabled: bounces", "bounces")
    server.send("fine@y.example", f"test@{DOMAIN}", make_message("fine@y.example", subject="2"))
    got = sink.wait_for(lambda got: bool(posts(got, "[test] 2")))
    assert [m.rcpt_tos for m in posts(got, "[test] 2")] == [["fine@y.example"]]

    got = sink.wait_for(lambda got: bool(notices(got, "bounce_removed")))
    reminders = notices(got, "bounce_disabled")
    assert [m.message["Subject"].startswith("Reminder:") for m in reminders] == [False, True]
    assert notices(got, "bounce_removed")[0].rcpt_tos == ["dead@x.example"]
    assert "dead@x.example" not in members_of(server.config_path, "test")
    assert ("dead@x.example", "removed", "removed: bounces") in events(server)


def notices(got: list[Received], kind: str) -> list[Received]:
    return [m for m in got if m.message["X-Listserv-Notice"] == kind]


def posts(got: list[Received], subject: str) -> list[Received]:
    return [m for m in got if m.message["Subject"] == subject]


def test_a_probe_that_does_not_bounce_clears_the_score_and_enable_restores(
    start_server, sink: Sink
) -> None:
    server = start_server(
        lists=[
            list_table(
                "test",
                bounce_threshold=1.0,
                bounce_score_interval_days=0.0,
                bounce_probe_days=0.5 / 86400,
            )
        ]
    )
    add(server, "flaky@x.example")
    server.send("", BOUNCES, dsn_bytes("flaky@x.example"))
    sink.wait_for(lambda got: any("probe-" in m.mail_from for m in got))
    server.wait_for_state(
        lambda: members_of(server.config_path, "test")["flaky@x.example"]["state"] == "enabled",
        what="the unanswered probe to expire",
    )
    assert scores(server)["flaky@x.example"] == 0.0
    # An operator re-enables a member disabled by bounces.
    with server.app.sessions.begin() as session:
        member = session.scalar(select(Member))
        member.disabled_reason, member.bounce_score = "bounces", 3.0
    result = cli(server.config_path, "members", "set", "test", "flaky@x.example", "--enable")
    assert result.exit_code == 0 and "enabled" in result.output, result.output
    listed = members_of(server.config_path, "test")["flaky@x.example"]
    assert (listed["state"], listed["bounce_score"]) == ("enabled", 0.0)


def test_a_5xx_at_delivery_counts_like_a_bounce(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", bounce_score_interval_days=0.0)])
    add(server, "gone@x.example", "filtered@y.example", "ok@z.example")
    sink.rcpt_reply["gone@x.example"] = "550 5.1.1 <gone@x.example>: user unknown"
    sink.rcpt_reply["filtered@y.example"] = "550 5.7.1 Message rejected as spam"
    server.send("ok@z.example", f"test@{DOMAIN}", make_message("ok@z.example"))
    sink.wait_for_recipients({"ok@z.example"})
    server.wait_for_state(lambda: len(events(server)) == 2, what="both refusals recorded")
    assert scores(server) == {"gone@x.example": 1.0, "filtered@y.example": 0.0, "ok@z.example": 0.0}
    assert sorted(e[:2] for e in events(server)) == [
        ("filtered@y.example", "policy"),
        ("gone@x.example", "hard"),
    ]


def test_a_probe_refused_at_delivery_disables(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", bounce_threshold=1.0)])
    add(server, "gone@x.example", "ok@y.example")
    sink.rcpt_reply["gone@x.example"] = "550 5.1.1 <gone@x.example>: user unknown"
    server.send("ok@y.example", f"test@{DOMAIN}", make_message("ok@y.example"))
    server.wait_for_state(
        lambda: (
            members_of(server.config_path, "test")["gone@x.example"]["state"] == "disabled: bounces"
        ),
        what="the post refused, the probe refused, delivery disabled",
    )
    assert [e[2] for e in events(server)][:2] == ["score 1: probe sent", "probe bounced: disabled"]
    assert members_of(server.config_path, "test")["ok@y.example"]["state"] == "enabled"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_verp_sends_one_envelope_per_member_and_decodes_bounces(
    start_server, sink: Sink, pipelining: bool
) -> None:
    sink.pipelining = pipelining
    server = start_server(
        lists=[list_table("test", bounce_score_interval_days=0.0)], delivery={"verp": True}
    )
    # Refused mid-stream: the members after it still get their copies.
    add(server, "gone@w.example", "a+tag@x.example", "b@y.example")
    sink.rcpt_reply["gone@w.example"] = "550 5.1.1 <gone@w.example>: user unknown"
    server.send("b@y.example", f"test@{DOMAIN}", make_message("b@y.example"))
    got = sink.wait_for_recipients({"a+tag@x.example", "b@y.example"})
    envelopes = sorted((m.mail_from, tuple(m.rcpt_tos)) for m in got)
    assert envelopes == [
        (f"test-bounces+a+tag=x.example@{DOMAIN}", ("a+tag@x.example",)),
        (f"test-bounces+b=y.example@{DOMAIN}", ("b@y.example",)),
    ]
    message = got[0].message
    assert message["List-Unsubscribe"] == f"<mailto:test-leave@{DOMAIN}>"
    assert message["Subject"] == "[test] Hello"
    server.wait_for_state(
        lambda: scores(server)["gone@w.example"] == 1.0, what="the refusal counted"
    )
    # The report names a forwarding address; the VERP address names the member.
    verp = f"test-bounces+a+tag=x.example@{DOMAIN}"
    server.send("", verp, dsn_bytes("someone@forwarded.example"))
    server.wait_for_state(lambda: scores(server)["a+tag@x.example"] == 1.0, what="VERP bounce")
    assert scores(server)["b@y.example"] == 0.0


def test_a_refusal_after_data_is_classified_per_member(start_server, sink: Sink) -> None:
    sink.pipelining = True
    sink.data_reply = "554 5.7.1 Message rejected under suspicion of SPAM"
    server = start_server(
        lists=[list_table("test", bounce_score_interval_days=0.0)], delivery={"verp": True}
    )
    add(server, "a@x.example", "b@y.example")
    server.send("a@x.example", f"test@{DOMAIN}", make_message("a@x.example"))
    server.wait_for_state(lambda: len(events(server)) == 2, what="both refusals recorded")
    assert sorted(events(server)) == [
        ("a@x.example", "policy", "policy: not counted"),
        ("b@y.example", "policy", "policy: not counted"),
    ]
    assert scores(server) == {"a@x.example": 0.0, "b@y.example": 0.0}
