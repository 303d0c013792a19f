"""Parsers for the values people type into inventory files: pure, no I/O.

Each takes the text of one cell and returns the typed value, or raises ``ValueError``
whose message is the *reason* (the caller adds file, line and column):

>>> parse_date("2024-02-29")
datetime.date(2024, 2, 29)
>>> parse_date("2023-02-29")
Traceback (most recent call last):
ValueError: not a date: '2023-02-29' (want YYYY-MM-DD)
>>> parse_phone("0755 8888 1234", "CN")
'+8675588881234'
>>> parse_money("349.90", "EUR")
34990
>>> parse_money("349.999", "EUR")
Traceback (most recent call last):
fleet.core.money.MoneyError: 349.999 has more than 2 decimals for EUR
>>> parse_duration_days("180d"), parse_duration_days("26w"), parse_duration_days("6m")
(180, 182, 183)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fleet.core.money import parse_minor

__all__ = [
    "CHANNELS",
    "parse_bool",
    "parse_channels",
    "parse_country",
    "parse_currency",
    "parse_date",
    "parse_datetime",
    "parse_duration_days",
    "parse_email",
    "parse_instant",
    "parse_int",
    "parse_language",
    "parse_link",
    "parse_list",
    "parse_mcc",
    "parse_money",
    "parse_phone",
    "parse_serial",
    "parse_timezone",
    "parse_token",
]

CHANNELS = ("sms", "email", "call")
"""Contact channels a merchant can prefer or opt out of."""

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EMAIL = re.compile(r"[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_LANGUAGE = re.compile(r"([a-zA-Z]{2,3})(?:-([a-zA-Z]{4}))?(?:-([a-zA-Z]{2}|[0-9]{3}))?")
_DURATION = re.compile(r"(\d+)\s*([dwmy])")
_DAYS = {"d": 1, "w": 7, "m": 30.4375, "y": 365.25}


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date: {text!r} (want YYYY-MM-DD)") from None


def parse_datetime(text: str) -> datetime:
    """ISO 8601 with an offset (``2026-03-01T09:30:00+08:00`` or ``…Z``); naive is refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date and time: {text!r} (want ISO 8601 with offset)") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset (add +HH:MM or Z)")
    return value.astimezone(UTC)


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """An instant: ISO 8601 date-time (UTC when it has no offset), or a day, meaning its
    start in UTC (its end, the next day's start, with ``end_of_day``).

    >>> parse_instant("2026-11-01").isoformat()
    '2026-11-01T00:00:00+00:00'
    >>> parse_instant("2026-11-01", end_of_day=True).isoformat()
    '2026-11-02T00:00:00+00:00'
    >>> parse_instant("2026-11-01T09:30+08:00").isoformat()
    '2026-11-01T09:30:00+08:00'
    """
    if "T" in text or " " in text.strip():
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date or date-time: {text!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    start = datetime.combine(parse_date(text), time(), UTC)
    return start + timedelta(days=1) if end_of_day else start


def parse_int(text: str, *, low: int = 0, high: int = 2**31 - 1) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}..{high}")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "y", "x"):
        return True
    if lowered in ("", "0", "false", "no", "n"):
        return False
    raise ValueError(f"not yes/no: {text!r}")


def parse_token(text: str, *, max_len: int, what: str = "identifier") -> str:
    value = text.strip()
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a valid {what}: {text!r} (letters, digits, '.', '_', '-')")
    if len(value) > max_len:
        raise ValueError(f"{what} {value!r} is longer than {max_len} characters")
    return value


def parse_serial(text: str) -> str:
    """A terminal's serial: the rule of :func:`protocols.values.check_serial`, which
    ``possim`` applies too (both name files after serials: never a path)."""
    from protocols.values import check_serial  # noqa: PLC0415

    return check_serial(text.strip())


def parse_mcc(text: str) -> int:
    value = text.strip()
    if not re.fullmatch(r"\d{4}", value):
        raise ValueError(f"MCC must be 4 digits, not {text!r}")
    return int(value)


