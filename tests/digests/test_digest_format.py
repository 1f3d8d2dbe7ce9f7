"""The digest builders and schedule on plain messages: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import pytest
from digest_support import burst, digest_parts, html_and_text, lines

from listserv.config import ConfigError, DigestConfig, ListConfig
from listserv.digests.format import Issue
from listserv.digests.html import html_digest
from listserv.digests.mime import mime_digest
from listserv.digests.plain import plain_digest
from listserv.digests.schedule import Pending, advance, is_due, next_due
from listserv.mail.codec import parse, to_bytes
from listserv.mail.html_content import html_to_text, sanitize_html
from listserv.mail.templates import Templates
from listserv.store.lists import MailList
from listserv.store.models import DigestState

DOMAIN = "lists.example.org"
TEMPLATES = Templates()
WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def mlist(language: str = "en", **settings: object) -> MailList:
    return MailList(
        1, ListConfig(name="eco", title="Eco list", language=language, **settings), DOMAIN
    )  # type: ignore[arg-type]


def russian_koi8() -> EmailMessage:
    post = EmailMessage()
    post["From"] = "Алия Сейтова <aliya@ngo.example.kz>"
    post["To"] = f"eco@{DOMAIN}"
    post["Subject"] = "Засуха в Приаралье"
    post["Date"] = "Mon, 23 Nov 2026 09:00:00 +0500"
    post["Message-ID"] = "<ru@ngo.example.kz>"
    post["Received"] = "from somewhere"
    post["X-Mailer"] = "Outlook"
    post.set_content("Уровень воды снова упал.\n", charset="koi8-r", cte="8bit")
    return post


def english_html() -> EmailMessage:
    post = EmailMessage()
    post["From"] = "bob@example.com"
    post["Subject"] = "<b>Report</b> & data"
    post["Keywords"] = "water"
    post.set_content("Report text.\n")
    post.add_alternative(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        '<p>See <a href="https://data.example/r">the data</a>.</p>'
        "<script>alert('x')</script><img src=\"http://track.example/p.gif\">"
        "<ul><li>one</li><li>two</li></ul></body></html>",
        subtype="html",
    )
    post.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="r.pdf")
    return post


def html_only() -> EmailMessage:
    post = EmailMessage()
    post["From"] = "carol@example.com"
    post["Subject"] = "Only HTML"
    post.set_content("<p>Hello <b>all</b></p><p>Second &amp; last</p>", subtype="html")
    return post


def issue(*posts: EmailMessage, language: str = "en") -> Issue:
    # As distributed: stored bytes parsed back, as the digest runner does.
    return Issue(mlist(language), 1, 3, WHEN, [parse(to_bytes(p)) for p in posts])


def reread(message: EmailMessage) -> EmailMessage:
    """What a member's client sees: the message as bytes, parsed."""
    return BytesParser(policy=policy.default).parsebytes(to_bytes(message))  # type: ignore[return-value]


def test_mime_digest_has_masthead_toc_posts_and_footer_in_order() -> None:
    digest = reread(mime_digest(issue(russian_koi8(), english_html()), TEMPLATES))
    assert digest["Subject"] == "eco Digest, Vol 1, Issue 3"
    assert digest["List-Id"] == f'"Eco list" <eco.{DOMAIN}>'
    assert digest["Precedence"] == "list"
    front, posts, footer = digest_parts(digest)
    assert f"eco@{DOMAIN}" in front
    toc = front.split("Topics in this issue:")[1]
    assert toc.index("1. Засуха в Приаралье (Алия Сейтова <aliya@ngo.example.kz>)") < toc.index(
        "2. <b>Report</b> & data (bob@example.com)"
    )
    first, second = posts
    assert first["Subject"] == "Засуха в Приаралье"
    assert lines(first.get_content()) == "Уровень воды снова упал.\n"
    assert first["Message-ID"] == "<ru@ngo.example.kz>"
    assert first["Received"] is None and first["X-Mailer"] is None
    assert second["Keywords"] == "water"
    assert [p.get_content_type() for p in second.walk()][-1] == "application/pdf"
    assert "To unsubscribe" in footer


