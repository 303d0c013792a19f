"""The fleet's one clock, and whose day a date is.

Instants are UTC and come from :func:`now` (``fleet.core.clauses.now`` and
``fleet.core.models.now`` are this function). A date without a time says whose calendar
it is on:

* a terminal's ``deployed_on`` is the **merchant's local date** of the installation (a
  swap at 18:00 UTC in Shanghai installs on the next day's date there);
* ``manufactured_on`` is the factory's date, whose zone the fleet does not know;
* "today" for a check ("not in the future") is today **on that date's calendar**: the
  merchant's local date for ``deployed_on`` (:func:`today_in`), and for a date whose zone
  is unknown (a manufacture date, a terminal without a merchant) the latest date anywhere
  on Earth (:func:`latest_today`, UTC+14), so no real date is ever refused;
* reports and ``replacements`` judge "as of" a day in UTC unless given ``--as-of``;
  ``audit --since/--until`` are whole UTC days.

>>> at = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # evening in China
>>> today_in("Asia/Shanghai", at), today_in("Europe/Dublin", at), latest_today(at)
(datetime.date(2026, 3, 2), datetime.date(2026, 3, 1), datetime.date(2026, 3, 2))
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

__all__ = ["LATEST_ZONE", "latest_today", "now", "today_in"]

LATEST_ZONE = "Etc/GMT-14"
"""UTC+14 (Kiribati's Line Islands): the first place where a date begins."""


def now() -> datetime:
    """The current instant, timezone-aware (UTC): the fleet's one clock."""
    return datetime.now(UTC)


def today_in(zone: str | None, at: datetime | None = None) -> date:
    """The date at ``at`` (default :func:`now`) in the IANA ``zone``; with no zone, the
    latest date anywhere (:func:`latest_today`)."""
    instant = at or now()
    return instant.astimezone(ZoneInfo(zone or LATEST_ZONE)).date()


def latest_today(at: datetime | None = None) -> date:
    """The latest calendar date in effect anywhere at ``at``: a date after it has begun
    nowhere yet."""
    return today_in(LATEST_ZONE, at)
