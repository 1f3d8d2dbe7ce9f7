"""A real DNS server on a loopback UDP port for tests, so no lookup leaves the machine.

It answers TXT (and A) queries from ``records``, a dict the test fills:
``stub.records["_dmarc.example.com"] = ["v=DMARC1; p=reject"]``. A name in ``failures`` is
answered with SERVFAIL (``"servfail"``) or not at all (``"timeout"``). Every other name is
NXDOMAIN. ``queries`` records what was asked, to check caching. ``delays`` holds an answer
back: ``stub.delays["_dmarc.slow.example"] = 2.0`` answers that name two seconds late (other
names are answered meanwhile), and ``delay`` does so for every name; a name in ``held`` is
answered only once ``release`` is set (a nameserver that is slow for as long as a test needs).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 300


@dataclass
class DnsStub:
    records: dict[str, list[str]] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    delay: float = 0.0
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> DnsStub:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        # Closing a socket does not wake a thread blocked on it; a short timeout does.
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    @property
    def address(self) -> str:
        assert self.sock is not None
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        if self.sock is not None:
            self.sock.close()

    def _serve(self) -> None:
        assert self.sock is not None
        while not self.stopping.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                reply = self.answer(dns.message.from_wire(wire))
            except dns.exception.DNSException:
                continue
            if reply is None:
                continue
            name = reply.question[0].name.to_text(omit_final_dot=True).lower()
            if name in self.held or self.delays.get(name, self.delay):
                later = threading.Thread(target=self._answer_later, args=(reply, peer, name))
                later.daemon = True
                later.start()
            else:
                self._send(reply.to_wire(), peer)

    def _answer_later(self, reply: dns.message.Message, peer: tuple[str, int], name: str) -> None:
        if name in self.held:
            self.release.wait(60)
        else:
            self.stopping.wait(self.delays.get(name, self.delay))
        self._send(reply.to_wire(), peer)

    def _send(self, wire: bytes, peer: tuple[str, int]) -> None:
        if self.sock is not None and not self.stopping.is_set():
            self.sock.sendto(wire, peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        failure = self.failures.get(name)
        if failure == "timeout":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if failure == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if rdtype == "TXT" and name in self.records:
            strings = [
                " ".join(f'"{s[i : i + 255]}"' for i in range(0, max(len(s), 1), 255))
                for s in self.records[name]
            ]
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "TXT", *strings))
        elif rdtype == "A" and name in self.addresses:
            response.answer.append(
                dns.rrset.from_text(question.name, TTL, "IN", "A", *self.addresses[name])
            )
        elif not self._exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _exists(self, name: str) -> bool:
        return name in self.records or name in self.addresses

    def asked(self, name: str) -> int:
        return sum(1 for n, _ in self.queries if n == name)
