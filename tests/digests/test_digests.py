"""Digests over real SMTP: members in digest modes get numbered issues instead of posts."""

from __future__ import annotations

import json
import re
import threading
import time
from email.message import EmailMessage

from digest_support import burst, digest_parts, html_and_text, lines
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from support import DOMAIN, WAIT, Received, RunningServer, Sink, cli, list_table, make_message

from listserv.config import load_config
from listserv.digests.issues import send_due
from listserv.server import prepare
from listserv.store.models import DigestEntry, DigestState, Outgoing

LIST = f"test@{DOMAIN}"
REGULAR = "reg@x.example"
MIME, PLAIN, HTML = "mime@x.example", "plain@x.example", "html@x.example"
# Issues only on request unless a test says otherwise.
NOT_SCHEDULED = {"interval": 86400.0}


def add_members(server: RunningServer, *addresses: str, flag: str = "") -> None:
    result = cli(
        server.config_path,
        "members",
        "add",
        "--no-welcome",
        "test",
        *addresses,
        *[flag] * bool(flag),
    )
    assert result.exit_code == 0, result.output


def post(server: RunningServer, sink: Sink, message: EmailMessage) -> None:
    """Post and wait until the regular member has it, so it is in the open digest."""
    before = len(sink.messages_to(REGULAR))
    server.send(str(message["From"]), LIST, message)
    sink.wait_for(lambda got: len([m for m in got if REGULAR in m.rcpt_tos]) > before)


def send_digest(server: RunningServer, *args: str) -> str:
    result = cli(server.config_path, "digest", "send", "test", *args)
    assert result.exit_code == 0, result.output
    return result.output


def digests_to(sink: Sink, address: str, count: int) -> list[Received]:
    sink.wait_for(lambda got: len([m for m in got if address in m.rcpt_tos]) >= count)
    return sink.messages_to(address)


def wait_until_sent(server: RunningServer) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        counts = json.loads(cli(server.config_path, "queue", "status", "--json").output)
        if counts["queued"] == counts["sending"] == 0:
            return
        assert time.monotonic() < deadline, counts
        threading.Event().wait(0.02)


def issue_of(received: Received) -> tuple[int, int]:
    match = re.fullmatch(r"test Digest, Vol (\d+), Issue (\d+)", received.message["Subject"])
    assert match, received.message["Subject"]
    return int(match[1]), int(match[2])


def russian_post() -> EmailMessage:
    message = make_message(MIME, subject="Засуха в Приаралье")
    message.set_content("Уровень воды снова упал.\n", charset="koi8-r", cte="8bit")
    return message


def english_html_post() -> EmailMessage:
    message = make_message(REGULAR, subject="<b>Report</b> & data", body="Report text.\n")
    message.add_alternative(
        '<p>See <a href="https://data.example/r">data</a>.</p><script>alert(1)</script>'
        '<img src="http://track.example/p.gif">',
        subtype="html",
    )
    return message


