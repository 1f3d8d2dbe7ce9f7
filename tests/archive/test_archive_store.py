"""Archiving: distributed posts are archived as distributed, in the posting transaction, and
threaded the same way whether they arrive in order or not (real SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, text
from support import DOMAIN, cli, list_table, make_message

from listserv.archive.manage import import_mbox
from listserv.archive.mbox import mbox_entry
from listserv.archive.placing import headers_of
from listserv.archive.search import Filters, search
from listserv.archive.store import archive_post
from listserv.archive.threading import thread_all
from listserv.mail.codec import to_bytes
from listserv.store.db import make_engine, session_factory, transaction, upgrade
from listserv.store.lists import get_list
from listserv.store.models import ArchivedMessage, ArchiveSearchText, MailingList


def archived(server) -> list[ArchivedMessage]:
    with server.app.sessions() as session:
        return list(session.scalars(select(ArchivedMessage).order_by(ArchivedMessage.id)))


def test_a_distributed_post_is_archived_as_members_received_it(start_server, sink) -> None:
    server = start_server(
        lists=[list_table("test", archive="public"), list_table("quiet", archive="none")]
    )
    for name in ("test", "quiet"):
        result = cli(server.config_path, "members", "add", name, "--no-welcome", "a@x.example")
        assert result.exit_code == 0, result.output
    post = make_message('"Алия Б." <a@x.example>', subject="Water report")
    reply = make_message(
        "a@x.example", subject="Re: [test] Water report", In_Reply_To=post["Message-ID"]
    )
    server.send("a@x.example", f"test@{DOMAIN}", post)
    server.send("a@x.example", f"quiet@{DOMAIN}", make_message("a@x.example", to=f"quiet@{DOMAIN}"))
    server.send("a@x.example", f"test@{DOMAIN}", reply)
    sink.wait_for(lambda got: len(got) == 3)
    rows = server.wait_for_state(lambda: len(archived(server)) == 2 and archived(server))
    first, second = rows
    assert first.message_id == post["Message-ID"].strip("<>")
    assert first.subject == "[test] Water report"
    assert first.sender_name == "Алия Б."
    assert first.sender_address == "a@x.example"
    assert first.sender_obfuscated == "a…@x….example"
    distributed = next(m for m in sink.received if m.message["Message-ID"] == post["Message-ID"])
    assert first.raw == distributed.raw  # what members got, footer and List-* headers included
    assert (second.parent_id, second.thread_id) == (first.id, first.id)
    with server.app.sessions() as session:
        assert session.get(ArchiveSearchText, first.id).words.startswith("test water report")


def public_list_with_member(start_server, member: str, **options: str):
    server = start_server(lists=[list_table("test", archive="public", **options)])
    added = cli(server.config_path, "members", "add", "test", "--no-welcome", member)
    assert added.exit_code == 0, added.output
    return server


def test_a_post_whose_from_is_raw_utf8_is_archived_with_the_name(start_server, sink) -> None:
    server = public_list_with_member(start_server, "a@x.example")
    raw = (
        f"From: Алия Б. <a@x.example>\r\nTo: test@{DOMAIN}\r\nSubject: Су\r\n"
        "Message-ID: <raw-from@x.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nДеректер.\r\n"
    ).encode()
    server.send("a@x.example", f"test@{DOMAIN}", raw)
    sink.wait_for(lambda got: len(got) == 1)
    (row,) = server.wait_for_state(lambda: archived(server))
    assert (row.sender_name, row.sender_address) == ("Алия Б.", "a@x.example")


def message(
    mid: str, day: int, subject: str, irt: str = "", refs: str = "", body: str = "text\n"
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{mid}@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid}@example.org>"
    msg["Date"] = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime(
        "%a, %d %b %Y %H:%M:%S +0000"
    )
    if irt:
        msg["In-Reply-To"] = f"<{irt}@example.org>"
    if refs:
        msg["References"] = " ".join(f"<{r}@example.org>" for r in refs.split())
    msg.set_content(body)
    return to_bytes(msg)


def water_and_air() -> list[bytes]:
    """Two threads, in order."""
    return [
        message("a", 0, "Water"),
        message("b", 1, "Re: Water", irt="a"),
        message("c", 2, "Re: Water", refs="a b"),
        message("d", 3, "Re: Water"),  # by subject
        message("e", 4, "Air"),
        message("f", 5, "Re: Air", irt="e", refs="e"),
        message("g", 50, "Re: Water"),  # outside the subject window
    ]


def test_posts_archived_out_of_order_thread_as_if_in_order(database_url: str) -> None:
    posts = water_and_air()
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    for seed in range(3):
        shuffled = posts[:]
        random.Random(seed).shuffle(shuffled)
        with transaction(sessions) as session:
            mlist = MailingList(name=f"l{seed}", settings={"name": f"l{seed}"})
            session.add(mlist)
            session.flush()
            for raw in shuffled:
                assert archive_post(session, mlist.id, raw) is not None
            assert archive_post(session, mlist.id, shuffled[0]) is None  # once per Message-ID
            rows = list(
                session.scalars(select(ArchivedMessage).where(ArchivedMessage.list_id == mlist.id))
            )
            by_id = {r.id: r.message_id.split("@")[0] for r in rows}
            got = {
                by_id[r.id]: (by_id.get(r.parent_id) if r.parent_id else None, by_id[r.thread_id])
                for r in rows
            }
            expected = {
                m.split("@")[0]: (p.split("@")[0] if p else None, t.split("@")[0])
                for m, (p, t) in thread_all(headers_of(r) for r in rows).items()
            }
            assert got == expected, seed
            assert got["d"] == ("c", "a") and got["g"] == (None, "g") and got["f"] == ("e", "e")
    engine.dispose()


def test_an_import_read_by_worker_processes_archives_what_distribution_archives(
    database_url: str, tmp_path: Path
) -> None:
    """Read in batches of two (so by worker processes), with a Message-ID twice within a
    batch and again in a later one: the rows, words and threads are those of the same posts
    archived one by one as they are distributed, and importing again adds nothing."""
    posts = water_and_air()
    posts = [p.replace(b"\r\n", b"\n") for p in posts]  # as an mbox holds them
    mbox = tmp_path / "posts.mbox"
    with mbox.open("wb") as f:
        for raw in [*posts[:3], posts[2], *posts[3:], posts[1]]:
            f.write(mbox_entry("x@example.org", datetime(2026, 1, 1, tzinfo=UTC), raw))
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        for name in ("live", "imported"):
            session.add(MailingList(name=name, settings={"name": name}))
    with sessions() as session:
        live, imported = (get_list(session, name, DOMAIN) for name in ("live", "imported"))
    with transaction(sessions) as session:
        for raw in posts:
            archive_post(session, live.id, raw)

    assert import_mbox(sessions, imported, mbox, batch_size=2) == (7, 2)
    assert import_mbox(sessions, imported, mbox, batch_size=2) == (0, 9)
    assert archive_of(sessions, imported.id) == archive_of(sessions, live.id)
    engine.dispose()


def mbox_of_posts(path: Path, posts: list[bytes]) -> Path:
    with path.open("wb") as f:
        for raw in posts:
            f.write(mbox_entry("x@example.org", datetime(2026, 1, 1, tzinfo=UTC), raw))
    return path


def lists_named(sessions, *names: str) -> list:
    with transaction(sessions) as session:
        for name in names:
            session.add(MailingList(name=name, settings={"name": name}))
    with sessions() as session:
        return [get_list(session, name, DOMAIN) for name in names]


class Interrupted(Exception):
    """Stands for whatever stops an import (a kill, a full disk) between two batches."""


def test_an_import_cut_short_and_run_again_gives_the_archive_of_one_whole_run(
    database_url: str, tmp_path: Path
) -> None:
    """Replies come before the posts they answer (as in a badly sorted export), so where the
    import first puts them is not where they end up. Stopped after two batches, the import
    leaves those posts in threads of the list; run again, it writes the rest and rethreads."""
    posts = [water_and_air()[i] for i in (2, 1, 3, 0, 5, 4, 6)]
    mbox = mbox_of_posts(tmp_path / "posts.mbox", [p.replace(b"\r\n", b"\n") for p in posts])
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    whole, cut = lists_named(sessions, "whole", "cut")
    assert import_mbox(sessions, whole, mbox, batch_size=2) == (7, 0)

    batches = 0

    def stop_after_two(_read: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        import_mbox(sessions, cut, mbox, stop_after_two, batch_size=2)
    with sessions() as session:
        rows = list(
            session.scalars(select(ArchivedMessage).where(ArchivedMessage.list_id == cut.id))
        )
    ids = {r.id for r in rows}
    assert len(rows) == 4
    assert all(r.thread_id in ids and r.parent_id in (None, *ids) for r in rows)

    assert import_mbox(sessions, cut, mbox, batch_size=2) == (3, 4)
    assert archive_of(sessions, cut.id) == archive_of(sessions, whole.id)
    parents = {m: row[6] for m, row in archive_of(sessions, cut.id).items()}
    assert parents["a@example.org"] is None and parents["b@example.org"] == "a@example.org"
    engine.dispose()


def test_search_finds_word_forms_in_an_imported_archive(database_url: str, tmp_path: Path) -> None:
    """What an import writes (by COPY on PostgreSQL) is found as posts archived one by one
    are: Russian word forms by their stem, English words whatever their case; a "word" too
    long for PostgreSQL's index is left out, and the rest of its post is found."""
    posts = [
        message("ru", 0, "Ледники", body="Ледники Тянь-Шаня тают быстрее.\n"),
        message("en", 1, "Glaciers", body="Glaciers in the Pamirs are MELTING.\n"),
        message("hex", 2, "Dump", body="checksum " + "0f" * 1500 + " attached\n"),
    ]
    mbox = mbox_of_posts(tmp_path / "posts.mbox", [p.replace(b"\r\n", b"\n") for p in posts])
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    (mlist,) = lists_named(sessions, "env")
    assert import_mbox(sessions, mlist, mbox, batch_size=1) == (3, 0)

    def found(query: str) -> list[str]:
        with sessions() as session:
            return [r.message_id for r in search(session, query, Filters([mlist.id]))]

    assert found("ледник") == found("ледниками") == found("ЛЕДНИК Шане") == ["ru@example.org"]
    assert found("glacier melted") == ["en@example.org"]
    assert found("checksum attached") == ["hex@example.org"]
    assert found("ледник glacier") == found("0f" * 1500) == found("засуха") == []
    # A post archived as it is distributed, after the import, is indexed as ever (on SQLite
    # the import wrote its batches' index itself, its trigger put back).
    with transaction(sessions) as session:
        archive_post(session, mlist.id, message("live", 3, "Засуха", body="Засуха.\n"))
        if database_url.startswith("sqlite"):
            session.execute(text("INSERT INTO archive_fts(archive_fts) VALUES ('integrity-check')"))
    assert found("засухи") == ["live@example.org"]
    engine.dispose()


