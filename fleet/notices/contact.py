"""The contact rules: which channel, and when a merchant may be contacted. Pure, no I/O.

* **Channel**: the merchant's preferred channels in order, then ``sms``, ``email``,
  ``call``; skipping those the merchant opted out of (or complained about) and those
  without an address (``sms`` and ``call`` need a phone, ``email`` an address). A notice
  the merchant must get (a fee change, a swap) that finds no channel left falls back to a
  call task when there is a phone, else email; an optional one (a follow-up) is
  cancelled.
* **Quiet hours** in the merchant's time zone (default 21:00–08:00): a message that
  falls inside them waits for their end — deferred, never dropped. Local wall-clock
  times are turned into instants with :mod:`zoneinfo`, so DST changes move them right.
* **Rate limit**: at most N messages per merchant per channel in any rolling window.

>>> from datetime import datetime, UTC
>>> at = datetime(2026, 3, 28, 21, 30, tzinfo=UTC)  # 22:30 in Dublin (winter time)
>>> quiet_until(at, "Europe/Dublin", (21 * 60, 8 * 60))
datetime.datetime(2026, 3, 29, 7, 0, tzinfo=datetime.timezone.utc)

The clocks went forward that night: 08:00 IST is 07:00 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_ORDER",
    "MANDATORY",
    "choose_channel",
    "in_quiet_hours",
    "next_allowed",
    "quiet_until",
    "rate_until",
]

DEFAULT_ORDER = ("sms", "email", "call")
MANDATORY = frozenset({"fee_change", "swap_planned", "swap_done"})
"""Kinds a merchant must receive whatever their opt-outs (regulated or operational)."""


def choose_channel(
    kinds: Iterable[str],
    *,
    preferred: Sequence[str],
    opted_out: Iterable[str],
    phone: str | None,
    email: str | None,
) -> str | None:
    """The channel for notices of ``kinds`` to one merchant, or None (cancel them).

    >>> choose_channel(["fee_change"], preferred=["email"], opted_out=[], phone="+1", email="a@b.c")
    'email'
    >>> choose_channel(["swap_done"], preferred=[], opted_out=["sms"], phone="+1", email=None)
    'call'
    >>> out = ["sms", "call"]
    >>> choose_channel(["swap_done"], preferred=[], opted_out=out, phone="+1", email=None)
    'call'
    >>> choose_channel(["follow_up"], preferred=[], opted_out=out, phone="+1", email=None)
    """
    out = set(opted_out)
    reachable = {"sms": bool(phone), "email": bool(email), "call": bool(phone)}
    order = list(dict.fromkeys([*preferred, *DEFAULT_ORDER]))
    for channel in order:
        if channel in reachable and reachable[channel] and channel not in out:
            return channel
    if MANDATORY & set(kinds):
        if phone:
            return "call"
        if email:
            return "email"
    return None


def _in_range(minute: int, quiet: tuple[int, int]) -> bool:
    start, end = quiet
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def in_quiet_hours(at: datetime, zone: str, quiet: tuple[int, int]) -> bool:
    """Whether ``at`` falls in the quiet hours ``(start, end)`` (minutes) of ``zone``."""
    local = at.astimezone(ZoneInfo(zone))
    return _in_range(local.hour * 60 + local.minute, quiet)


def _local_instant(day: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant of wall-clock ``minutes`` on ``day``'s date in ``tz`` (a time that a
    DST gap skips maps to the instant just after the gap)."""
    wall = datetime.combine(day.date(), time(minutes // 60, minutes % 60), tzinfo=tz)
    return wall.astimezone(UTC)  # fold=0: a skipped time reads with the earlier offset


def quiet_until(at: datetime, zone: str, quiet: tuple[int, int]) -> datetime | None:
    """When the quiet hours around ``at`` end (UTC), or None when ``at`` is not in them."""
    if not in_quiet_hours(at, zone, quiet):
        return None
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    start, end = quiet
    day = local
    if start > end and local.hour * 60 + local.minute >= start:
        day = local + timedelta(days=1)  # late evening: the quiet hours end tomorrow
    return _local_instant(day, end, tz)


def rate_until(
    sent: Iterable[datetime], at: datetime, *, limit: int, window: timedelta
) -> datetime | None:
    """When one more message may go, given the ``sent`` ones; None when it may now.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> day = timedelta(days=1)
    >>> rate_until([t, t + day], t + 2 * day, limit=2, window=7 * day)
    datetime.datetime(2026, 1, 8, 0, 0, tzinfo=datetime.timezone.utc)
    >>> rate_until([t, t + day], t + 8 * day, limit=2, window=7 * day) is None
    True
    """
    recent = sorted(s for s in sent if at - window < s <= at)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window


def next_allowed(
    at: datetime,
    *,
    zone: str,
    quiet: tuple[int, int],
    sent: Sequence[datetime] = (),
    limit: int = 0,
    window: timedelta = timedelta(0),
) -> datetime:
    """The first instant at or after ``at`` outside quiet hours and within the rate limit.

    >>> t = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    >>> next_allowed(t, zone="Asia/Shanghai", quiet=(21 * 60, 8 * 60))
    datetime.datetime(2026, 7, 1, 12, 0, tzinfo=datetime.timezone.utc)
    >>> next_allowed(t, zone="Asia/Shanghai", quiet=(21 * 60, 8 * 60), sent=[t],
    ...              limit=1, window=timedelta(hours=2))  # 22:00 local: wait until 08:00
    datetime.datetime(2026, 7, 2, 0, 0, tzinfo=datetime.timezone.utc)
    """
    t = at
    for _ in range(16):  # each step moves forward; both rules settle within a few
        later = [
            u
            for u in (
                quiet_until(t, zone, quiet),
                rate_until(sent, t, limit=limit, window=window) if limit else None,
            )
            if u is not None and u > t
        ]
        if not later:
            return t
        t = max(later)
    return t
