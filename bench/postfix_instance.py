"""A private Postfix instance for benchmarks: its own configuration, queue and data
directories under a temporary directory, smtpd on a loopback port, relaying everything for
the list domain to a loopback sink. The system instance is never touched (nor /etc/postfix).

    with PostfixInstance(directory, listen_port, sink_port) as postfix: ...
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
127.0.0.1:{listen} inet n - n - 100 smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = {domain}
relayhost = [127.0.0.1]:{sink}
smtp_dns_support_level = disabled
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
biff = no
"""


def available() -> bool:
    return Path(POSTFIX).exists()


class PostfixInstance:
    def __init__(self, root: Path, listen: int, sink: int, domain: str) -> None:
        self.root = root
        self.config = root / "etc"
        self.config.mkdir(parents=True)
        (self.config / "main.cf").write_text(
            MAIN_CF.format(root=root, domain=domain, sink=sink), encoding="utf-8"
        )
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=listen), encoding="utf-8")
        (root / "queue").mkdir()
        # Postfix makes its queue's subdirectories at start, but wants its data directory
        # (locks, caches) owned by its mail_owner already.
        (root / "data").mkdir()
        shutil.chown(root / "data", "postfix")
        self.listen = listen

    def run(self, *command: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config), *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            log = self.root / "maillog"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"postfix {' '.join(command)} failed: {done.stderr}{tail}")

    def __enter__(self) -> PostfixInstance:
        self.run("start")
        return self

    def __exit__(self, *_: object) -> None:
        self.run("stop")
