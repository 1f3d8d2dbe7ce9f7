"""Issue 12, a command line that helps: help for every option, one-line errors for mistyped
arguments, readable output, ``dkim keygen`` before ``[dkim]``, progress bars on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from support import DOMAIN, list_table
from test_cli import POST, error, ok

from listserv.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(config_file) -> Path:
    return config_file(lists=[list_table("environment-kz"), list_table("news")])


def commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
    return found


def test_every_option_says_what_it_does(config: Path) -> None:
    undocumented = [
        f"{' '.join(path)} {option.opts[0]}"
        for path, command in [(("listserv",), main), *commands(main)]
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]
    assert undocumented == []
    # Fixed values are listed in the help and refused by name.
    create = ok(config, "lists", "create", "--help")
    for listed in ("--language [en|ru|kk]", "--posting [open|members|moderated|announce]"):
        assert listed in create
    assert "--nonmember-action [hold|reject|discard]" in create
    assert "--reply-to [poster|list]" in create
    members_set = ok(config, "members", "set", "--help")
    assert "--delivery [regular|digest|plain|html|nomail]" in members_set
    assert "--bits [1024|2048|3072|4096]" in ok(config, "dkim", "keygen", "--help")


def test_version(config: Path) -> None:
    assert ok(config, "--version") == "listserv 0.1.0\n"


def test_mistyped_arguments_are_one_line_and_exit_1(config: Path) -> None:
    assert error(config, "held", "show", "abc") == (
        "error: Invalid value for 'ID': 'abc' is not a valid integer"
        " (see 'listserv held show --help')"
    )
    assert error(config, "held", "expire", "--at", "yesterday").startswith(
        "error: Invalid value for '--at': 'yesterday' does not match the formats"
    )
    # The flag is named, not the config key it sets.
    assert error(config, "lists", "create", "x", "--language", "fr") == (
        "error: Invalid value for '--language': 'fr' is not one of 'en', 'ru', 'kk'"
        " (see 'listserv lists create --help')"
    )
    assert error(config, "lists", "nosuch") == (
        "error: No such command 'nosuch' (see 'listserv lists --help')"
    )
    assert error(config, "--bogus") == "error: No such option '--bogus' (see 'listserv --help')"
    assert error(config, "members", "add", "news") == (
        "error: Missing argument 'ADDRESSES...' (see 'listserv members add --help')"
    )


def test_inject_checks_the_list_before_the_message(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.eml"
    assert error(config, "inject", "nosuch", str(missing)) == "no list named 'nosuch'"
    assert error(config, "inject", "nosuch", input="") == "no list named 'nosuch'"
    assert error(config, "inject", "news", str(missing)) == f"{missing}: No such file or directory"


def test_queue_retry_refuses_a_mistyped_domain(config: Path) -> None:
    assert error(config, "queue", "retry", "--domain", "not a domain!") == (
        "error: Invalid value for '--domain': not a valid domain: 'not a domain!'"
        " (see 'listserv queue retry --help')"
    )
    assert ok(config, "queue", "retry", "--domain", "Мысал.Қаз") == "queued 0 recipients again\n"


def test_lists_show_is_readable_text(config: Path) -> None:
    ok(config, "lists", "create", "media-kg", "--owner", "o@x.example", "--owner", "p@x.example")
    lines = ok(config, "lists", "show", "media-kg").splitlines()
    assert "owners: o@x.example, p@x.example" in lines
    assert "moderators: (none)" in lines
    assert "region: (none)" in lines
    assert "footer: true" in lines
    by_delivery = lines.index("members_by_delivery:")
    assert lines[by_delivery + 1 : by_delivery + 3] == ["  regular: 0", "  digest: 0"]
    assert lines[lines.index("digest:") + 1] == "  frequency: daily"
    assert not [line for line in lines if re.search(r"[{}]|\[\]|'", line)]


def test_members_list_columns_align(config: Path) -> None:
    ok(config, "members", "add", "--no-welcome", "news", "a@x.example", "long.name@example.org")
    ok(config, "members", "set", "news", "a@x.example", "--delivery", "digest")
    assert ok(config, "members", "list", "news").splitlines() == [
        "a@x.example            digest   enabled",
        "long.name@example.org  regular  enabled",
    ]


def test_held_list_all_shows_who_decided_and_when(config: Path) -> None:
    stranger = POST.replace("a@x.example", "stranger@z.example").replace("environment-kz", "news")
    assert ok(config, "inject", "news", input=stranger) == "message 1: held: nonmember\n"
    (pending,) = json.loads(ok(config, "held", "list", "--json"))
    assert "[" not in ok(config, "held", "list")
    ok(config, "held", "reject", str(pending["id"]), "--reason", "Off topic")
    assert ok(config, "held", "list") == ""
    (decided,) = json.loads(ok(config, "held", "list", "--all", "--json"))
    at = decided["decided_at"][:16].replace("T", " ")
    (line,) = ok(config, "held", "list", "--all").splitlines()
    assert f" nonmember [rejected {at} by {decided['decided_by']}]  Привет" in line
    assert decided["decided_by"].endswith(" (command line)")


def test_dkim_keygen_before_the_section_exists(config: Path, tmp_path: Path) -> None:
    assert error(config, "dkim", "keygen") == (
        "no [dkim] section in the configuration: give --selector and --key"
    )
    assert error(config, "dkim", "keygen", "--selector", "bad label", "--key", "k.pem") == (
        "--selector: not a DNS label: 'bad label'"
    )
    key = tmp_path / "keys" / "dkim.pem"
    out = ok(config, "dkim", "keygen", "--selector", "s2026", "--key", str(key), "--bits", "1024")
    lines = out.splitlines()
    assert lines[0] == f"wrote {key}; publish this TXT record:"
    assert lines[1].startswith(f's2026._domainkey.{DOMAIN}. IN TXT ( "v=DKIM1; k=rsa; p=MIG')
    assert lines[2] == f"then, to sign with it, put in {config}:"
    section = "\n".join(lines[3:]) + "\n"
    assert tomllib.loads(section) == {"dkim": {"selector": "s2026", "private_key": "keys/dkim.pem"}}
    # The README's order: key made, record published, then the section enabled.
    with config.open("a") as file:
        file.write("\n" + section)
    assert ok(config, "lists", "list").startswith("environment-kz")
    assert error(config, "dkim", "keygen").endswith("dkim.pem exists; use --force to replace it")


def run(config: Path, *args: str, terminal: bool) -> str:
    """``python -m listserv`` with stdout on a pseudo-terminal or a pipe; returns stdout."""
    command = [sys.executable, "-m", "listserv", "--config", str(config), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    if not terminal:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout
    controller, terminal_end = pty.openpty()
    with subprocess.Popen(command, env=env, stdout=terminal_end, stderr=subprocess.PIPE) as child:
        os.close(terminal_end)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
    os.close(controller)
    return output.decode()


def test_long_commands_show_progress_on_a_terminal_only(config: Path, tmp_path: Path) -> None:
    addresses = tmp_path / "addresses.txt"
    addresses.write_text("\n".join(f"m{i}@x.example" for i in range(12_000)), encoding="utf-8")
    shown = run(config, "members", "import", "news", str(addresses), terminal=True)
    assert "Importing" in shown and "100%" in shown
    assert shown.rstrip().endswith("imported 12000 new members (0 already subscribed)")
    piped = run(config, "members", "import", "environment-kz", str(addresses), terminal=False)
    assert piped == "imported 12000 new members (0 already subscribed)\n"

    shown = run(config, "db", "prune", terminal=True)
    assert "Pruning" in shown and "100%" in shown and "tokens: 0 deleted" in shown
    assert run(config, "db", "prune", terminal=False).splitlines()[0] == "tokens: 0 deleted"
