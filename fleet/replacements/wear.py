"""Wear counters and their forecast: a least-squares line through a counter's history.

Pure. A terminal's history of one wear counter (reader reads, printer lines, battery
cycles) is a set of points (x, y): x the instant of a sample in days since 1970-01-01 UTC
(:func:`days`), y the counter. :class:`Fit` keeps the five sums a least-squares line
needs (n, Σx, Σx², Σy, Σxy), so a new sample updates it in O(1) and the database keeps
them per terminal (``terminal_health``, with the slope and intercept they give): the slope
is the counter's rate per day over the whole history, and the forecast is the day the line
reaches a threshold (:func:`reaches`).

>>> fit = Fit.of([(0.0, 1000), (10.0, 2000), (20.0, 3000)])
>>> fit.n, fit.slope(), fit.intercept()
(3, 100.0, 1000.0)
>>> fit.reaches(8000)  # 8000 = 1000 + 100 x  ->  x = 70 days after 1970-01-01
datetime.date(1970, 3, 12)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

__all__ = [
    "COUNTERS",
    "EPOCH",
    "Fit",
    "WearState",
    "days",
    "from_days",
    "reaches",
    "wear_state",
]

COUNTERS: Final = ("reader", "printer", "battery")
"""The wear counters, each rated per model in the catalog: reader (chip + magstripe
reads), printer (lines printed), battery (full charge cycles)."""
EPOCH: Final = date(1970, 1, 1)
_DAY: Final = 86_400.0
MAX_DAYS: Final = 2_900_000.0
"""Past this (year 9,900) a forecast is no date at all."""


def days(at: datetime) -> float:
    """An instant as days since 1970-01-01 00:00 UTC (the x of a sample).

    >>> from datetime import UTC
    >>> days(datetime(1970, 1, 2, 12, tzinfo=UTC))
    1.5
    """
    if at.tzinfo is None:
        raise ValueError("a sample's instant must be timezone-aware")
    return at.timestamp() / _DAY


def from_days(x: float) -> date:
    """The UTC day of ``x`` days since 1970-01-01 (the inverse of :func:`days`, to the day)."""
    return EPOCH + timedelta(days=int(x // 1))


@dataclass(frozen=True, slots=True)
class Fit:
    """The sums of a least-squares line ``y = intercept + slope · x``."""

    n: int = 0
    sx: float = 0.0
    sxx: float = 0.0
    sy: float = 0.0
    sxy: float = 0.0

    @classmethod
    def of(cls, points: Iterable[tuple[float, float]]) -> Fit:
        fit = cls()
        for x, y in points:
            fit = fit.add(x, y)
        return fit

    def add(self, x: float, y: float) -> Fit:
        """The sums with one more point."""
        return Fit(self.n + 1, self.sx + x, self.sxx + x * x, self.sy + y, self.sxy + x * y)

    def _spread(self) -> float:
        return self.n * self.sxx - self.sx * self.sx

    def slope(self) -> float | None:
        """Units per day; None with fewer than two distinct instants."""
        spread = self._spread()
        if self.n < 2 or spread <= 1e-9 * max(1.0, self.n * self.sxx):
            return None
        return (self.n * self.sxy - self.sx * self.sy) / spread

    def intercept(self) -> float | None:
        b = self.slope()
        return None if b is None else (self.sy - b * self.sx) / self.n

    def reaches(self, threshold: float) -> date | None:
        """The UTC day the line reaches ``threshold``; None when the counter does not grow
        (no slope, or zero or negative) or only after year 9,900."""
        b = self.slope()
        return None if b is None else reaches(b, (self.sy - b * self.sx) / self.n, threshold)


def reaches(slope: float | None, intercept: float | None, threshold: float) -> date | None:
    """The UTC day the line ``y = intercept + slope · x`` reaches ``threshold`` (x: days
    since 1970); None without a rising line or only after year 9,900. The day is
    ``floor(x)`` for ``x = (threshold − intercept) / slope``: flagging's SQL compares that
    same quotient with the end of the horizon, so both agree to the last bit.

    >>> reaches(100.0, 1000.0, 8000)
    datetime.date(1970, 3, 12)
    >>> reaches(0.0, 1000.0, 8000) is None
    True
    """
    if slope is None or intercept is None or slope <= 0:
        return None
    x = (threshold - intercept) / slope
    if x > MAX_DAYS:
        return None
    return from_days(max(x, 0.0))


_UNITS: Final = {"reader": "reads", "printer": "lines", "battery": "cycles"}


@dataclass(frozen=True, slots=True)
class WearState:
    """One wear counter of one terminal, judged against its model's rated life."""

    counter: str
    value: int
    rated: int
    threshold: float
    """``wear_percent`` of ``rated``: where it is due."""
    past: bool
    """The latest sample is at or past the threshold."""
    rate: float | None
    """Units per day over the history (least squares), None without a line."""
    samples: int
    """How many samples the line rests on."""
    forecast: date | None
    """The day the line reaches the threshold (only with ``min_samples`` or more, and
    while not past it)."""

    @property
    def unit(self) -> str:
        return _UNITS[self.counter]

    @property
    def percent(self) -> float:
        return 100.0 * self.value / self.rated

    def as_dict(self) -> dict[str, object]:
        return {
            "counter": self.counter,
            "value": self.value,
            "rated": self.rated,
            "percent": round(self.percent, 1),
            "past": self.past,
            "rate_per_day": None if self.rate is None else round(self.rate, 1),
            "samples": self.samples,
            "forecast": None if self.forecast is None else self.forecast.isoformat(),
        }


def wear_state(
    counter: str,
    value: int,
    rated: int,
    fit: Fit,
    *,
    percent: int,
    min_samples: int,
) -> WearState:
    """Judge one counter: past ``percent`` % of ``rated`` now, or when its line gets there.

    >>> s = wear_state("reader", 600, 1000, Fit.of([(0, 400), (10, 500), (20, 600)]),
    ...                percent=90, min_samples=3)
    >>> s.past, s.rate, s.forecast  # 900 = 400 + 10 x  ->  x = 50
    (False, 10.0, datetime.date(1970, 2, 20))
    """
    threshold = rated * percent / 100
    past = value * 100 >= rated * percent
    rate = fit.slope()
    forecast = None
    if not past and fit.n >= min_samples:
        forecast = fit.reaches(threshold)
    return WearState(counter, value, rated, threshold, past, rate, fit.n, forecast)
