"""The pure transformations of a post: list headers, subject prefix, Reply-To, footer, loops."""

from __future__ import annotations

import base64
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from samples import SIGNED, SIGNED_PART, assert_list_headers, signed_entity

from listserv.config import ListConfig
from listserv.mail.codec import parse, to_bytes
from listserv.mail.list_headers import add_list_headers, already_seen
from listserv.posting.decorate import add_footer, add_subject_prefix, prefixed_subject, set_reply_to
from listserv.store.lists import MailList

DOMAIN = "lists.example.org"
FOOTER = "_______\nРассылка environment-kz\n"
TEXT = "Привет, коллеги! Сәлеметсіз бе.\nВторая строка — с тире.\n"
RUSSIAN = "Привет, коллеги!\nВторая строка: ёлки, Ёж, ЪЬ.\n"


def mailing_list(**settings: object) -> MailList:
    settings.setdefault("title", "Окружающая среда — Казахстан")
    return MailList(1, ListConfig(name="environment-kz", **settings), DOMAIN)  # type: ignore[arg-type]


def received(message: EmailMessage) -> EmailMessage:
    """The message as a member's client parses it after transmission."""
    return BytesParser(policy=policy.default).parsebytes(to_bytes(message))  # type: ignore[return-value]


def text_of(part: EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n")


def encoded_word(text: str, charset: str, encoding: str) -> str:
    data = text.encode(charset)
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}" for b in data)
    return f"=?{charset}?Q?{quoted}?="


# ---- subject prefix -------------------------------------------------------------------------

P = "[environment-kz] "


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "[environment-kz] Hello"),
        ("", "[environment-kz]"),
        ("[environment-kz] Hello", "[environment-kz] Hello"),
        ("Re: [environment-kz] Hello", "[environment-kz] Re: Hello"),
        ("RE: Re: [environment-kz] Hello", "[environment-kz] Re: Hello"),
        ("Re[2]: [environment-kz] Hello", "[environment-kz] Re: Hello"),
        ("AW: [environment-kz] Hallo", "[environment-kz] Re: Hallo"),
        ("Ответ: [environment-kz] Привет", "[environment-kz] Re: Привет"),
        ("Отв: Re: [environment-kz] Привет", "[environment-kz] Re: Привет"),
        ("[environment-kz] Re: Hello", "[environment-kz] Re: Hello"),
        ("Re: [ENVIRONMENT-KZ] Hello", "[environment-kz] Re: Hello"),
        ("Fwd: Report", "[environment-kz] Fwd: Report"),
        ("Fwd: [environment-kz] Report", "[environment-kz] Fwd: Report"),
        ("Re: Fwd: [environment-kz] Report", "[environment-kz] Re: Fwd: Report"),
        ("Report on the reserve", "[environment-kz] Report on the reserve"),
        ("Line\r\nBcc: victim@example.com", "[environment-kz] Line Bcc: victim@example.com"),
    ],
)
def test_prefix_is_added_once_and_never_stacked(subject: str, expected: str) -> None:
    assert prefixed_subject(subject, P) == expected
    assert prefixed_subject(expected, P) == expected


def test_empty_prefix_still_folds_line_breaks() -> None:
    assert prefixed_subject("a\r\nb", "") == "a b"


def with_subject(raw_subject: bytes) -> EmailMessage:
    return parse(b"From: a@x.example\r\nSubject: " + raw_subject + b"\r\n\r\nbody\r\n")


@pytest.mark.parametrize("charset", ["utf-8", "koi8-r", "windows-1251"])
@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_prefix_on_encoded_cyrillic_subjects(charset: str, encoding: str) -> None:
    word = encoded_word("Ответ: [environment-kz] Отчёт о заповеднике", charset, encoding)
    message = with_subject(word.encode())
    add_subject_prefix(message, P)
    raw = to_bytes(message)
    subject_line = re.search(rb"^Subject:.*?(?=\r\n\S)", raw, re.M | re.S)
    assert subject_line is not None and subject_line.group().isascii()
    assert str(received(message)["Subject"]) == "[environment-kz] Re: Отчёт о заповеднике"


def test_encoded_crlf_in_subject_cannot_add_a_header() -> None:
    word = encoded_word("Hi\r\nBcc: victim@example.com", "utf-8", "B")
    message = with_subject(word.encode())
    add_subject_prefix(message, P)
    got = received(message)
    assert got["Bcc"] is None
    assert str(got["Subject"]) == "[environment-kz] Hi Bcc: victim@example.com"


def test_long_cyrillic_subject_is_folded_and_decodes() -> None:
    long_subject = "Обсуждение проекта закона об охране окружающей среды " * 4
    message = with_subject(encoded_word(long_subject, "utf-8", "B").encode())
    add_subject_prefix(message, P)
    raw = to_bytes(message)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert str(received(message)["Subject"]) == P + long_subject.strip()


# ---- list headers ---------------------------------------------------------------------------


