"""Properties of the readers of command mail, tokens, links and addresses: any input, no
exception, and nothing unsigned ever names a member (tests/fuzzing.py)."""

from __future__ import annotations

from fuzzing import TARGETS, check_command_mail, check_commands, check_links_and_addresses
from hypothesis import HealthCheck, given, settings

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(*TARGETS["commands"][1])
def test_command_lines_and_verdicts_read_any_text(subject: str, body: str) -> None:
    check_commands(subject, body)


@FAST
@given(*TARGETS["command_mail"][1])
def test_command_mail_reads_any_bytes(raw: bytes) -> None:
    check_command_mail(raw)


@FAST
@given(*TARGETS["links"][1])
def test_token_verp_and_recipient_readers_take_any_text(value: str, member: str) -> None:
    check_links_and_addresses(value, member)
