"""Every template in every language, rendered with realistic data and read as a member would.

Russian and Kazakh mail must not slip into English (outside addresses and command examples),
show punycode, print a Python value, give a time in UTC when the list has a time zone, or
break a sentence in the middle of a line.
"""

from __future__ import annotations

import re
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from listserv.config import DigestConfig, ListConfig, load_config
from listserv.mail.templates import BUILTIN, Templates
from listserv.moderation.decisions import Decider
from listserv.store.lists import MailList
from listserv.store.models import HeldMessage

LANGUAGES = ("ru", "kk", "en")
DOMAIN = "lists.example.org"
MEMBER = "aigul@xn--80awbu3c.xn--80ao21a"  # aigul@мысал.қаз
TOKEN = "k3zq7m2xw4yv5tnpb6rf2jd7hsa4ceuo"
# 2026-12-05 09:00 UTC is 14:00 in Almaty (UTC+5): what every date must show.
MOMENT = datetime(2026, 12, 5, 9, 0)
LOCAL_TIME = "14:00"
# Every template a mail or page is made from (macros.txt and _*.txt are parts of them).
TEMPLATE_NAMES = sorted(
    p.name
    for p in (BUILTIN / "en").iterdir()
    if p.is_file() and p.name != "macros.txt" and p.name[0] != "_"
)
# Data that is no wording of ours: the operator's user name, a poster's file name.
DATA = ("root", "report.pdf")
# Latin words a Russian or Kazakh text may show: command words given in brackets after the
# Russian or Kazakh ones, and the server's command line for moderators.
COMMAND_EXAMPLES = {
    "help", "lists", "info", "subscribe", "unsubscribe", "set", "delivery", "confirm", "end",
    "regular", "digest", "plain", "nomail", "approve", "always", "reject", "discard",
    "listserv", "held", "Re",
}  # fmt: skip
ADDRESS_OR_URL = re.compile(r"\S+@\S+|https?://\S+")
PYTHON_VALUES = re.compile(
    r"\bNone\b|\bTrue\b|\bFalse\b|\{'|'\}|\[\]|<listserv\.|datetime\(|\bnan\b"
)


def mail_list(language: str, **settings: Any) -> MailList:
    config = ListConfig(
        name="environment-kz",
        title={
            "ru": "Окружающая среда — Казахстан",
            "kk": "Қоршаған орта — Қазақстан",
            "en": "Environment — Kazakhstan",
        }[language],
        region="Kazakhstan",
        topic="Environment and Sustainable Development",
        language=language,
        moderators=["moderator@ngo.example.kz"],
        digest=DigestConfig(timezone="Asia/Almaty"),
        **settings,
    )
    return MailList(1, config, DOMAIN)


def held_post(status: str = "pending", rule: str = "command-like", **fields: Any) -> HeldMessage:
    values: dict[str, Any] = {
        "id": 12,
        "list_id": 1,
        "message_id": 1,
        "sender": MEMBER,
        "subject": "Отчёт о семинаре",
        "rule": rule,
        "reason": "the message looks like a command",
        "status": status,
        "held_at": MOMENT,
        "decided_at": None if status == "pending" else MOMENT,
        "decided_by": "",
        "decided_via": "",
        "decision_reason": "",
    }
    values.update(fields)
    return HeldMessage(**values)


def common(mlist: MailList) -> dict[str, Any]:
    return {
        "mlist": mlist,
        "list_address": mlist.address(),
        "request_address": mlist.address("request"),
        "owner_address": mlist.address("owner"),
        "join_address": mlist.address("join"),
        "leave_address": mlist.address("leave"),
        "address": MEMBER,
    }


