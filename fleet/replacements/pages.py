"""The terminals due for replacement, a page at a time, filtered: what the console and the
API show (``posfleet replacements`` and the report rank the whole fleet instead).

A page is a keyset page in serial order: the flagging query starts after the last serial
shown (and is limited to one model in SQL when asked), its rows stream through the
rules, and the stream stops as soon as the page is full — a page costs what it reads,
not the whole fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine

from fleet.core.errors import InputError
from fleet.core.policy import ReplacementPolicy
from fleet.replacements.query import flag
from fleet.replacements.rules import REASONS, Replacement

__all__ = ["DuePage", "due_page"]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class DuePage:
    items: list[Replacement]
    next_after: str | None


def due_page(
    engine: Engine,
    policy: ReplacementPolicy,
    as_of: date,
    *,
    priority: int | None = None,
    model: str | None = None,
    reason: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> DuePage:
    """Up to ``limit`` terminals due for replacement (of ``priority`` 1-3, ``model``, with
    ``reason`` in effect or coming, when given) whose serial sorts after ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"a page holds 1 to {MAX_PAGE} terminals", where="limit")
    if priority is not None and priority not in (1, 2, 3):
        raise InputError("a priority is 1, 2 or 3", where="priority")
    if reason is not None and reason not in REASONS:
        raise InputError(f"reason {reason!r} (one of {', '.join(REASONS)})", where="reason")
    found: list[Replacement] = []
    for r in flag(engine, policy, as_of, after=after or "", model=model):
        if priority is not None and r.priority != priority:
            continue
        if reason is not None and all(x.code != reason for x in r.reasons):
            continue
        found.append(r)
        if len(found) > limit:
            break
    more = len(found) > limit
    found = found[:limit]
    return DuePage(found, found[-1].serial if more and found else None)
