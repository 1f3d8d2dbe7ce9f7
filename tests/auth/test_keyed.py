"""The keyed-hash helpers that VERP addresses and one-click links are signed with give what
the standard library gives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from listserv.auth.keyed import base32_lower, hmac_sha256


def test_hmac_matches_the_standard_library_for_every_key_length() -> None:
    for length in (0, 1, 32, 63, 64, 65, 200):
        key = os.urandom(length)
        for message in (b"", b"listserv verp\0list\nann@example.org", os.urandom(5000)):
            expected = hmac.new(key, message, hashlib.sha256).digest()
            assert hmac_sha256(key)(message) == expected
            assert hmac_sha256(key)(message) == expected  # the states are copied, not used up


def test_base32_matches_the_standard_library() -> None:
    for length in range(22):
        data = os.urandom(length)
        assert base32_lower(data) == base64.b32encode(data).decode("ascii").lower()
