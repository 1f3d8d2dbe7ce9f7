"""Routing many posts at once: a list's posts go out in the order intake accepted them, and
one list's slow DNS (the checks of a post wait on it) holds up no other list."""

from __future__ import annotations

from dnsstub import DnsStub
from support import DOMAIN, Sink, cli, list_table, make_message


def test_posts_keep_their_order_while_another_lists_slow_dns_holds_nothing_up(
    start_server, sink: Sink, dns_stub: DnsStub
) -> None:
    # Every lookup about slow.example waits until the test releases it.
    dns_stub.held = {"slow.example", "_dmarc.slow.example"}
    server = start_server(
        lists=[list_table("slow", posting="open"), list_table("fast", posting="open")],
        dns={"timeout": 30},
        delivery={"connections": 1},  # the sink sees the order they were queued in
    )
    for name, member in (("slow", "s@members.example"), ("fast", "f@members.example")):
        result = cli(server.config_path, "members", "add", "--no-welcome", name, member)
        assert result.exit_code == 0, result.output
    slow, fast = f"slow@{DOMAIN}", f"fast@{DOMAIN}"
    # The second post to the slow list has quick checks, but must wait for the first.
    server.send("a@slow.example", slow, make_message("a@slow.example", slow, "slow 1"))
    server.send("b@fast.example", slow, make_message("b@fast.example", slow, "slow 2"))
    for i in range(1, 6):
        server.send("b@fast.example", fast, make_message("b@fast.example", fast, f"fast {i}"))

    got = sink.wait_for(lambda rs: len([r for r in rs if "f@members.example" in r.rcpt_tos]) == 5)
    assert [str(r.message["Subject"]) for r in got] == [f"[fast] fast {i}" for i in range(1, 6)]
    assert sink.messages_to("s@members.example") == []
    assert dns_stub.asked("_dmarc.slow.example") or dns_stub.asked("slow.example")

    dns_stub.release.set()
    got = sink.wait_for(lambda rs: len([r for r in rs if "s@members.example" in r.rcpt_tos]) == 2)
    subjects = [str(r.message["Subject"]) for r in got if "s@members.example" in r.rcpt_tos]
    assert subjects == ["[slow] slow 1", "[slow] slow 2"]
