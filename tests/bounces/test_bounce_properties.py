"""Property: bounce and feedback-report readers take any bytes (tests/fuzzing.py)."""

from __future__ import annotations

from fuzzing import check_bounce, mail_bytes
from hypothesis import HealthCheck, given, settings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mail_bytes)
def test_bounce_and_arf_readers_take_any_bytes(raw: bytes) -> None:
    check_bounce(raw)
