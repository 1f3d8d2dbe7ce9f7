"""The wording helpers every template shares: plain functions, tested on plain values."""

from datetime import UTC, datetime

import pytest

from listserv.mail.wording import file_kind, file_size, for_people, local_time, plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, "1 день"), (2, "2 дня"), (5, "5 дней"), (11, "11 дней"), (21, "21 день"),
     (14.0, "14 дней"), (0.5, "0,5 дня")],
)  # fmt: skip
def test_russian_nouns_follow_the_number(count: float, expected: str) -> None:
    assert plural(count, "ru", "день", "дня", "дней") == expected


def test_kazakh_and_english_plurals() -> None:
    assert plural(3, "kk", "күн") == "3 күн"
    assert (plural(1, "en", "day", "days"), plural(3, "en", "day", "days")) == ("1 day", "3 days")


def test_addresses_are_shown_in_unicode_and_nothing_else_changes() -> None:
    assert for_people("Ваш адрес user@xn--80awbu3c.xn--80ao21a.") == "Ваш адрес user@мысал.қаз."
    url = "https://xn--80awbu3c.xn--80ao21a/u/x and list@lists.example.org"
    assert for_people(url) == url
    assert for_people("broken@xn--zz.example") == "broken@xn--zz.example"


def test_dates_in_the_zone_and_language() -> None:
    moment = datetime(2026, 12, 5, 9, 0)
    assert local_time(moment, "ru") == "5 декабря 2026 г., 09:00 (по Гринвичу)"
    assert local_time(moment.replace(tzinfo=UTC), "en", "Asia/Almaty") == (
        "5 December 2026, 14:00 (Almaty time)"
    )
    assert local_time("Sat, 05 Dec 2026 09:00:00 +0000", "kk", "Asia/Almaty") == (
        "2026 жылғы 5 желтоқсан, 14:00 (Алматы уақыты)"
    )
    assert local_time("not a date", "ru") == "not a date"


def test_attachments_are_named_by_kind_and_size() -> None:
    assert file_kind("application/pdf") == "PDF"
    assert file_kind("application/octet-stream", "смета.xlsx") == "XLSX"
    assert (file_size(900, "ru"), file_size(123_000, "kk")) == ("900 байт", "120 КБ")
    assert (file_size(5 * 1024 * 1024, "ru"), file_size(2_621_440, "ru")) == ("5 МБ", "2,5 МБ")
