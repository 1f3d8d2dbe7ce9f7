"""A private Postfix instance for system tests: its own config, queue and data directories in
a temporary directory, listening on a loopback port, never the system's instance.

Its main.cf is the recipe in ``contrib/postfix/main.cf`` (with the maps of
``contrib/postfix/``, the port changed) plus what makes it private: the directories, loopback
only, no DNS (the relayhost is the test's sink, by address), a log file instead of syslog.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "contrib" / "postfix"
DAEMONS = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def command(name: str) -> str:
    """Postfix's commands live in /usr/sbin, which a CI job's PATH may lack."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def postfix_available() -> bool:
    return Path(command("postfix")).exists()


class PrivatePostfix:
    """``PrivatePostfix(port, listserv_lmtp, relayhost).start()``; ``stop()`` ends it and
    removes its directory. ``log()`` is its mail log, for failure messages."""

    def __init__(self, port: int, listserv: str, relayhost: str) -> None:
        # Postfix's daemons run as the postfix user: the directory must be reachable by it,
        # which a pytest tmp_path (mode 0700 under root's) is not.
        self.base = Path(tempfile.mkdtemp(prefix="listserv-postfix-"))
        self.base.chmod(0o755)
        self.conf = self.base / "conf"
        self.port = port
        for name in ("conf", "queue", "data"):
            (self.base / name).mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.base / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        recipe = (RECIPE / "main.cf").read_text(encoding="utf-8")
        recipe = recipe.replace("hash:/etc/postfix/", f"hash:{self.conf}/")
        private = f"""
compatibility_level = 3.6
queue_directory = {self.base}/queue
data_directory = {self.base}/data
mail_owner = postfix
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.lists.example.org
mydestination =
alias_maps =
alias_database =
relayhost = {relayhost}
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
maillog_file = {self.base}/maillog
# A loaded test machine may take more than the default 3 polls to answer a probe.
address_verify_poll_count = 15
maillog_file_prefixes = {self.base}
"""
        (self.conf / "main.cf").write_text(private + recipe, encoding="utf-8")
        (self.conf / "master.cf").write_text(
            f"127.0.0.1:{port} inet n - n - - smtpd\n" + DAEMONS, encoding="utf-8"
        )
        for name in ("listserv_transport", "listserv_verify"):
            text = (RECIPE / name).read_text(encoding="utf-8")
            (self.conf / name).write_text(
                text.replace("lmtp:inet:127.0.0.1:8025", f"lmtp:inet:{listserv}"),
                encoding="utf-8",
            )
            self._postfix(command("postmap"), "-c", str(self.conf), str(self.conf / name))

    def _postfix(self, *command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr}{done.stdout}\n{self.log()}")

    def start(self) -> PrivatePostfix:
        self._postfix(command("postfix"), "-c", str(self.conf), "start")
        return self

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def master_pid(self) -> int | None:
        path = self.base / "queue" / "pid" / "master.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        subprocess.run(
            [command("postfix"), "-c", str(self.conf), "stop"], capture_output=True, timeout=60
        )
        # Teardown only: the master ends its daemons, then itself, within moments.
        deadline = time.monotonic() + 15
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)