def test_digest_members_get_one_issue_in_their_format(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", digest=NOT_SCHEDULED)])
    add_members(server, REGULAR)
    add_members(server, MIME, flag="--digest")
    add_members(server, PLAIN, flag="--plain")
    add_members(server, HTML, flag="--html")
    post(server, sink, russian_post())
    post(server, sink, english_html_post())

    assert "test: Vol 1, Issue 1 (2 posts)" in send_digest(server)
    sink.wait_for_recipients({MIME, PLAIN, HTML})
    for address in (MIME, PLAIN, HTML):
        (only,) = sink.messages_to(address)  # no post on its own, one issue
        assert only.mail_from == f"test-bounces@{DOMAIN}"
        assert issue_of(only) == (1, 1)
        assert only.message["List-Id"] == f'"Test list test" <test.{DOMAIN}>'

    mime = sink.messages_to(MIME)[0].message
    front, posts, footer = digest_parts(mime)
    toc = front.split("Topics in this issue:")[1]
    assert toc.index(f"1. [test] Засуха в Приаралье ({MIME})") < toc.index(
        f"2. [test] <b>Report</b> & data ({REGULAR})"
    )
    assert [p["Subject"] for p in posts] == [
        "[test] Засуха в Приаралье",
        "[test] <b>Report</b> & data",
    ]
    # Each post as it was distributed: prefixed, with the list footer, in its own charset.
    assert posts[0].get_content_charset() == "koi8-r"
    assert lines(posts[0].get_content()).startswith("Уровень воды снова упал.\n")
    assert "To unsubscribe" in posts[0].get_content()
    assert posts[0]["List-Id"] is None  # only the headers a digest keeps
    assert "To unsubscribe" in footer

    plain = burst(sink.messages_to(PLAIN)[0].message.get_content())
    assert [h["Subject"] for h, _ in plain.messages] == [p["Subject"] for p in posts]
    # The list footer each post carries is shown once, at the end.
    assert plain.messages[0][1] == "Уровень воды снова упал."
    assert plain.messages[1][1] == "Report text."
    assert "To unsubscribe" in plain.trailer

    page, text = html_and_text(sink.messages_to(HTML)[0].message)
    assert burst(text).messages == plain.messages
    assert "<script" not in page and "alert(1)" not in page and "track.example" not in page
    assert "&lt;b&gt;Report&lt;/b&gt; &amp; data" in page
    assert "Уровень воды снова упал." in page
    assert page.count("To unsubscribe") == 1


def test_issue_numbers_increase_and_survive_restart(start_server, sink: Sink) -> None:
    first = start_server(lists=[list_table("test", digest=NOT_SCHEDULED)])
    add_members(first, REGULAR)
    add_members(first, MIME, flag="--digest")
    post(first, sink, make_message(REGULAR, subject="One"))
    assert "Vol 1, Issue 1 (1 posts)" in send_digest(first)
    digests_to(sink, MIME, 1)
    # The sink has the issue; wait until the server has recorded it as sent, or a stop in
    # between would give the batch back and the next start would send it again.
    wait_until_sent(first)
    first.stop()

    second = RunningServer(first.config_path).start()
    try:
        post(second, sink, make_message(REGULAR, subject="Two"))
        assert "Vol 1, Issue 2 (1 posts)" in send_digest(second)
        assert "no posts pending" in send_digest(second, "--new-volume")
        post(second, sink, make_message(REGULAR, subject="Three"))
        assert "Vol 2, Issue 1 (1 posts)" in send_digest(second)
        issues = digests_to(sink, MIME, 3)
    finally:
        second.stop()
    assert [issue_of(r) for r in issues] == [(1, 1), (1, 2), (2, 1)]
    assert ["[test] Three" in r.message.as_string() for r in issues] == [False, False, True]


def test_max_messages_sends_an_issue_at_once(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", digest={**NOT_SCHEDULED, "max_messages": 2})])
    add_members(server, REGULAR)
    add_members(server, MIME, flag="--digest")
    post(server, sink, make_message(REGULAR, subject="First"))
    post(server, sink, make_message(REGULAR, subject="Second"))
    (issue,) = digests_to(sink, MIME, 1)
    assert issue_of(issue) == (1, 1)
    _, posts, _ = digest_parts(issue.message)
    assert [p["Subject"] for p in posts] == ["[test] First", "[test] Second"]


def test_scheduled_issue_goes_out_when_its_period_has_passed(start_server, sink: Sink) -> None:
    server = start_server(
        lists=[list_table("test", digest={"interval": 0.5})],
        server={"digest_check_interval": 0.1},
    )
    add_members(server, REGULAR)
    add_members(server, PLAIN, flag="--plain")
    post(server, sink, make_message(REGULAR, subject="Daily news"))
    (issue,) = digests_to(sink, PLAIN, 1)
    assert issue_of(issue) == (1, 1)
    ((headers, _),) = burst(issue.message.get_content()).messages
    assert headers["Subject"] == "[test] Daily news"


def count(session: Session, query) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def test_failure_after_building_leaves_no_issue_and_the_next_run_sends_one(
    start_server, sink: Sink
) -> None:
    server = start_server(lists=[list_table("test", digest=NOT_SCHEDULED)])
    add_members(server, REGULAR)
    add_members(server, MIME, flag="--digest")
    post(server, sink, make_message(REGULAR, subject="Kept"))
    app = prepare(load_config(server.config_path))

    def fail_once_queued(session: Session) -> None:
        # The issue is built and its mail queued in this transaction; the commit then fails.
        if count(session, select(Outgoing).where(Outgoing.kind == "digest")):
            raise RuntimeError("disk full")

    event.listen(app.sessions, "before_commit", fail_once_queued)
    try:
        assert send_due(app, ["test"], force=True) == {"test": "failed: RuntimeError: disk full"}
    finally:
        event.remove(app.sessions, "before_commit", fail_once_queued)
    with app.sessions() as session:
        assert count(session, select(Outgoing).where(Outgoing.kind == "digest")) == 0
        assert count(session, select(DigestEntry)) == 1
        assert session.get(DigestState, 1).issue == 0  # type: ignore[union-attr]
    app.engine.dispose()

    assert "Vol 1, Issue 1 (1 posts)" in send_digest(server)
    post(server, sink, make_message(REGULAR, subject="Later"))
    assert "Vol 1, Issue 2 (1 posts)" in send_digest(server)
    issues = digests_to(sink, MIME, 2)
    assert [issue_of(r) for r in issues] == [(1, 1), (1, 2)]
    assert [p["Subject"] for p in digest_parts(issues[0].message)[1]] == ["[test] Kept"]


def issues_in(received: list[Received]) -> list[Received]:
    """The distinct issues a digest member got: a batch the delivery workers happened to
    send twice is the same message, and not what these tests are about."""
    return list({r.message["Message-ID"]: r for r in received if MIME in r.rcpt_tos}.values())


def test_two_servers_never_build_the_same_issue(start_server, sink: Sink) -> None:
    settings = {"lists": [list_table("test", digest={**NOT_SCHEDULED, "max_messages": 1})]}
    first = start_server(**settings, server={"digest_check_interval": 0.05})
    second = RunningServer(first.config_path).start()
    try:
        add_members(first, REGULAR)
        add_members(first, MIME, flag="--digest")
        subjects = [f"Post {i}" for i in range(6)]
        for i, subject in enumerate(subjects):
            post((first, second)[i % 2], sink, make_message(REGULAR, subject=subject))
        sink.wait_for(lambda got: sum(len(digest_parts(r.message)[1]) for r in issues_in(got)) >= 6)
    finally:
        second.stop()
    issues = issues_in(sink.messages_to(MIME))
    assert sorted(issue_of(r)[1] for r in issues) == list(range(1, len(issues) + 1))
    got = [p["Subject"] for r in issues for p in digest_parts(r.message)[1]]
    assert sorted(got) == sorted(f"[test] {s}" for s in subjects)


def test_digest_send_names_what_is_wrong(config_file) -> None:
    path = config_file(lists=[list_table("test")])
    unknown = cli(path, "digest", "send", "nope")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "listserv: no list named 'nope'"
    no_name = cli(path, "digest", "send", "--new-volume")
    assert no_name.exit_code == 1
    assert no_name.output.strip() == "listserv: --new-volume needs a list NAME"
    nothing = cli(path, "digest", "send")
    assert (nothing.exit_code, nothing.output) == (0, "no posts pending\n")


def test_a_list_without_digest_readers_makes_no_issue(start_server, sink: Sink) -> None:
    """Posts nobody will read as a digest are let go when an issue falls due: no issue is
    built, and the first reader's first issue is number 1, holding only what came after."""
    server = start_server(lists=[list_table("test", digest=NOT_SCHEDULED)])
    add_members(server, REGULAR)
    post(server, sink, make_message(REGULAR, subject="Unread"))
    send_digest(server)
    with Session(prepare(load_config(server.config_path)).engine) as session:
        assert session.scalar(select(func.count()).select_from(DigestEntry)) == 0
        assert session.scalar(select(func.count()).where(Outgoing.kind == "digest")) == 0
    add_members(server, MIME, flag="--digest")
    post(server, sink, make_message(REGULAR, subject="Read"))
    assert "Vol 1, Issue 1 (1 posts)" in send_digest(server)
    (issue,) = digests_to(sink, MIME, 1)
    _, posts, _ = digest_parts(issue.message)
    assert [p["Subject"] for p in posts] == ["[test] Read"]
