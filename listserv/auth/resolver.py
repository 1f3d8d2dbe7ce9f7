"""DNS lookups for mail authentication (DMARC policies, DKIM keys, SPF), through the
nameservers of ``[dns]`` with answers kept for their TTL, and "no such record" and failures
for a minute.

A lookup that fails (timeout, SERVFAIL, no nameserver answering) raises :class:`DnsFailure`;
callers decide what a failure means, and for delivery it never means "do not deliver".
"""

from __future__ import annotations

import time

import dns.exception
import dns.nameserver
import dns.resolver

from listserv.config import DnsConfig, host_port


class DnsFailure(Exception):
    """The answer could not be had (timeout, SERVFAIL…): not the same as "no record"."""


# Seconds a failed lookup is answered from memory: a nameserver that is down or never answers
# for a domain would otherwise cost every post from it the whole timeout (RFC 2308 7.1 lets a
# server failure be cached up to five minutes).
FAILURE_TTL = 60.0
# Seconds "no such record" is answered from memory: a DMARC or DKIM record published since is
# seen within a minute.
ABSENT_TTL = 60.0
# Answers remembered at most; past this, the expired ones are let go.
MAX_KEPT = 10_000
# What a lookup found until when (time.monotonic()): the records, or the failure's words.
Kept = tuple[float, list[dns.rdata.Rdata] | str]


class Resolver:
    def __init__(self, config: DnsConfig) -> None:
        if config.nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [_nameserver(s, i) for i, s in enumerate(config.nameservers)]
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                # No /etc/resolv.conf: every lookup fails, which counts as "no policy".
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
        resolver.lifetime = config.timeout
        resolver.timeout = config.timeout
        self.resolver = resolver
        # Answers by (name, type), kept here rather than in dnspython's cache: going through
        # dnspython cost more than the rest of a post's authentication checks.
        self.kept: dict[tuple[str, str], Kept] = {}

    def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The records of *rdtype* at *name*; [] when there are none."""
        key = (name.lower().rstrip("."), rdtype)
        kept = self.kept.get(key)
        if kept is not None and kept[0] > time.monotonic():
            if isinstance(kept[1], str):
                raise DnsFailure(kept[1])
            return kept[1]
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self._keep(key, ABSENT_TTL, [])
            return []
        except dns.exception.DNSException as error:
            failure = f"{name} {rdtype}: {error}"
            self._keep(key, FAILURE_TTL, f"{failure} (failed less than a minute ago)")
            raise DnsFailure(failure) from None
        records = list(answer)
        self._keep(key, answer.expiration - time.time(), records)
        return records

    def _keep(self, key: tuple[str, str], ttl: float, found: list[dns.rdata.Rdata] | str) -> None:
        now = time.monotonic()
        if len(self.kept) >= MAX_KEPT:
            self.kept = {k: v for k, v in self.kept.items() if v[0] > now}
        self.kept[key] = (now + ttl, found)

    def txt(self, name: str) -> list[str]:
        """Each TXT record at *name*, its strings joined, as text."""
        return [
            b"".join(record.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for record in self.query(name, "TXT")
        ]

    def dkim_key(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the key record at *name*, or None."""
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        records = self.txt(name.rstrip("."))
        return records[0].encode("utf-8") if records else None


def _nameserver(entry: str, index: int) -> dns.nameserver.Nameserver | str:
    if entry.count(":") == 1 or entry.startswith("["):
        host, port = host_port(entry, f"dns.nameservers[{index}]")
        return dns.nameserver.Do53Nameserver(host, port)
    return entry
