"""How the server writes things for people: addresses in Unicode, dates in the list's time
zone and language, numbers with the right noun form, region and topic names translated.

Registered as Jinja2 filters by ``mail.templates`` (and usable as plain functions by the
web portal), so every mail and page words these the same way.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, get_timezone_location
from babel.numbers import format_decimal

# The domain after an "@" when one of its labels is IDNA-encoded (xn--…).
ENCODED_DOMAIN = re.compile(r"(?<=@)(?=[a-z0-9.-]*xn--)[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.I)
# Dates as a person reads them, per language (CLDR patterns), and how the zone is named.
DATE_PATTERNS = {
    "ru": "d MMMM y 'г.', HH:mm",
    "kk": "y 'жылғы' d MMMM, HH:mm",
    "en": "d MMMM y, HH:mm",
}
ZONE_WORDS = {"ru": "часовой пояс: {city}", "kk": "{city} уақыты", "en": "{city} time"}
UTC_WORDS = {"ru": "по Гринвичу", "kk": "Гринвич уақыты", "en": "UTC"}
UTC_ZONES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Universal", "Zulu"}
TRANSLATIONS_FILE = "translations.toml"
# Units of a file size as people read them.
SIZE_UNITS = {"ru": ("байт", "КБ", "МБ"), "kk": ("байт", "КБ", "МБ"), "en": ("bytes", "KB", "MB")}
# Kinds of attachment people know by name; others are named by the file's extension.
FILE_KINDS = {
    "application/pdf": "PDF",
    "application/msword": "DOC",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
    "application/vnd.ms-excel": "XLS",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
    "application/vnd.ms-powerpoint": "PPT",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PPTX",
    "application/zip": "ZIP",
    "text/calendar": "ICS",
}


def unicode_domain(match: re.Match[str]) -> str:
    try:
        return match.group(0).encode("ascii").decode("idna")
    except UnicodeError:
        return match.group(0)


def for_people(text: str) -> str:
    """*text* with every address's domain shown in Unicode (``user@мысал.қаз``): members
    stored as ``xn--…`` must recognise their address. Mail is still sent to the A-label."""
    if "xn--" not in text:
        return text
    return ENCODED_DOMAIN.sub(unicode_domain, text)


def local_time(moment: datetime | str, language: str, zone: str = "UTC") -> str:
    """``5 декабря 2026 г., 14:00 (часовой пояс: Алматы)``: *moment* (UTC when naive, as
    the database stores it; or a Date header's text) in the list's time zone, in words of
    *language*. A Date header that does not parse is shown as written."""
    if isinstance(moment, str):
        try:
            moment = parsedate_to_datetime(moment)
        except (TypeError, ValueError, IndexError):
            return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    language = language if language in DATE_PATTERNS else "en"
    tz = ZoneInfo(zone)
    text = format_datetime(moment, DATE_PATTERNS[language], tzinfo=tz, locale=language)
    if zone in UTC_ZONES:
        return f"{text} ({UTC_WORDS[language]})"
    city = get_timezone_location(tz, locale=language, return_city=True)
    return f"{text} ({ZONE_WORDS[language].format(city=city)})"


def plural(count: float, language: str, one: str, few: str = "", many: str = "") -> str:
    """``3 напоминания``: *count* with the noun form its language wants (CLDR plural rules:
    Russian one/few/many, and "other" for fractions, which takes the few form: 0,5 дня;
    Kazakh nouns after a number stay singular; English needs one and few)."""
    form = Locale.parse(language).plural_form(count)
    few = few or one
    word = {"one": one, "few": few, "many": many or few}.get(form, few)
    return f"{format_decimal(count, locale=language)} {word}"


def file_size(size: int, language: str) -> str:
    """``120 КБ``: a size in the unit a person expects."""
    units = SIZE_UNITS.get(language, SIZE_UNITS["en"])
    if size < 1024:
        return f"{size} {units[0]}"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} {units[1]}"
    megabytes = f"{size / (1024 * 1024):.1f}".removesuffix(".0")
    return f"{megabytes.replace('.', ',') if language != 'en' else megabytes} {units[2]}"


def file_kind(content_type: str, filename: str = "") -> str:
    """``PDF``: an attachment's kind by name rather than its MIME type."""
    if content_type.lower() in FILE_KINDS:
        return FILE_KINDS[content_type.lower()]
    extension = filename.rpartition(".")[2] if "." in filename else ""
    if extension.isalnum() and len(extension) <= 5:
        return extension.upper()
    return content_type.partition("/")[2].upper()[:8] or "?"


@lru_cache(maxsize=8)
def translations(*directories: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The region and topic names of ``translations.toml``, the shipped table merged under
    an operator's (``[server] template_dir``), by kind, English name and language."""
    merged: dict[str, dict[str, dict[str, str]]] = {}
    for directory in reversed(directories):
        path = directory / TRANSLATIONS_FILE
        if not path.is_file():
            continue
        for kind, names in tomllib.loads(path.read_text(encoding="utf-8")).items():
            for name, words in names.items():
                merged.setdefault(kind, {}).setdefault(name, {}).update(words)
    return merged


def translate(
    table: dict[str, dict[str, dict[str, str]]], kind: str, name: str, language: str
) -> str:
    """*name* (a region or topic as the config writes it) in *language*; as written when the
    table has no translation."""
    return table.get(kind, {}).get(name, {}).get(language, name)