def contexts(name: str, mlist: MailList) -> list[dict[str, Any]]:
    """Realistic contexts for one template: one per case worth reading."""
    decided = held_post(
        "approved",
        decided_by="deputy@ngo.example.kz (request sent to moderator@ngo.example.kz)",
        decided_via="mail",
    )
    by_cli = held_post(
        "rejected", decided_by="root (command line)", decided_via="cli", decision_reason="Спам"
    )
    withdrawn = held_post("withdrawn", decided_by=MEMBER, decided_via="mail")
    expired = held_post("expired", decided_by="expiry", decided_via="expiry")
    confirm = {
        "token": TOKEN,
        "confirm_address": mlist.address("confirm", TOKEN),
        "confirm_url": f"https://{DOMAIN}/confirm/{TOKEN}",
    }
    held = {"expires": MOMENT, "confirm_address": mlist.address("confirm", TOKEN)}
    title = mlist.config.title
    issue = {"list_name": mlist.name, "title": title, "volume": 2, "number": 7, "can_post": True}
    post = {
        "number": 1,
        "subject": "Семинар",
        "sender": MEMBER,
        "date": "Sat, 05 Dec 2026 09:00:00 +0000",
    }
    by_name: dict[str, list[dict[str, Any]]] = {
        "welcome.txt": [{"delivery": mode} for mode in ("regular", "digest", "plain", "html")],
        "goodbye.txt": [{"delivery": "regular"}],
        "sign_in.txt": [
            {"address": MEMBER, "url": f"https://{DOMAIN}/login/{TOKEN}", "minutes": minutes}
            for minutes in (15, 21)
        ],
        "delivery.txt": [{"delivery": mode} for mode in ("digest", "nomail")],
        "confirm.txt": [
            {**confirm, "action": action, "delivery": delivery, "expires": MOMENT}
            for action, delivery in (
                ("subscribe", "regular"),
                ("subscribe", "digest"),
                ("unsubscribe", ""),
                ("set-delivery", "nomail"),
            )
        ],
        "command-reply.txt": [
            {"results": [], "ignored": 0},
            {"results": command_results(mlist), "ignored": 2},
        ],
        "held_notice.txt": [
            {**held, "held": held_post(), "unsubscribe_url": "https://lists.example.org/u/x"},
            {**held, "held": held_post(rule="nonmember"), "unsubscribe_url": ""},
        ],
        "moderation_request.txt": [
            {**held, "held": held_post(rule=rule)}
            for rule in ("nonmember", "size", "recipients", "dmarc-failure", "sender-daily-cap")
        ],
        "moderation_reminder.txt": [
            {
                "pending": [held_post(), held_post(rule="moderated-member", id=13)],
                "expiries": {12: MOMENT, 13: MOMENT},
            }
        ],
        "held_decided.txt": [
            {"held": h, "decider": Decider.recorded(h)} for h in (decided, by_cli, withdrawn)
        ],
        "held_acknowledged.txt": [{"held": h} for h in (decided, by_cli, withdrawn)],
        "held_already_decided.txt": [
            {"held": h, "decider": Decider.recorded(h), "by_moderator": by}
            for h, by in ((decided, True), (by_cli, True), (expired, False), (withdrawn, True))
        ],
        "held_unclear.txt": [{"held": held_post(), "by_moderator": by} for by in (True, False)],
        "held_rejected.txt": [{"held": by_cli, "reason": "Не по теме рассылки"}],
        "held_expired.txt": [{"held": held_post("expired")}],
        "rejected.txt": [
            {"subject": "Вопрос", "rule": rule, "poster": MEMBER, "reason": "English reason"}
            for rule in ("nonmember", "announce-only", "dmarc-failure", "size")
        ],
        "bounce_disabled.txt": [
            {"reminder": reminder, "warnings_left": left}
            for reminder, left in ((False, 3), (True, 0))
        ],
        "bounce_probe.txt": [{}],
        "bounce_removed.txt": [{}],
        "footer.txt": [{"unsubscribe_url": "https://lists.example.org/u/x"}],
        "digest_footer.txt": [{"unsubscribe_url": ""}],
        "digest_masthead.txt": [issue],
        "digest_subject.txt": [issue],
        "digest_end.txt": [issue],
        "digest_toc.txt": [{**issue, "posts": [post]}],
        "digest_omitted.txt": [
            {"type": "application/pdf", "filename": "report.pdf", "size": 123_000},
            {"type": "image/jpeg", "filename": "", "size": 900},
        ],
        "digest.html": [
            {
                **issue,
                "posts": [post],
                "subject": title,
                "masthead": "",
                "footer": "",
                "bodies": [""],
                "date": "",
                "issued_at": MOMENT,
            }
        ],
        "munged_from.txt": [{"poster_name": "Айгүл", "list_name": mlist.name}],
        "unsubscribe.html": [
            {"state": state} for state in ("confirm", "done", "not-member", "invalid")
        ],
    }
    return [{**common(mlist), **extra} for extra in by_name[name]]


def command_results(mlist: MailList) -> list[Any]:
    from listserv.commands.request import CommandResult

    # A list of the region written in English, with its title in the other languages.
    other = MailList(
        2,
        ListConfig(
            name="environment-ca",
            title="Environment — Central Asia",
            titles={
                "ru": "Окружающая среда — Центральная Азия",
                "kk": "Қоршаған орта — Орталық Азия",
            },
            region="Central Asia",
            topic="Environment",
            language="en",
        ),
        DOMAIN,
    )
    return [
        CommandResult("справка", "help"),
        CommandResult(
            "списки", "lists", {"groups": [("Kazakhstan", [mlist]), ("Central Asia", [other])]}
        ),
        CommandResult("информация", "info", {"delivery": "digest"}),
        CommandResult("подписаться", "replaced", {"action": "subscribe"}),
        CommandResult("подписаться дайджест", "confirmation-sent", {"delivery": "digest"}),
        CommandResult("режим дайджест", "confirmation-sent", {"delivery": "digest"}),
        CommandResult("режим абв", "bad-argument", {"usage": "set"}),
        CommandResult("подтвердить x", "bad-token"),
        CommandResult("подтвердить y", "delivery-changed", {"delivery": "plain"}),
        CommandResult("подтвердить z", "held message 3 approved"),
    ]


def rendered(language: str, name: str) -> list[str]:
    templates = Templates()
    mlist = mail_list(language)
    return [templates.text(language, name, **context) for context in contexts(name, mlist)]