def test_plain_digest_is_rfc1153_in_utf8() -> None:
    digest = reread(plain_digest(issue(russian_koi8(), english_html(), html_only()), TEMPLATES))
    assert digest.get_content_type() == "text/plain"
    assert digest.get_content_charset() == "utf-8"
    parsed = burst(digest.get_content())
    assert "1. Засуха в Приаралье" in parsed.preamble
    (ru_headers, ru_body), (en_headers, en_body), (_, html_body) = parsed.messages
    assert list(ru_headers) == ["Date", "From", "To", "Subject", "Message-ID"]
    assert ru_headers["Subject"] == "Засуха в Приаралье"
    assert ru_body == "Уровень воды снова упал."
    assert en_headers["Keywords"] == "water"
    assert en_body.startswith("Report text.")
    assert '[application/pdf "r.pdf", 8 bytes: not included in the digest]' in en_body
    assert html_body == "Hello all\n\nSecond & last"
    assert "To unsubscribe" in parsed.trailer
    end = "End of eco Digest, Vol 1, Issue 3"
    assert parsed.trailer.endswith(f"\n\n{end}\n{'*' * len(end)}\n")


def test_plain_digest_indents_lines_that_look_like_separators() -> None:
    post = EmailMessage()
    post["Subject"] = "Dashes"
    post.set_content("above\n" + "-" * 30 + "\nbelow\n")
    parsed = burst(plain_digest(issue(post), TEMPLATES).get_content())
    assert len(parsed.messages) == 1
    assert parsed.messages[0][1] == "above\n " + "-" * 30 + "\nbelow"


def test_html_digest_sanitises_posts_and_escapes_text() -> None:
    text_post = EmailMessage()
    text_post["From"] = "eve@example.com"
    text_post["Subject"] = "Plain"
    text_post.set_content("Use <script>x</script> & <b>bold</b>\n")
    digest = reread(html_digest(issue(english_html(), text_post), TEMPLATES))
    page, text = html_and_text(digest)
    burst(text)  # the text alternative is the plain digest
    assert 'name="viewport"' in page
    assert "<script" not in page and "alert(" not in page
    assert "track.example" not in page and "<img" not in page
    assert (
        '<a href="https://data.example/r" rel="noopener noreferrer nofollow">the data</a>' in page
    )
    assert '<a href="#post-1">&lt;b&gt;Report&lt;/b&gt; &amp; data</a>' in page
    assert 'id="post-2"' in page
    assert "Use &lt;script&gt;x&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "not included in the digest" in page


@pytest.mark.parametrize(
    ("language", "subject", "contents"),
    [
        ("ru", "Дайджест eco, том 1, выпуск 3", "Темы этого выпуска:"),
        ("kk", "eco дайджесі, 1-том, 3-шығарылым", "Осы шығарылымның тақырыптары:"),
    ],
)
def test_digest_speaks_the_list_language(language: str, subject: str, contents: str) -> None:
    digest = reread(mime_digest(issue(russian_koi8(), language=language), TEMPLATES))
    assert digest["Subject"] == subject
    assert contents in digest_parts(digest)[0]
    page, _ = html_and_text(reread(html_digest(issue(html_only(), language=language), TEMPLATES)))
    assert f'<html lang="{language}">' in page


def test_html_to_text_keeps_structure_and_links() -> None:
    text = html_to_text(
        "<style>x{}</style><h1>Title</h1><p>A <a href='https://x.example/'>link</a>"
        "<br>next</p><ul><li>one</li><li>two</li></ul>"
    )
    assert text == "Title\n\nA link <https://x.example/>\nnext\n\n* one\n\n* two\n"


def test_sanitize_html_drops_active_and_remote_content() -> None:
    cleaned = sanitize_html(
        '<p onclick="x()">hi<iframe src="https://x"></iframe>'
        '<a href="javascript:alert(1)">j</a><img src="cid:1"></p>'
    )
    assert cleaned == '<p>hi<a rel="noopener noreferrer nofollow">j</a></p>'