def test_list_headers_of_rfc_2369_and_2919() -> None:
    message = with_subject(b"Hi")
    message["List-Id"] = "<forged.example.com>"
    message["Precedence"] = "bulk"
    message["Approved"] = "moderator-password"
    add_list_headers(message, mailing_list())
    got = received(message)
    assert_list_headers(got, "environment-kz", "Окружающая среда — Казахстан")
    assert got["Approved"] is None


def test_announce_list_says_list_post_no() -> None:
    message = with_subject(b"News")
    add_list_headers(message, mailing_list(posting="announce"))
    assert received(message)["List-Post"] == "NO"


def test_one_click_unsubscribe_when_a_url_is_given() -> None:
    message = with_subject(b"Hi")
    add_list_headers(message, mailing_list(), "https://lists.example.org/u/abc")
    got = received(message)
    assert got["List-Unsubscribe"] == (
        f"<https://lists.example.org/u/abc>, <mailto:environment-kz-leave@{DOMAIN}>"
    )
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_reply_to_follows_the_setting() -> None:
    message = with_subject(b"Hi")
    message["Reply-To"] = "a@x.example"
    set_reply_to(message, mailing_list(reply_to="poster"))
    assert message["Reply-To"] == "a@x.example"
    set_reply_to(message, mailing_list(reply_to="list"))
    assert received(message).get_all("Reply-To") == [f"environment-kz@{DOMAIN}"]


@pytest.mark.parametrize(
    "header",
    [
        f"X-BeenThere: environment-kz@{DOMAIN}",
        f"X-BeenThere: Environment-KZ@{DOMAIN.upper()}",
        f"List-Id: Whatever <environment-kz.{DOMAIN}>",
        f"List-Id: <ENVIRONMENT-KZ.{DOMAIN}>",
    ],
)
def test_a_message_that_went_through_the_list_is_a_loop(header: str) -> None:
    message = parse(f"From: a@x.example\r\n{header}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    assert already_seen(message, mailing_list())


def test_another_lists_headers_are_not_a_loop() -> None:
    message = parse(
        f"From: a@x.example\r\nList-Id: <gender-kz.{DOMAIN}>\r\n"
        f"X-BeenThere: gender-kz@{DOMAIN}\r\n\r\nbody\r\n".encode()
    )
    assert not already_seen(message, mailing_list())


# ---- bodies and footer ----------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "koi8-r", "windows-1251"])
@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
def test_footer_joins_a_text_body_in_its_own_charset(charset: str, cte: str) -> None:
    original = EmailMessage()
    original["Subject"] = "t"
    original.set_content(RUSSIAN, charset=charset, cte=cte)
    message = parse(original.as_bytes(policy=policy.SMTP))
    add_footer(message, FOOTER)
    got = received(message)
    assert got.get_content_type() == "text/plain"
    assert got.get_content_charset() == charset
    assert got["Content-Transfer-Encoding"] == cte
    assert text_of(got) == RUSSIAN + "\n" + FOOTER


def test_footer_a_charset_cannot_carry_goes_in_a_part_of_its_own() -> None:
    original = EmailMessage()
    original.set_content(RUSSIAN, charset="koi8-r", cte="8bit")
    message = parse(original.as_bytes(policy=policy.SMTP))
    kazakh_footer = "Таратылымға жазу: environment-kz\n"
    add_footer(message, kazakh_footer)
    got = received(message)
    body, footer = got.iter_parts()
    assert body.get_content_charset() == "koi8-r"
    assert text_of(body) == RUSSIAN
    assert text_of(footer) == kazakh_footer


def test_message_without_mime_headers_and_8bit_utf8_body() -> None:
    raw_body = "Привет без MIME\r\n".encode()
    message = parse(b"From: a@x.example\r\nSubject: t\r\n\r\n" + raw_body)
    add_footer(message, FOOTER)
    got = received(message)
    assert text_of(got) == "Привет без MIME\n\n" + FOOTER


def test_message_without_mime_headers_and_unknown_8bit_body_keeps_its_bytes() -> None:
    raw_body = "Привет в cp1251 без MIME\r\n".encode("cp1251")
    message = parse(b"From: a@x.example\r\nSubject: t\r\n\r\n" + raw_body)
    add_footer(message, FOOTER)
    out = to_bytes(message)
    assert raw_body in out
    body, footer = received(message).iter_parts()
    assert body.get_payload(decode=True) == raw_body
    assert text_of(footer) == FOOTER


def test_ascii_body_without_mime_headers_takes_a_cyrillic_footer_inline() -> None:
    message = parse(b"From: a@x.example\r\nSubject: t\r\n\r\nHello\r\n")
    add_footer(message, FOOTER)
    got = received(message)
    assert not got.is_multipart()
    assert text_of(got) == "Hello\n\n" + FOOTER


def test_text_attachment_as_whole_message_is_not_edited() -> None:
    original = EmailMessage()
    original.set_content("a,b\n1,2\n", disposition="attachment", filename="data.csv")
    message = parse(original.as_bytes(policy=policy.SMTP))
    add_footer(message, FOOTER)
    body, footer = received(message).iter_parts()
    assert text_of(body) == "a,b\n1,2\n"
    assert body.get_filename() == "data.csv"
    assert text_of(footer) == FOOTER


def test_footer_after_the_attachments_of_multipart_mixed() -> None:
    original = EmailMessage()
    original.set_content(TEXT, charset="utf-8")
    pdf = bytes(range(256)) * 40
    original.add_attachment(pdf, maintype="application", subtype="pdf", filename="отчёт.pdf")
    message = parse(original.as_bytes(policy=policy.SMTP))
    add_footer(message, FOOTER)
    got = received(message)
    parts = list(got.iter_parts())
    assert got.get_content_type() == "multipart/mixed"
    assert text_of(parts[0]) == TEXT
    assert parts[1].get_filename() == "отчёт.pdf"
    assert parts[1].get_content() == pdf
    assert text_of(parts[2]) == FOOTER
    assert parts[2].get_content_disposition() is None


def test_multipart_alternative_is_kept_whole_beside_the_footer() -> None:
    original = EmailMessage()
    original.set_content(TEXT)
    original.add_alternative("<p>Привет, коллеги!</p>", subtype="html")
    message = parse(original.as_bytes(policy=policy.SMTP))
    add_footer(message, FOOTER)
    got = received(message)
    alternative, footer = got.iter_parts()
    assert got.get_content_type() == "multipart/mixed"
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html = alternative.iter_parts()
    assert text_of(plain) == TEXT
    assert "Привет, коллеги!" in html.get_content()
    assert text_of(footer) == FOOTER


def test_signed_part_stays_byte_identical() -> None:
    assert signed_entity(SIGNED) == SIGNED_PART.removesuffix(b"\r\n")
    message = parse(SIGNED)
    add_subject_prefix(message, P)
    add_list_headers(message, mailing_list())
    add_footer(message, FOOTER)
    out = to_bytes(message)
    assert signed_entity(out) == signed_entity(SIGNED)
    got = received(message)
    signed, footer = got.iter_parts()
    assert signed.get_content_type() == "multipart/signed"
    assert text_of(footer) == FOOTER


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"garbage without colon\r\nmore garbage\r\n\r\nbody",
        bytes(range(256)) * 8,
        b"From: a@x.example\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
        b"From: a@x.example\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe\r\n",
        b"From: a@x.example\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
        b"Subject: =?x-unknown?B?AAAA?=\r\n\r\nbody\r\n",
    ],
)
def test_malformed_messages_can_still_be_decorated(raw: bytes) -> None:
    message = parse(raw)
    add_list_headers(message, mailing_list())
    add_subject_prefix(message, P)
    add_footer(message, FOOTER)
    got = received(message)
    assert got["List-Id"] is not None
    assert str(got["Subject"]).startswith("[environment-kz]")


