"""When an erasure request is due (R8): 15 working days after it is received.

Working days are mainland China's: weekends and statutory holidays off, the weekend make-up
working days (调休) on, from the maintained `holidays` package (its China calendar carries the
State Council's announced make-up days). Days are calendar days in Asia/Shanghai, whatever the
warehouse's reporting zone: the deadline is a legal one.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

ERASURE_WORKING_DAYS = 15
LEGAL_ZONE = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=1)
def _calendar() -> holidays.HolidayBase:
    return holidays.country_holidays("CN")


def is_working_day(day: date) -> bool:
    return bool(_calendar().is_working_day(day))


def legal_day(instant: datetime) -> date:
    """The calendar day of an instant in mainland China."""
    return instant.astimezone(LEGAL_ZONE).date()


def due_by(received: datetime) -> date:
    """The last day to complete a request received at `received`: the 15th working day after
    the day it arrived (the day of receipt does not count, even when it is a working day)."""
    return _due_after(legal_day(received))


@lru_cache(maxsize=4096)
def _due_after(day: date) -> date:
    # every run lists every request's due date: computed once per day of receipt
    return _calendar().get_nth_working_day(day, ERASURE_WORKING_DAYS)


def working_days_left(due: date, today: date) -> int:
    """Working days from tomorrow up to and including `due` (0 on the due day, negative once
    overdue: minus the working days since)."""
    if due >= today:
        return 0 if due == today else _calendar().get_working_days_count(date.fromordinal(today.toordinal() + 1), due)
    return -_calendar().get_working_days_count(date.fromordinal(due.toordinal() + 1), today)


__all__ = ["ERASURE_WORKING_DAYS", "due_by", "is_working_day", "legal_day", "working_days_left"]