# ---- schedule --------------------------------------------------------------------------------


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def test_daily_issue_is_due_at_the_hour_in_the_list_time_zone() -> None:
    config = DigestConfig(frequency="daily", hour=7, timezone="Asia/Almaty")
    assert next_due(at("2026-11-23T05:00", "Asia/Almaty"), config) == at(
        "2026-11-23T07:00", "Asia/Almaty"
    )
    assert next_due(at("2026-11-23T07:00", "Asia/Almaty"), config) == at(
        "2026-11-24T07:00", "Asia/Almaty"
    )
    # 07:00 in Almaty (+05:00) is 02:00 UTC.
    assert next_due(at("2026-11-23T01:00"), config) == at("2026-11-23T02:00")
    assert next_due(at("2026-11-23T02:00"), config) == at("2026-11-24T02:00")


def test_weekly_monthly_and_interval_schedules() -> None:
    weekly = DigestConfig(frequency="weekly", weekday="friday", hour=9)
    assert next_due(at("2026-11-23T12:00"), weekly) == at("2026-11-27T09:00")  # a Monday
    monthly = DigestConfig(frequency="monthly", day=1)
    assert next_due(at("2026-11-23T12:00"), monthly) == at("2026-12-01T00:00")
    assert next_due(at("2026-12-01T00:00"), monthly) == at("2027-01-01T00:00")
    assert next_due(WHEN, DigestConfig(interval=90)) == WHEN + timedelta(seconds=90)


def test_issue_is_due_on_schedule_count_or_size_but_never_empty() -> None:
    config = DigestConfig(frequency="daily", max_messages=3, max_size=1000)
    last, first_post = at("2026-11-23T01:00"), at("2026-11-23T02:00")
    assert not is_due(Pending(2, 500, last, first_post), config, at("2026-11-23T23:00"))
    assert is_due(Pending(2, 500, last, first_post), config, at("2026-11-24T00:00"))
    assert is_due(Pending(3, 500, last, first_post), config, at("2026-11-23T02:00"))
    assert is_due(Pending(1, 1000, last, first_post), config, at("2026-11-23T02:00"))
    assert not is_due(Pending(0, 0, last, last), config, at("2026-12-24T00:00"))


def test_first_post_after_a_quiet_spell_waits_for_the_next_scheduled_time() -> None:
    config = DigestConfig(frequency="daily", hour=6)
    last, first_post = at("2026-11-01T06:00"), at("2026-11-23T14:00")
    assert not is_due(Pending(1, 100, last, first_post), config, at("2026-11-23T14:01"))
    assert is_due(Pending(1, 100, last, first_post), config, at("2026-11-24T06:00"))


def test_numbering_starts_a_volume_each_year_or_on_request() -> None:
    zone = ZoneInfo("UTC")
    state = DigestState(volume=1, issue=0, last_sent_at=at("2026-12-30T00:00"), new_volume=False)
    advance(state, at("2026-12-31T00:00"), zone)
    assert (state.volume, state.issue) == (1, 1)
    advance(state, at("2027-01-01T00:00"), zone)
    assert (state.volume, state.issue) == (2, 1)
    advance(state, at("2027-01-01T00:00"), zone)
    assert (state.volume, state.issue) == (2, 2)
    state.new_volume = True
    advance(state, at("2027-01-01T00:00"), zone)
    assert (state.volume, state.issue, state.new_volume) == (3, 1, False)


def test_digest_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"digest\.timezone"):
        DigestConfig(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"digest\.hour"):
        DigestConfig(hour=24)


def test_malformed_posts_still_make_every_format() -> None:
    raws = [
        b"From: x@example.com\r\nSubject: =?x-bogus?q?broken?=\r\n"
        b"Content-Type: multipart/alternative\r\n\r\nno boundary at all\r\n",
        b"From: y@example.com\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n",
        b"Subject: bare\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\xf0\xd2\xc9</p>\r\n",
        b"no headers at all\r\n",
    ]
    broken = Issue(mlist(), 1, 1, WHEN, [parse(raw) for raw in raws])
    for build in (mime_digest, plain_digest, html_digest):
        assert reread(build(broken, TEMPLATES))["Subject"] == "eco Digest, Vol 1, Issue 1"
    parsed = burst(plain_digest(broken, TEMPLATES).get_content())
    assert len(parsed.messages) == 4
    assert parsed.messages[2][1] == "При"
