"""What policy values look like in TOML, and the one error a policy raises. Pure.

Every parser takes the raw TOML value and ``where`` (the file and key, e.g.
``posfleet.toml: rollout.waves``) and returns the typed value or raises
:class:`PolicyError` naming that place:

>>> parse_waves("1%,10%,100%")
(10000, 100000, 1000000)
>>> seconds("500ms", "lease"), span_seconds("7d", "window"), percent_ppm("5%", "max")
(0.5, 604800, 50000)
"""

from __future__ import annotations

import itertools
import re

from fleet.core.errors import InputError
from fleet.core.money import MoneyError, parse_decimal

__all__ = [
    "PolicyError",
    "clock_text",
    "parse_clock_range",
    "parse_waves",
    "percent_ppm",
    "ppm_text",
    "seconds",
    "span_seconds",
    "span_text",
    "toml_list",
    "whole",
]


class PolicyError(InputError):
    """A policy that can't be used; ``where`` names the file and key."""


PolicyError.__module__ = "fleet.core.policy"  # its public home


def seconds(text: object, where: str) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"``, ``"1h"`` or a number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
        if not match:
            raise PolicyError(f"not a duration: {text!r} (e.g. 30s, 2m, 500ms)", where=where)
        value = (
            float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
        )
    if value < 0:
        raise PolicyError("must not be negative", where=where)
    return value


def percent_ppm(text: object, where: str) -> int:
    """``"5%"`` → 50000 ppm."""
    raw = str(text).strip()
    if not raw.endswith("%"):
        raise PolicyError('write a percentage, e.g. "5%"', where=where)
    try:
        ppm = parse_decimal(raw[:-1].strip()) * 10_000
    except MoneyError:
        raise PolicyError(f"not a percentage: {text!r}", where=where) from None
    if not 0 <= ppm <= 1_000_000:
        raise PolicyError(f"{raw} is not between 0% and 100%", where=where)
    return int(ppm)


def ppm_text(ppm: int) -> str:
    """50000 → ``"5%"``."""
    return f"{ppm / 10_000:g}%"


def parse_waves(raw: object, where: str = "waves") -> tuple[int, ...]:
    """``"1%,10%,100%"`` or ``["1%", "10%", "100%"]`` → cumulative ppm, ending at 100 %.

    >>> parse_waves(["5%", "2%", "100%"], "rollout.waves")
    Traceback (most recent call last):
    fleet.core.policy.PolicyError: rollout.waves: waves must grow: 5%, 2%, 100%
    """
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        raise PolicyError("want e.g. 1%,10%,100%", where=where)
    waves = tuple(percent_ppm(i, where) for i in items)
    if any(b <= a for a, b in itertools.pairwise(waves)) or waves[0] <= 0:
        raise PolicyError(f"waves must grow: {', '.join(map(str, items))}", where=where)
    if waves[-1] != 1_000_000:
        raise PolicyError("the last wave must be 100%", where=where)
    return waves


def parse_clock_range(text: str, where: str = "quiet_hours") -> tuple[int, int]:
    """``"21:00-08:00"`` → minutes after midnight (start, end); the range may wrap midnight.

    >>> parse_clock_range("21:00-08:00")
    (1260, 480)
    >>> parse_clock_range("22:30-07")
    Traceback (most recent call last):
    fleet.core.policy.PolicyError: quiet_hours: want HH:MM-HH:MM, e.g. 21:00-08:00, not '22:30-07'
    """
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise PolicyError(f"want HH:MM-HH:MM, e.g. 21:00-08:00, not {text!r}", where=where)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise PolicyError(f"not a time of day in {text!r}", where=where)
    return h1 * 60 + m1, h2 * 60 + m2


def clock_text(minutes: int) -> str:
    """Minutes after midnight → ``HH:MM``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def span_seconds(raw: object, where: str) -> int:
    """``"7d"``, ``"24h"``, ``"15m"``, ``"30s"`` → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhms])\s*", str(raw))
    if not match:
        raise PolicyError(f"want a duration like 7d, 24h, 15m or 30s, not {raw!r}", where=where)
    return int(match.group(1)) * {"d": 86_400, "h": 3600, "m": 60, "s": 1}[match.group(2)]


def span_text(seconds: int) -> str:
    """Seconds → the largest whole unit: ``604800`` → ``7d``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def whole(raw: object, where: str, low: int = 0) -> int:
    """A TOML integer ≥ ``low`` (a boolean is not one)."""
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise PolicyError(f"want a whole number ≥ {low}", where=where)
    return raw


def toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"
