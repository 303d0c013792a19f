"""Periods of a chart over time: days, ISO weeks or months, chosen by the span shown.
Pure.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

__all__ = ["PeriodUnit", "period", "period_unit", "periods"]

PeriodUnit = Literal["day", "week", "month"]


def period_unit(first: date, last: date) -> PeriodUnit:
    """How a chart over time buckets the days from ``first`` to ``last``: per day for up
    to 62 days, per ISO week for up to two years, per month beyond.

    >>> period_unit(date(2026, 10, 1), date(2026, 12, 1))
    'day'
    >>> period_unit(date(2026, 1, 1), date(2026, 12, 31))
    'week'
    >>> period_unit(date(2020, 1, 1), date(2026, 1, 1))
    'month'
    """
    span = (last - first).days
    if span <= 62:
        return "day"
    return "week" if span <= 731 else "month"


def period(day: date, unit: PeriodUnit) -> str:
    """The label of the period holding ``day``: ISO date, ISO week, or year and month.

    >>> [period(date(2027, 1, 1), u) for u in ("day", "week", "month")]
    ['2027-01-01', '2026-W53', '2027-01']
    """
    if unit == "day":
        return day.isoformat()
    if unit == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def periods(first: date, last: date, unit: PeriodUnit) -> list[str]:
    """Every period from the one of ``first`` to the one of ``last``, empty ones included.

    >>> periods(date(2026, 12, 30), date(2027, 1, 11), "week")
    ['2026-W53', '2027-W01', '2027-W02']
    """
    found: list[str] = []
    day = first
    while day <= last:
        label = period(day, unit)
        if not found or found[-1] != label:
            found.append(label)
        day += timedelta(days=1)
    return found
