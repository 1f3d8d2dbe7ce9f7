"""When a digest issue is due (pure): the list's period (daily, weekly, monthly at an hour of
its time zone, or every ``interval`` seconds), or at once when the waiting posts reach
``max_messages`` or ``max_size`` bytes; and how an issue is numbered."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from listserv.config import DigestConfig
from listserv.store.models import DigestState

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def next_due(last_sent: datetime, config: DigestConfig) -> datetime:
    """When the issue after one sent at *last_sent* is due: the first scheduled time (in the
    list's time zone) after it, or ``interval`` seconds later."""
    if config.interval:
        return last_sent + timedelta(seconds=config.interval)
    zone = ZoneInfo(config.timezone)
    local = last_sent.astimezone(zone)
    day = local.date()
    while True:
        candidate = datetime.combine(day, time(config.hour), zone)
        if candidate > local and scheduled_day(day, config):
            return candidate
        day += timedelta(days=1)


def scheduled_day(day: date, config: DigestConfig) -> bool:
    if config.frequency == "weekly":
        return WEEKDAYS[day.weekday()] == config.weekday
    if config.frequency == "monthly":
        return day.day == min(config.day, calendar.monthrange(day.year, day.month)[1])
    return True


@dataclass(frozen=True)
class Pending:
    """What waits for a list's next issue."""

    count: int
    size: int
    last_sent: datetime
    oldest: datetime  # when the first waiting post arrived


def is_due(pending: Pending, config: DigestConfig, now: datetime) -> bool:
    if pending.count == 0:
        return False
    if pending.count >= config.max_messages or pending.size >= config.max_size:
        return True
    # A scheduled time that passed while nothing waited sends nothing: the first post after
    # a quiet spell waits for the next one.
    return now >= next_due(max(pending.last_sent, pending.oldest), config)


def advance(state: DigestState, now: datetime, zone: ZoneInfo) -> None:
    """Number the issue sent *now*: a new volume each year (or on request), else the next
    issue of this volume."""
    new_year = now.astimezone(zone).year != state.last_sent_at.astimezone(zone).year
    if state.issue > 0 and (state.new_volume or new_year):
        state.volume += 1
        state.issue = 0
    state.new_volume = False
    state.issue += 1
    state.last_sent_at = now
