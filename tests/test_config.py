"""config.toml: every key validated, one line naming the key, lookup order, relative paths."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support import cli

from listserv.config import ConfigError, find_config, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "config.toml"


def config(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"server": {"domain": "lists.example.org"}}
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        parse_config(data, Path("/etc/listserv/config.toml"))
    return str(error.value)


def test_the_sample_config_is_valid_and_complete() -> None:
    cfg = load_config(SAMPLE)
    assert len(cfg.lists) == 15
    assert cfg.server.domain == "lists.example.org"
    assert cfg.server.listen == "127.0.0.1:8025"
    assert cfg.database_url == f"sqlite:///{ROOT / 'var' / 'listserv.db'}"
    assert cfg.resolve(cfg.delivery.outbox) == ROOT / "var" / "outbox"
    languages = {lst.language for lst in cfg.lists}
    assert languages == {"en", "ru", "kk"}
    kz = next(lst for lst in cfg.lists if lst.name == "environment-kz")
    assert kz.posting == "members" and kz.nonmember_action == "hold"
    assert kz.digest.frequency == "daily" and kz.digest.max_messages == 30
    assert kz.moderators == ["moderator@ngo.example.kz"]


def test_every_spec_key_is_accepted() -> None:
    cfg = parse_config(
        config(
            server={
                "listen": "[::1]:2525",
                "protocol": "lmtp",
                "max_message_size": 1000,
                "max_recipients": 10,
                "idle_timeout": 30,
            },
            database={"url": "postgresql+psycopg://u@db.example/listserv", "timeout": 5},
            delivery={"smarthost": "relay.example:587", "max_recipients": 50, "verp": True},
            dns={"nameservers": ["127.0.0.1:5353", "9.9.9.9"]},
            dkim={"selector": "ls1", "private_key": "keys/ls1.pem", "domain": "example.org"},
            web={
                "listen": "127.0.0.1:8080",
                "base_url": "https://lists.example.org",
                "secret_file": "keys/web.secret",
            },
            lists=[
                {
                    "name": "environment-kz",
                    "title": "Окружающая среда",
                    "region": "Kazakhstan",
                    "topic": "Environment",
                    "language": "kk",
                    "posting": "announce",
                    "nonmember_action": "discard",
                    "moderators": ["Moderator@Мысал.Қаз"],
                    "owners": ["owner@ngo.example.kz"],
                    "subject_prefix": "[env] ",
                    "reply_to": "list",
                    "digest": {"frequency": "monthly", "max_messages": 5},
                    "dmarc": "wrap",
                    "hold_expiry_days": 7,
                    "bounce_threshold": 2.5,
                }
            ],
        ),
        Path("/etc/listserv/config.toml"),
    )
    assert cfg.server.protocol == "lmtp" and cfg.server.idle_timeout == 30.0
    assert cfg.delivery.verp is True
    assert cfg.dkim is not None and cfg.dkim.selector == "ls1"
    assert cfg.resolve(cfg.dkim.private_key) == Path("/etc/listserv/keys/ls1.pem")
    (lst,) = cfg.lists
    assert lst.moderators == ["moderator@xn--80awbu3c.xn--80ao21a"]
    assert lst.digest.frequency == "monthly"
    assert lst.hold_expiry_days == 7.0


def test_an_idn_server_domain_is_used_in_a_label_form() -> None:
    cfg = parse_config(config(server={"domain": "Списки.Рф"}), Path("/srv/config.toml"))
    assert cfg.server.domain == "xn--h1aafsjc.xn--p1ai"


def test_defaults() -> None:
    cfg = parse_config(config(lists=[{"name": "x"}]), Path("/srv/config.toml"))
    assert cfg.server.protocol == "smtp"
    assert cfg.server.max_message_size == 10485760
    assert cfg.database_url == "sqlite:////srv/var/listserv.db"
    assert cfg.delivery.max_recipients == 500 and cfg.delivery.verp is False
    assert cfg.dkim is None and cfg.web is None
    (lst,) = cfg.lists
    assert lst.subject_prefix == "[x] "
    assert (lst.posting, lst.nonmember_action, lst.reply_to) == ("members", "hold", "poster")


LIST = {"name": "environment-kz"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (config(bogus={}), "bogus: unknown section"),
        ({"lists": []}, "server: missing section"),
        (config(server={"bogus": 1}), "server.bogus: unknown key"),
        (config(server={"domain": "localhost"}), "server.domain: expected a domain name"),
        (config(server={"listen": "8025"}), "server.listen: expected HOST:PORT"),
        (config(server={"listen": "h:99999"}), "server.listen: expected HOST:PORT"),
        (config(server={"protocol": "pop3"}), "server.protocol: expected one of smtp | lmtp"),
        (config(server={"max_message_size": 0}), "server.max_message_size: must be greater"),
        (config(server={"max_message_size": "10M"}), "server.max_message_size: expected a num"),
        (config(server={"max_recipients": -1}), "server.max_recipients: must be greater"),
        (config(server={"workers": -1}), "server.workers: must be 0 or more, got -1"),
        (config(server={"idle_timeout": 0}), "server.idle_timeout: must be greater"),
        (
            config(server={"trusted_relays": ["mx.example.org"]}),
            "server.trusted_relays: expected an IP address or network, got 'mx.example.org'",
        ),
        (config(database={"url": "mysql://x/y"}), "database.url: expected sqlite:///PATH"),
        (config(database={"url": 5}), "database.url: expected text"),
        (config(database={"timeout": 0}), "database.timeout: must be greater"),
        (config(database={"user": "x"}), "database.user: unknown key"),
        (config(delivery={"smarthost": "relay"}), "delivery.smarthost: expected HOST:PORT"),
        (config(delivery={"max_recipients": 0}), "delivery.max_recipients: must be greater"),
        (config(delivery={"verp": "yes"}), "delivery.verp: expected true or false"),
        (config(dns={"nameservers": "1.1.1.1"}), "dns.nameservers: expected a list"),
        (config(dns={"nameservers": ["h:x"]}), "dns.nameservers[0]: expected HOST:PORT"),
        (config(dkim={"selector": "s"}), "dkim.private_key: missing"),
        (config(dkim={"selector": "s", "private_key": "k", "x": 1}), "dkim.x: unknown key"),
        (config(web={"listen": "nope"}), "web.listen: expected HOST:PORT"),
        (config(web={"base_url": "lists.example.org"}), "web.base_url: expected http(s)://"),
        (config(lists={"name": "x"}), "lists: expected [[lists]] tables"),
        (config(lists=[{"title": "t"}]), "lists[0].name: missing"),
        (config(lists=[LIST, LIST]), "lists.environment-kz: declared twice"),
        (config(lists=[{"name": "Env KZ"}]), "lists.name: 'Env KZ' is not a valid list name"),
        (config(lists=[{"name": "x-request"}]), "lists.name: 'x-request' is not a valid list"),
        (
            config(lists=[{**LIST, "posting": "everyone"}]),
            "lists.environment-kz.posting: expected one of open | members | moderated | announce",
        ),
        (config(lists=[{**LIST, "colour": "red"}]), "lists.environment-kz.colour: unknown key"),
        (config(lists=[{**LIST, "language": "de"}]), "lists.environment-kz.language: expected"),
        (config(lists=[{**LIST, "title": 1}]), "lists.environment-kz.title: expected text"),
        (
            config(lists=[{**LIST, "nonmember_action": "bounce"}]),
            "lists.environment-kz.nonmember_action: exp",
        ),
        (
            config(lists=[{**LIST, "moderators": "m@x.example"}]),
            "lists.environment-kz.moderators: expected",
        ),
        (
            config(lists=[{**LIST, "moderators": ["not an address"]}]),
            "lists.environment-kz.moderators: not a mail address",
        ),
        (config(lists=[{**LIST, "owners": ["o@"]}]), "lists.environment-kz.owners: not a mail"),
        (config(lists=[{**LIST, "reply_to": "all"}]), "lists.environment-kz.reply_to: expected"),
        (
            config(lists=[{**LIST, "digest": {"frequency": "hourly"}}]),
            "lists.environment-kz.digest.frequency: expected one of daily | weekly | monthly",
        ),
        (
            config(lists=[{**LIST, "digest": {"max_messages": 0}}]),
            "lists.environment-kz.digest.max_messages: must be greater",
        ),
        (config(lists=[{**LIST, "digest": "daily"}]), "lists.environment-kz.digest: expected a t"),
        (config(lists=[{**LIST, "dmarc": "reject"}]), "lists.environment-kz.dmarc: expected one"),
        (
            config(lists=[{**LIST, "hold_expiry_days": -1}]),
            "lists.environment-kz.hold_expiry_days: must be greater",
        ),
        (
            config(lists=[{**LIST, "bounce_threshold": "high"}]),
            "lists.environment-kz.bounce_threshold: expected",
        ),
    ],
)
def test_bad_keys_and_values_are_named(data: dict[str, Any], message: str) -> None:
    error = error_of(data)
    assert error.startswith(message), error
    assert "\n" not in error


def run_listserv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("LISTSERV_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "listserv", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


BAD_CONFIGS = {
    "unknown key": (
        '[server]\ndomain = "lists.example.org"\n[[lists]]\nname = "environment-kz"\n'
        'posting = "everyone"\n',
        "listserv: lists.environment-kz.posting: expected one of open | members | moderated "
        "| announce, got 'everyone'",
    ),
    "invalid toml": ("[server\n", "not valid TOML"),
    "unreachable database": (
        '[server]\ndomain = "lists.example.org"\n[database]\n'
        'url = "postgresql+psycopg://postgres@127.0.0.1:1/test"\ntimeout = 2\n',
        "listserv: database unavailable:",
    ),
    "unusable sqlite path": (
        '[server]\ndomain = "lists.example.org"\n[database]\nurl = "sqlite:////dev/null/x.db"\n',
        "listserv: database unavailable:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", [["serve"], ["lists", "list"], ["db", "upgrade"]])
def test_bad_config_stops_every_command_with_one_line(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    text, expected = BAD_CONFIGS[case]
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    result = cli(path, *command)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_serve_with_a_bad_config_exits_with_one_line(tmp_path: Path) -> None:
    text, expected = BAD_CONFIGS["unknown key"]
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    result = run_listserv("serve", "--config", "config.toml", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected + "\n")
    result = run_listserv("serve", cwd=tmp_path / "..")
    assert result.returncode == 1
    assert result.stderr == (
        f"listserv: {tmp_path.parent / 'config.toml'}: configuration file not found\n"
    )


def write_named(directory: Path, name: str, domain: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(
        f'[server]\ndomain = "{domain}"\n[database]\nurl = "sqlite:///data/{name}.db"\n'
        f'[[lists]]\nname = "{name}"\n',
        encoding="utf-8",
    )
    return path


def test_lookup_order_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write_named(tmp_path / "explicit", "from-option", "a.example.org")
    environment = write_named(tmp_path / "environment", "from-env", "b.example.org")
    local = write_named(tmp_path / "cwd", "from-cwd", "c.example.org")
    monkeypatch.chdir(local.parent)
    monkeypatch.delenv("LISTSERV_CONFIG", raising=False)
    assert find_config(None) == local
    monkeypatch.setenv("LISTSERV_CONFIG", str(environment))
    assert find_config(None) == environment
    assert find_config(str(explicit)) == explicit

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli(explicit, "lists", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[0] == "from-option"
    # The SQLite path is relative to the config file, not to the working directory.
    assert (tmp_path / "explicit" / "data" / "from-option.db").exists()
    assert not (elsewhere / "data").exists()


def test_sample_config_is_what_the_readme_documents() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    data = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    for section in ("server", "database", "delivery", "dns"):
        for key in data[section]:
            assert f"`{key}`" in readme, f"[{section}] {key} is not documented in README.md"
    for key in data["lists"][0]:
        assert f"`{key}`" in readme, f"[[lists]] {key} is not documented in README.md"
