"""The ``listserv`` command line: exit codes, one-line errors, text and JSON output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import cli, list_table, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(config_file) -> Path:
    return config_file(
        lists=[
            list_table("environment-kz", language="ru", region="Kazakhstan", topic="Environment"),
            list_table("news", posting="announce"),
        ]
    )


def ok(config: Path, *args: str, input: str | bytes | None = None) -> str:
    result = cli(config, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def error(config: Path, *args: str, input: str | None = None) -> str:
    """Run a command that must fail; returns its one error line."""
    result = cli(config, *args, input=input)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("listserv: ")
    return lines[0].removeprefix("listserv: ")


def test_lists_commands(config: Path) -> None:
    assert ok(config, "lists", "list").splitlines() == [
        f"{'environment-kz':<24} {0:>7}  Test list environment-kz",
        f"{'news':<24} {0:>7}  Test list news",
    ]
    rows = json.loads(ok(config, "lists", "list", "--json"))
    assert rows[0] == {
        "name": "environment-kz",
        "address": "environment-kz@lists.example.org",
        "title": "Test list environment-kz",
        "region": "Kazakhstan",
        "topic": "Environment",
        "language": "ru",
        "posting": "members",
        "members": 0,
    }
    shown = json.loads(ok(config, "lists", "show", "news", "--json"))
    assert shown["posting"] == "announce" and shown["address"] == "news@lists.example.org"
    assert "posting: announce" in ok(config, "lists", "show", "news").splitlines()

    assert ok(
        config, "lists", "create", "media-kg", "--language", "ru", "--owner", "O@Мысал.Қаз"
    ) == ("created media-kg@lists.example.org\n")
    created = json.loads(ok(config, "lists", "show", "media-kg", "--json"))
    assert created["owners"] == ["o@xn--80awbu3c.xn--80ao21a"]
    assert created["subject_prefix"] == "[media-kg] "
    assert error(config, "lists", "create", "media-kg") == "list 'media-kg' already exists"
    assert error(config, "lists", "create", "bad-owner", "--owner", "nobody").startswith(
        "not a mail address"
    )
    assert error(config, "lists", "create", "x", "--posting", "all") == (
        "error: Invalid value for '--posting': 'all' is not one of 'open', 'members', "
        "'moderated', 'announce' (see 'listserv lists create --help')"
    )
    assert error(config, "lists", "create", "x-request").startswith(
        "NAME: 'x-request' is not a valid list name"
    )
    assert ok(config, "lists", "delete", "media-kg", "--yes") == "deleted media-kg\n"
    assert error(config, "lists", "show", "media-kg") == "no list named 'media-kg'"
    assert error(config, "lists", "delete", "news", "--yes").startswith(
        "list 'news' is declared in"
    )
    assert error(config, "lists", "delete", "nosuch", "--yes") == "no list named 'nosuch'"


def test_members_commands(config: Path, tmp_path: Path) -> None:
    out = ok(
        config, "members", "add", "--no-welcome", "environment-kz", "A@X.example", "user@мысал.қаз"
    )
    assert out == "added: a@x.example\nadded: user@xn--80awbu3c.xn--80ao21a\n"
    assert ok(config, "members", "add", "--no-welcome", "environment-kz", "a@x.example") == (
        "already a member: a@x.example\n"
    )
    ok(config, "members", "add", "--no-welcome", "environment-kz", "d@x.example", "--digest")
    assert (
        error(config, "members", "add", "--no-welcome", "nosuch", "a@x.example")
        == "no list named 'nosuch'"
    )
    assert error(
        config, "members", "add", "--no-welcome", "environment-kz", "b@x.example", "not valid"
    ) == ("not a mail address: 'not valid'")
    # A refused address adds nobody, not even the valid ones before it.
    assert "b@x.example" not in ok(config, "members", "list", "environment-kz")

    members = json.loads(ok(config, "members", "list", "environment-kz", "--json"))
    assert [(m["address"], m["delivery"]) for m in members] == [
        ("a@x.example", "regular"),
        ("d@x.example", "digest"),
        ("user@xn--80awbu3c.xn--80ao21a", "regular"),
    ]
    assert ok(config, "members", "list", "environment-kz").splitlines()[0] == (
        "a@x.example                    regular  enabled"
    )

    out = ok(config, "members", "set", "environment-kz", "USER@мысал.қаз", "--delivery", "nomail")
    assert out == "user@xn--80awbu3c.xn--80ao21a: delivery nomail, moderated False, enabled\n"
    ok(config, "members", "set", "environment-kz", "a@x.example", "--moderated")
    assert json.loads(ok(config, "members", "list", "environment-kz", "--json"))[0]["moderated"]
    assert error(
        config, "members", "set", "environment-kz", "z@x.example", "--delivery", "digest"
    ) == ("not a member of environment-kz: z@x.example")
    assert "'weekly' is not one of 'regular'" in error(
        config, "members", "set", "environment-kz", "a@x.example", "--delivery", "weekly"
    )

    assert error(config, "members", "remove", "environment-kz", "z@x.example") == (
        "not a member of environment-kz: z@x.example"
    )
    assert ok(config, "members", "remove", "environment-kz", "d@x.example") == (
        "removed: d@x.example\n"
    )

    good = tmp_path / "members.txt"
    good.write_text(
        "# exported from the old server\n"
        "Айгерим Сапарова <aigerim@ngo.example.kz>\n"
        "\n"
        "<b@y.example>\n"
        "a@x.example\n",
        encoding="utf-8",
    )
    assert ok(config, "members", "import", "environment-kz", str(good)) == (
        "imported 2 new members (1 already subscribed)\n"
    )
    members = json.loads(ok(config, "members", "list", "environment-kz", "--json"))
    names = {m["address"]: m["display_name"] for m in members}
    assert names["aigerim@ngo.example.kz"] == "Айгерим Сапарова"
    assert "b@y.example" in names

    bad = tmp_path / "bad.txt"
    bad.write_text("c@z.example\nNot Valid\n", encoding="utf-8")
    assert error(config, "members", "import", "environment-kz", str(bad)) == (
        f"{bad}:2: not a mail address: 'Not Valid'"
    )
    assert "c@z.example" not in ok(config, "members", "list", "environment-kz")

    excel = tmp_path / "excel.csv"
    excel.write_bytes("\ufeffАлия <aliya@ngo.example.kz>\r\n".encode())
    assert ok(config, "members", "import", "environment-kz", str(excel)).startswith("imported 1")
    legacy = tmp_path / "legacy.txt"
    legacy.write_bytes("Алия <aliya2@ngo.example.kz>\n".encode("cp1251"))
    assert error(config, "members", "import", "environment-kz", str(legacy)) == (
        f"{legacy}: not UTF-8 text; save it as UTF-8 and try again"
    )


POST = (
    "From: a@x.example\r\nTo: environment-kz@lists.example.org\r\nSubject: Привет\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nТекст\r\n"
)


def test_inject_and_queue_status(config: Path, tmp_path: Path) -> None:
    ok(config, "members", "add", "--no-welcome", "environment-kz", "a@x.example", "b@y.example")
    status = json.loads(ok(config, "queue", "status", "--json"))
    assert status == {"queued": 0, "deferred": 0, "sending": 0, "sent": 0, "failed": 0, "inbox": 0}
    message = tmp_path / "post.eml"
    message.write_bytes(POST.encode())
    assert ok(config, "inject", "environment-kz", str(message)) == "message 1: distributed\n"
    assert ok(config, "inject", "environment-kz", input=POST) == "message 2: distributed\n"
    stranger = POST.replace("a@x.example", "stranger@z.example")
    assert ok(config, "inject", "environment-kz", input=stranger) == "message 3: held: nonmember\n"
    # Two posts for two members each, and the stranger's notice that its post is held.
    assert json.loads(ok(config, "queue", "status", "--json"))["queued"] == 5
    assert "queued: 5" in ok(config, "queue", "status").splitlines()
    assert error(config, "inject", "nosuch", input=POST) == "no list named 'nosuch'"
    assert error(config, "inject", "environment-kz", input="") == "empty message"


def test_db_upgrade(config: Path) -> None:
    assert ok(config, "db", "upgrade") == "database is up to date\n"
    assert ok(config, "db", "upgrade", "--config", str(config)) == "database is up to date\n"


def test_real_subprocess(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'listserv.db'}"
    config = write_config(
        tmp_path, database, None, [list_table("environment-kz"), list_table("news")]
    )
    ok(config, "members", "add", "--no-welcome", "news", "a@x.example")
    result = subprocess.run(
        [sys.executable, "-m", "listserv", "--config", str(config), "lists", "list", "--json"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [(r["name"], r["members"]) for r in json.loads(result.stdout)] == [
        ("environment-kz", 0),
        ("news", 1),
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "listserv",
            "members",
            "add",
            "--no-welcome",
            "nosuch",
            "a@x.example",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LISTSERV_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "listserv: no list named 'nosuch'\n"


def test_serve_on_a_port_in_use_says_so(config_file, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = config_file(server={"listen": f"127.0.0.1:{port}"})
        assert error(config, "serve") == (
            f"server.listen: cannot listen on 127.0.0.1:{port}: Address already in use"
        )


def test_members_import_in_bulk_counts_members_and_repeats_as_subscribed(
    config_file, tmp_path
) -> None:
    config = config_file(lists=[list_table("test")])
    assert ok(config, "members", "add", "--no-welcome", "test", "m7@x.example", "m9001@x.example")
    # More than one lookup chunk, two addresses already members, one line given twice.
    lines = [f"Member {i} <m{i}@x.example>" for i in range(12_000)] + ["M5@X.example"]
    big = tmp_path / "big.txt"
    big.write_text("\n".join(lines), encoding="utf-8")
    assert ok(config, "members", "import", "test", str(big)) == (
        "imported 11998 new members (3 already subscribed)\n"
    )
    shown = json.loads(ok(config, "lists", "show", "test", "--json"))
    assert shown["members"] == 12_000
    members = {m["address"]: m for m in json.loads(ok(config, "members", "list", "test", "--json"))}
    assert members["m5@x.example"]["display_name"] == "Member 5"
    assert members["m11999@x.example"]["delivery"] == "regular"
    again = ok(config, "members", "import", "test", str(big), "--digest")
    assert again == "imported 0 new members (12001 already subscribed)\n"
