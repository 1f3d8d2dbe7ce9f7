"""The operator's files in contrib/ agree with listserv and with each other: the Postfix and
Exim recipes hand mail to the port and protocol of the listserv config beside them, every size
limit is the sample config's, and the systemd units run real commands with the settings the
README promises. (Postfix itself runs the recipe in test_postfix.py.)"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

from click.testing import CliRunner

from listserv.cli.main import main
from listserv.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"


def postfix_setting(name: str) -> str:
    text = (CONTRIB / "postfix" / "main.cf").read_text(encoding="utf-8")
    (value,) = re.findall(rf"^{name}\s*=\s*(.+)$", text, re.MULTILINE)
    return value.strip()


def exim_setting(name: str) -> str:
    text = (CONTRIB / "exim" / "listserv.conf").read_text(encoding="utf-8")
    (value,) = re.findall(rf"^\s*{name}\s*=\s*(.+)$", text, re.MULTILINE)
    return value.strip()


def test_mta_recipes_match_the_listserv_config_beside_them() -> None:
    config = load_config(CONTRIB / "postfix" / "listserv.toml").server
    sample = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))["server"]
    assert config.protocol == "lmtp"
    size = str(sample["max_message_size"])
    assert str(config.max_message_size) == size
    assert postfix_setting("message_size_limit") == size
    assert exim_setting("message_size_limit") == size
    transport = (CONTRIB / "postfix" / "listserv_transport").read_text(encoding="utf-8")
    assert f"{config.domain}    lmtp:inet:{config.listen}" in transport
    assert postfix_setting("relay_domains") == config.domain
    assert postfix_setting("lmtp_send_xforward_command") == "yes"
    host, port = config.listen.split(":")
    assert (exim_setting("hosts"), exim_setting("port")) == (host, port)
    assert exim_setting("protocol") == "lmtp"


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(CONTRIB / "systemd" / name, encoding="utf-8")
    return parser["Service"]


def test_systemd_units_run_listserv_as_its_own_user_and_stop_it_cleanly() -> None:
    for name in ("listserv.service", "listserv@.service", "listserv-web.service"):
        service = unit(name)
        assert service["User"] == "listserv" and service["Group"] == "listserv"
        assert service["KillSignal"] == "SIGTERM"
        assert service["Restart"] == "on-failure"
        if name != "listserv-web.service":
            # serve stops its worker processes itself, after intake.
            assert service["KillMode"] == "mixed"
        assert service["StateDirectory"] == "listserv listserv/keys"
        assert service["StateDirectoryMode"] == "0700"
        assert service["UMask"] == "0077"
    # serve's stop drains intake and delivery (30 s each) before systemd's SIGKILL.
    assert int(unit("listserv.service")["TimeoutStopSec"]) >= 60


def test_the_portal_unit_gives_way_to_delivery_when_the_cpu_is_short() -> None:
    # 100 readers keep a portal process on a whole core; on a shared host delivery must not
    # wait for them (bench/readers_during_fanout.py). systemd's default CPUWeight is 100.
    web = unit("listserv-web.service")
    assert int(web["CPUWeight"]) < 100 and int(web["Nice"]) > 0
    for name in ("listserv.service", "listserv@.service"):
        serve = unit(name)
        assert int(serve.get("CPUWeight", "100")) >= 100 and int(serve.get("Nice", "0")) <= 0


def test_the_serve_command_line_of_the_unit_is_valid() -> None:
    args = shlex.split(unit("listserv.service")["ExecStart"])
    assert args[0].endswith("/listserv")
    result = CliRunner().invoke(main, [*args[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--log-format" in result.output