def parse_currency(text: str) -> str:
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"not an ISO 4217 currency code: {text!r}")
    return value


def parse_money(text: str, currency: str) -> int:
    """A decimal amount → minor units of ``currency`` (:func:`fleet.core.money.parse_minor`)."""
    return parse_minor(text, currency)


def parse_phone(text: str, region: str | None = None) -> str:
    """A phone number → E.164; national numbers need ``region`` (ISO 3166 alpha-2)."""
    import phonenumbers  # noqa: PLC0415 - its metadata loads only for a phone number

    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (no country given: write it as +<country code>…)"
        raise ValueError(f"not a phone number: {text!r}: {exc._msg}{hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number: {text!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(text: str) -> str:
    value = text.strip()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError(f"not an email address: {text!r}")
    return value


def parse_language(text: str) -> str:
    """A BCP 47 language tag, normalised: ``zh-cn`` → ``zh-CN``, ``EN`` → ``en``."""
    match = _LANGUAGE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a language tag: {text!r} (e.g. en, zh-CN)")
    lang, script, region = match.groups()
    parts = [lang.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def parse_timezone(text: str) -> str:
    value = text.strip()
    try:
        ZoneInfo(value)
        known = value in _zones()
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known:
        raise ValueError(f"unknown time zone {text!r} (want an IANA name, e.g. Asia/Shanghai)")
    return value


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def parse_country(text: str) -> str:
    from phonenumbers import SUPPORTED_REGIONS  # noqa: PLC0415 - as in parse_phone

    value = text.strip().upper()
    if value not in SUPPORTED_REGIONS:
        raise ValueError(f"unknown country code {text!r} (want ISO 3166 alpha-2, e.g. CN)")
    return value


def parse_list(text: str) -> list[str]:
    """``a; b;c`` → ``['a', 'b', 'c']`` (``;`` or ``|`` separated)."""
    return [p.strip() for p in re.split(r"[;|]", text) if p.strip()]


def parse_channels(text: str) -> list[str]:
    channels = [c.lower() for c in parse_list(text)]
    for channel in channels:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} (want {', '.join(CHANNELS)})")
    if len(set(channels)) != len(channels):
        raise ValueError(f"a channel is listed twice: {text!r}")
    return channels


def parse_link(text: str) -> str:
    """Where the host reaches a terminal: a serial device (``/dev/ttyUSB0``, ``/dev/pts/N``,
    ``/dev/serial/by-id/…``), ``socket://host:port`` or ``rfc2217://host:port`` — the
    allow-list of :func:`protocols.linkurl.check_url`, without ``loop://`` (the fleet's one
    rule: checked on import, update and sync, and again when a link is opened).

    >>> parse_link(" socket://10.0.0.9:9000 ")
    'socket://10.0.0.9:9000'
    >>> parse_link("spy:///dev/pts/3?file=/tmp/x")
    Traceback (most recent call last):
    ValueError: not an allowed link: 'spy:///dev/pts/3?file=/tmp/x' (want a serial device \
/dev/tty…, /dev/pts/N, /dev/serial/by-id/…, or socket://HOST:PORT, rfc2217://HOST:PORT)
    """
    from protocols.errors import LinkError  # noqa: PLC0415 - pyserial only for a link
    from protocols.linkurl import check_url  # noqa: PLC0415

    try:
        return check_url(text.strip(), loop=False)
    except LinkError as exc:
        raise ValueError(str(exc)) from None


def parse_duration_days(text: str) -> int:
    """``180d``, ``26w``, ``6m``, ``3y`` or a bare number of days → days."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    match = _DURATION.fullmatch(value)
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 180d, 26w, 6m, 2y)")
    return round(int(match.group(1)) * _DAYS[match.group(2)])


def add_years(day: date, years: int) -> date:
    """``day`` moved by whole years (29 February → 28 February in other years).

    >>> add_years(date(2024, 2, 29), 5)
    datetime.date(2029, 2, 28)
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)
