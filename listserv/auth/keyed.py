"""HMAC-SHA256 under one key for many messages: the VERP address and the one-click link of
every member's copy each take one. ``hmac.new`` sets OpenSSL's HMAC up anew for each (about
three times the cost of the MAC itself); here the key's inner and outer hash states are made
once and copied, which is what HMAC is (RFC 2104)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import lru_cache

BLOCK = 64  # SHA-256's block size
INNER = bytes(b ^ 0x36 for b in range(256))
OUTER = bytes(b ^ 0x5C for b in range(256))
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# Every pair of base32 digits, indexed by the 10 bits they stand for.
BASE32_PAIRS = [a + b for a in BASE32 for b in BASE32]


@lru_cache(maxsize=16)
def hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """``message → HMAC-SHA256(key, message)``."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    inner = hashlib.sha256(key.translate(INNER))
    outer = hashlib.sha256(key.translate(OUTER))

    def mac(message: bytes) -> bytes:
        state = inner.copy()
        state.update(message)
        result = outer.copy()
        result.update(state.digest())
        return result.digest()

    return mac


def base32_lower(data: bytes) -> str:
    """Lower-case base32 of *data*; 5 bytes (40 bits) at a time without padding it needs
    none of Python's slow ``base64.b32encode``."""
    if len(data) % 5:
        return base64.b32encode(data).decode("ascii").lower()
    number = int.from_bytes(data, "big")
    return "".join(
        [BASE32_PAIRS[(number >> shift) & 1023] for shift in range(len(data) * 8 - 10, -1, -10)]
    )
