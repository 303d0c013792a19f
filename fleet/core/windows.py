"""Maintenance windows: a time-of-day range on a merchant's local clock. Pure.

A window ``01:00-05:00`` in ``Europe/Dublin`` is open when the wall clock there reads
01:00 or later and before 05:00, whatever the UTC offset that day: on the night clocks
change, it is open for three or five real hours, never at the wrong hour. A range may
wrap midnight (``22:00-02:00``). A wall-clock start that does not exist on a
spring-forward night opens at the first instant after it (the clock jumps past it).

>>> from datetime import UTC, datetime
>>> w = Window(60, 300)  # 01:00-05:00
>>> w.is_open("America/New_York", datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # 01:30 EST
True
>>> w.is_open("America/New_York", datetime(2026, 3, 8, 9, 30, tzinfo=UTC))  # 05:30 EDT
False
>>> w.next_open("America/New_York", datetime(2026, 3, 8, 9, 30, tzinfo=UTC))
datetime.datetime(2026, 3, 9, 5, 0, tzinfo=datetime.timezone.utc)
>>> w.closes("America/New_York", datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # 05:00 EDT
datetime.datetime(2026, 3, 8, 9, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["ALWAYS", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """``start``-``end`` in minutes after local midnight; ``start == end``: always open."""

    start: int
    end: int

    @property
    def always(self) -> bool:
        return self.start == self.end

    def text(self) -> str:
        if self.always:
            return "any time"
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )

    def is_open(self, zone: str, at: datetime) -> bool:
        """Open at instant ``at`` on ``zone``'s wall clock."""
        if self.always:
            return True
        local = at.astimezone(ZoneInfo(zone))
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def _starts(self, zone: str, at: datetime) -> list[datetime]:
        """UTC instants the window opens on the local days around ``at``."""
        tz = ZoneInfo(zone)
        day = at.astimezone(tz).date()
        start = time(self.start // 60, self.start % 60)
        return [
            datetime.combine(day + timedelta(days=d), start, tz).astimezone(UTC)
            for d in (-1, 0, 1, 2)
        ]

    def next_open(self, zone: str, at: datetime) -> datetime:
        """``at`` when open, else the next instant the window opens (UTC)."""
        if self.is_open(zone, at):
            return at.astimezone(UTC)
        for opens in self._starts(zone, at):
            if opens > at and self.is_open(zone, opens):
                return opens
        raise AssertionError("a window opens every day")  # pragma: no cover

    def closes(self, zone: str, at: datetime) -> datetime:
        """The instant the window open at ``at`` (or the next one) closes (UTC): its first
        minute that is no longer open."""
        opens = self.next_open(zone, at)
        if self.always:
            return opens
        tz = ZoneInfo(zone)
        local = opens.astimezone(tz)
        day = local.date()
        if self.start > self.end and local.hour * 60 + local.minute >= self.start:
            day += timedelta(days=1)  # a window over midnight closes the next morning
        end = time(self.end // 60, self.end % 60)
        return datetime.combine(day, end, tz).astimezone(UTC)


ALWAYS = Window(0, 0)
"""No window: pushes at any time."""
