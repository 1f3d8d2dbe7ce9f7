"""Reading a moderator's or poster's decision from the text of a reply."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from listserv.mail.text import plain_text
from listserv.moderation.verdicts import Verdict, read_verdict

QUOTE = "\n\nOn Monday, listserv wrote:\n> A message is held.\n> approve\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("approve", Verdict("approve")),
        ("Approve." + QUOTE, Verdict("approve")),
        ("approve always", Verdict("approve", always=True)),
        ("> quoted first\n\nОдобрить всегда\n", Verdict("approve", always=True)),
        ("мақұлдау әрқашан", Verdict("approve", always=True)),
        ("одобрить", Verdict("approve")),
        ("reject", Verdict("reject")),
        ("reject: off topic", Verdict("reject", reason="off topic")),
        (
            "Reject\nNot about the environment.\nPlease read the rules." + QUOTE,
            Verdict("reject", reason="Not about the environment.\nPlease read the rules."),
        ),
        ("Отклонить не по теме рассылки", Verdict("reject", reason="не по теме рассылки")),
        ("қабылдамау жарнама", Verdict("reject", reason="жарнама")),
        ("discard", Verdict("discard")),
        ("УДАЛИТЬ", Verdict("discard")),
        ("жою", Verdict("discard")),
        ("withdraw", Verdict("withdraw")),
        ("отозвать", Verdict("withdraw")),
        ("қайтарып алу", Verdict("withdraw")),
    ],
)
def test_decisions(text: str, expected: Verdict) -> None:
    assert read_verdict(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "approved",
        "approvement",
        "I am not sure, what do you think?",
        "> approve\n",
        "-- \napprove",
        "Looks fine\napprove",
    ],
)
def test_no_decision(text: str) -> None:
    assert read_verdict(text) is None


def test_html_only_reply_is_read() -> None:
    message = EmailMessage()
    message.set_content(
        "<div>Approve&nbsp;always</div><blockquote>old</blockquote>", subtype="html"
    )
    assert read_verdict(plain_text(message)) == Verdict("approve", always=True)


@pytest.mark.parametrize(
    "text",
    [
        "reject Spam\nOn Mon, 23 Nov 2026, listserv wrote:\n> held\n",
        "reject Spam\n23.11.2026 10:00, listserv пишет:\n> held\n",
    ],
)
def test_reason_stops_at_the_quote_attribution(text: str) -> None:
    assert read_verdict(text) == Verdict("reject", reason="Spam")


def test_html_reply_quote_is_not_the_reason() -> None:
    message = EmailMessage()
    message.set_content(
        "<div>reject Off topic</div><blockquote>A message is held.<br>approve</blockquote>",
        subtype="html",
    )
    assert read_verdict(plain_text(message)) == Verdict("reject", reason="Off topic")
