"""Signatures per second: dkimpy alone against listserv's Signer (OpenSSL RSA, cached body
hash), signing one post for many recipients; then personalized copies (each with its own
link in List-Unsubscribe and in the footer) signed from the template prepared once per post,
in one thread and in two at once, as the delivery workers sign (OpenSSL releases the GIL, so
two threads should approach twice one on two idle cores).

    python bench/dkim_sign.py [--seconds 3] [--bits 2048] [--body-kib 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listserv.auth.dkim import SIGNED_HEADERS, Signer, generate_key

DOMAIN = "lists.example.org"


def message(recipient: int, body: bytes) -> bytes:
    return (
        b"From: Ann <ann@example.com>\r\n"
        b"To: member%d@example.net\r\n"
        b"Subject: [environment-kz] Bench\r\n"
        b"Message-ID: <bench@example.com>\r\n"
        b"List-Id: <environment-kz.lists.example.org>\r\n"
        b"\r\n" % recipient
    ) + body


def rate(sign: Callable[[bytes], bytes], body: bytes, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign(message(count, body))
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--body-kib", type=int, default=20)
    args = parser.parse_args()
    body = (b"A line of a post, in the list's language. " * 24 + b"\r\n") * (args.body_kib)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "key.pem"
        generate_key(path, args.bits)
        pem = path.read_bytes()
    signer = Signer(pem, "ls1", DOMAIN, DOMAIN)
    include = list(SIGNED_HEADERS)

    def dkimpy_only(raw: bytes) -> bytes:
        return (
            dkim.sign(
                raw,
                b"ls1",
                DOMAIN.encode(),
                pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=include,
            )
            + raw
        )

    print(f"RSA-{args.bits}, {args.body_kib} KiB body, one post to many recipients:")
    slow = rate(dkimpy_only, body, args.seconds)
    print(f"  dkimpy only        {slow:8.0f} signatures/s")
    fast = rate(signer.sign, body, args.seconds)
    print(f"  listserv Signer    {fast:8.0f} signatures/s  ({fast / slow:.1f}x)")
    digest = b"\0" * 32
    bound = rate(lambda _: signer.key.sign(digest, PKCS1v15(), Prehashed(SHA256())), b"", 1.0)
    print(f"  (RSA step alone    {bound:8.0f} signatures/s: the upper bound)")
    template = message(0, body).replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <MARK>\r\n\r\n", 1) + (
        b"-- \r\nUnsubscribe: MARK\r\n"
    )
    sign_copy = signer.copy_signer(template, b"MARK")
    link = b"https://lists.example.org/u/bWVtYmVy.c2lnbmF0dXJl"
    copies = rate(lambda _: sign_copy(link), b"", args.seconds)
    print(
        f"  personalized copy  {copies:8.0f} signatures/s  ({copies / bound:.0%} of the RSA step)"
    )
    rates: list[float] = []
    threads = [
        threading.Thread(
            target=lambda: rates.append(rate(lambda _: sign_copy(link), b"", args.seconds))
        )
        for _ in range(2)
    ]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cores = (time.process_time() - cpu) / args.seconds
    print(f"  copies, 2 threads  {sum(rates):8.0f} signatures/s  ({cores:.2f} CPU per second)")


if __name__ == "__main__":
    main()
