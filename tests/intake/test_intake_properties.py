"""Property: any bytes offered at DATA are refused precisely, or stored as a message that
decorates, serialises, personalizes and digests without an exception (tests/fuzzing.py;
``fuzz/run.py`` runs the same checks with many more examples)."""

from __future__ import annotations

from fuzzing import check_intake, mail_bytes
from hypothesis import HealthCheck, example, given, settings

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(mail_bytes)
# Found by fuzz/run.py: a multipart without its boundary, carrying 8-bit text.
@example(b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n\xc2\x80\r\n--b--\r\n')
# … and attached messages with 8-bit headers or an unknown charset, in the plain digest.
@example(b"Content-Type: message/rfc822\r\n\r\nMIME-Version: \xc2\x80\r\n\r\n")
@example(b"Content-Type: message/rfc822\r\n\r\nContent-Type: text/plain; charset=x\r\n\r\n\xc2")
# … and a From the email package's address parser fails on, in the digest's contents.
@example(b"From: .:\r\nContent-Type: text/plain\r\n\r\n")
def test_any_bytes_are_refused_precisely_or_decorate_and_digest(raw: bytes) -> None:
    check_intake(raw)
