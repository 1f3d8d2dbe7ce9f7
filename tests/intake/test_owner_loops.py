"""Mail to NAME-owner is forwarded to the owners once: it carries X-BeenThere, mail already
naming this -owner address is not forwarded again, and a bounce or auto-reply another list
passed on is dropped, so two list servers never pass mail back and forth."""

from __future__ import annotations

from email.message import EmailMessage

from support import DOMAIN, Sink, list_table, make_message

from listserv.intake.owner import auto_generated, loop_refusal, mark_forwarded

OWNER = f"test-owner@{DOMAIN}"
OWNERS = ["boss@ngo.example.kz"]


def bounce(subject: str = "Undelivered", **headers: str) -> EmailMessage:
    return make_message("MAILER-DAEMON@mx.example", to=OWNER, subject=subject, **headers)


def test_loop_refusal_and_marking_on_plain_messages() -> None:
    person = make_message("ann@x.example", to=OWNER)
    assert loop_refusal(person, "ann@x.example", OWNER) is None
    mark_forwarded(person, "ann@x.example", OWNER)
    assert person["X-BeenThere"] == OWNER and "Auto-Submitted" not in person
    assert loop_refusal(person, "other-bounces@b.example", OWNER) == (
        "discarded: loop (forwarded by this address before)"
    )
    # Passed on by another list: still forwarded when a person wrote it.
    other = make_message("ann@x.example", to=OWNER, X_BeenThere="b-owner@b.example")
    assert loop_refusal(other, "b-bounces@b.example", OWNER) is None

    assert auto_generated(bounce(), "")
    assert auto_generated(make_message(Auto_Submitted="auto-replied"), "a@x.example")
    assert not auto_generated(make_message(Auto_Submitted="no"), "a@x.example")
    from_list = bounce(X_BeenThere="b-owner@b.example")
    assert loop_refusal(from_list, "b-bounces@b.example", OWNER) is None  # not known automatic
    from_list["Auto-Submitted"] = "auto-forwarded"
    assert loop_refusal(from_list, "b-bounces@b.example", OWNER) == (
        "discarded: automatic mail forwarded by another list"
    )
    direct = bounce()
    assert loop_refusal(direct, "", OWNER) is None
    mark_forwarded(direct, "", OWNER)
    assert direct["Auto-Submitted"] == "auto-forwarded"


def forwards(got, subject: str) -> list:
    return [m for m in got if m.message["Subject"] == subject and m.rcpt_tos == OWNERS]


def test_mail_coming_back_to_the_owner_address_is_not_forwarded_again(
    start_server, sink: Sink
) -> None:
    server = start_server(lists=[list_table("test", owners=OWNERS)])
    server.send("ann@x.example", OWNER, make_message("ann@x.example", to=OWNER, subject="Q"))
    (first,) = sink.wait_for(lambda got: bool(forwards(got, "Q")))
    assert first.mail_from == f"test-bounces@{DOMAIN}"
    assert first.message["X-BeenThere"] == OWNER
    # An owner's address forwards to another list server, which sends it back here (as a
    # forwarding server does: headers kept, an envelope sender of its own).
    server.send("b-bounces@b.example", OWNER, first.raw)
    # A bounce straight to -owner is forwarded, marked automatic, once.
    server.send("", OWNER, bounce("Bounced"))
    (forwarded_bounce,) = forwards(
        sink.wait_for(lambda got: bool(forwards(got, "Bounced"))), "Bounced"
    )
    assert forwarded_bounce.message["Auto-Submitted"] == "auto-forwarded"
    # Coming back from a server that adds its own loop header but drops ours: still stopped.
    again = bounce("Bounced again", X_BeenThere="b-owner@b.example")
    again["Auto-Submitted"] = "auto-forwarded"
    server.send("b-bounces@b.example", OWNER, again)
    # A later message that is forwarded: the ones before it have been dealt with.
    server.send("ann@x.example", OWNER, make_message("ann@x.example", to=OWNER, subject="Last"))
    got = sink.wait_for(lambda got: bool(forwards(got, "Last")))
    assert [m.message["Subject"] for m in got] == ["Q", "Bounced", "Last"]