def readable_text(text: str) -> str:
    """What a person reads: HTML tags, header names and quoted command lines (``> …``) left
    out."""
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", text, flags=re.S).removeprefix("Subject: ")
    return "\n".join(line for line in text.splitlines() if not line.startswith(">"))


def english_words(text: str, mlist: MailList) -> set[str]:
    text = ADDRESS_OR_URL.sub(" ", readable_text(text)).replace(mlist.name, " ")
    for data in (TOKEN, *DATA):
        text = text.replace(data, " ")
    # Abbreviations (PDF, КБ) are fine; English words are not.
    words = set(re.findall(r"[A-Za-z]*[a-z][A-Za-z]*", text))
    return words - COMMAND_EXAMPLES


def broken_lines(text: str) -> list[str]:
    """Lines of running text cut short in the middle of a sentence: a short line that does not
    end a sentence or clause, continued in lower case on the next line."""
    lines = readable_text(text).splitlines()
    broken = []
    for line, following in pairwise(lines):
        continued = bool(line.strip()) and following[:1].islower()
        if continued and len(line) < 40 and not re.search(r"[.:!?»)—]$", line.rstrip()):
            broken.append(line)
    return broken


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_reads_as_written_by_a_person(language: str, name: str) -> None:
    mlist = mail_list(language)
    for text in rendered(language, name):
        assert "xn--" not in text, text
        assert "aigul@мысал.қаз" in text or "{{" in text or MEMBER not in text
        assert not PYTHON_VALUES.search(readable_text(text)), text
        assert "UTC" not in text or language == "en", text
        assert "2026-12-05" not in text, text
        if str(MOMENT.year) in text:
            assert LOCAL_TIME in text, text
        assert not broken_lines(text), (broken_lines(text), text)
        assert "))" not in readable_text(text), text  # a date's zone inside parentheses
        if language != "en":
            assert not english_words(text, mlist), (english_words(text, mlist), text)


@pytest.mark.parametrize("language", ("ru", "kk"))
def test_lists_reply_names_regions_and_topics_in_the_list_language(language: str) -> None:
    reply = rendered(language, "command-reply.txt")[1]
    assert "Kazakhstan" not in reply and "Central Asia" not in reply
    assert "Environment" not in reply
    assert {"ru": "Окружающая среда — Центральная Азия", "kk": "Қоршаған орта — Орталық Азия"}[
        language
    ] in reply
    assert {"ru": "Казахстан", "kk": "Қазақстан"}[language] in reply
    assert {"ru": "Окружающая среда и устойчивое развитие", "kk": "Қоршаған орта"}[
        language
    ] in reply


def test_dates_are_in_the_list_time_zone_in_words() -> None:
    ru, kk, en = (rendered(language, "confirm.txt")[0] for language in LANGUAGES)
    assert "5 декабря 2026 г., 14:00 (часовой пояс: Алматы)" in ru
    assert "2026 жылғы 5 желтоқсан, 14:00 (Алматы уақыты)" in kk
    assert "5 December 2026, 14:00 (Almaty time)" in en


def test_confirmation_subject_carries_the_token_among_words_of_the_list() -> None:
    subject = rendered("ru", "confirm.txt")[0].splitlines()[0]
    assert subject == (
        "Subject: Подтвердите подписку на рассылку «Окружающая среда — Казахстан» "
        f"(подтвердить {TOKEN})"
    )


def test_an_operator_translation_table_wins(tmp_path: Path) -> None:
    (tmp_path / "translations.toml").write_text(
        '[regions]\n"Kazakhstan" = { ru = "Республика Казахстан" }\n', encoding="utf-8"
    )
    templates = Templates(tmp_path)
    mlist = mail_list("ru")
    context = contexts("command-reply.txt", mlist)[1]
    reply = templates.text("ru", "command-reply.txt", **context)
    assert "Республика Казахстан" in reply
    assert "Окружающая среда и устойчивое развитие" in reply


def readme_example(heading: str) -> str:
    readme = (BUILTIN.parent / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index(heading) :]
    return after.split("```\n", 2)[1].rstrip("\n")


def sample_mail(list_name: str, template: str, **context: Any) -> str:
    """A mail of the sample config's list as its reader sees it: Subject and text."""
    config = load_config(BUILTIN.parent / "config.toml")
    (settings,) = [entry for entry in config.lists if entry.name == list_name]
    mlist = MailList(1, settings, config.server.domain)
    message = Templates().mail(
        settings.language, template, sender="x@y.example", to=MEMBER, domain="y.example",
        **common(mlist), **context,
    )  # fmt: skip
    return f"Subject: {message['Subject']}\n\n{message.get_content().rstrip()}"


def test_the_readme_examples_are_what_the_templates_write() -> None:
    welcome = sample_mail("environment-kz", "welcome.txt", delivery="regular")
    assert readme_example("A Russian welcome") == welcome
    confirmation = sample_mail(
        "disability-kz",
        "confirm.txt",
        action="subscribe",
        delivery="digest",
        token=TOKEN,
        confirm_address="",
        confirm_url="",
        expires=datetime(2026, 12, 5, 9, 30),
    )
    assert readme_example("A Kazakh confirmation request") == confirmation