def archive_of(sessions, list_id: int) -> dict[str, tuple]:
    """Every post of the list by Message-ID: its columns, words, parent and thread."""
    with sessions() as session:
        rows = list(
            session.scalars(select(ArchivedMessage).where(ArchivedMessage.list_id == list_id))
        )
        message_ids = {r.id: r.message_id for r in rows}
        return {
            r.message_id: (
                r.subject,
                r.sender_name,
                r.sender_address,
                r.date,
                r.size,
                r.raw,
                message_ids.get(r.parent_id),
                message_ids[r.thread_id],
                session.get(ArchiveSearchText, r.id).words,
            )
            for r in rows
        }


def test_a_post_with_headers_the_email_parser_chokes_on_is_distributed_and_archived(
    start_server, sink
) -> None:
    server = public_list_with_member(start_server, "m@x.example", posting="open")
    raw = (
        f"From: =?utf-8?b?0JDQu9C40Y8=?= <a@x.example>\r\nTo: test@{DOMAIN}\r\n"
        "Subject: odd\r\nMessage-ID: <<<>>>\r\nIn-Reply-To: <<<>>>\r\n"
        "Date: Feb 30 99999\r\n\r\nbody\r\n"
    ).encode()
    server.send("a@x.example", f"test@{DOMAIN}", raw)
    sink.wait_for_recipients({"m@x.example"})
    (row,) = server.wait_for_state(lambda: archived(server), "the post archived")
    assert row.message_id.endswith("@archive.invalid")  # made from its bytes
    assert (row.sender_name, row.sender_address, row.subject) == (
        "Алия",
        "a@x.example",
        "[test] odd",
    )