@pytest.mark.parametrize("charset", ["windows-1251", "koi8-r", "utf-8"])
def test_unencoded_8bit_subject_is_read_in_the_body_charset(charset: str) -> None:
    message = parse(
        b"From: a@x.example\r\nSubject: Re: [environment-kz] "
        + "Отчёт".encode(charset)
        + f"\r\nContent-Type: text/plain; charset={charset}\r\n\r\n".encode()
        + "Текст".encode(charset)
        + b"\r\n"
    )
    add_subject_prefix(message, P)
    assert str(received(message)["Subject"]) == "[environment-kz] Re: Отчёт"


def test_a_title_cannot_break_the_list_id() -> None:
    message = with_subject(b"Hi")
    add_list_headers(message, mailing_list(title='Two\nlines "quoted" \\'))
    assert received(message)["List-Id"] == f"\"Two lines 'quoted'\" <environment-kz.{DOMAIN}>"


def test_long_cyrillic_title_keeps_its_spaces_in_the_list_id() -> None:
    title = "Окружающая среда и устойчивое развитие — Казахстан, Кыргызстан и Узбекистан"
    for words in range(1, len(title.split()) + 1):
        shorter = " ".join(title.split()[:words])
        message = with_subject(b"Hi")
        add_list_headers(message, mailing_list(title=shorter))
        assert received(message)["List-Id"] == f"{shorter} <environment-kz.{DOMAIN}>"
        assert already_seen(received(message), mailing_list())


def test_notice_subjects_keep_their_spaces(tmp_path) -> None:
    from listserv.mail.templates import Templates

    (tmp_path / "ru").mkdir()
    subject = "Обсуждение проекта закона об охране окружающей среды " * 3
    (tmp_path / "ru" / "held.txt").write_text("Subject: Задержано: {{ subject }}\n\nТекст\n")
    message = Templates(tmp_path).mail(
        "ru", "held.txt", sender="a@x.example", to="b@y.example", domain=DOMAIN, subject=subject
    )
    assert received(message)["Subject"] == "Задержано: " + subject.strip()
    assert received(message)["Content-Language"] == "ru"
