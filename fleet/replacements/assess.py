"""One assessment of the fleet: every terminal due for replacement, ranked, counted by
priority and by reason, and the forecast per quarter — what ``posfleet replacements``
shows and what an API would answer. :func:`assess` runs the query; the rest is pure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine

from fleet.core.money import format_minor
from fleet.core.policy import ReplacementPolicy
from fleet.replacements.query import flag
from fleet.replacements.rules import REASONS, Forecast, Replacement

__all__ = ["CSV_COLUMNS", "Assessment", "assess", "flat_row"]

CSV_COLUMNS = (
    "serial", "model", "firmware", "merchant_id", "status", "priority", "replace_by",
    "reasons", "details", "replacement_model", "cost", "currency",
)  # fmt: skip
"""One terminal per row (:func:`flat_row`)."""


@dataclass
class Assessment:
    as_of: date
    horizon_days: int
    policy: ReplacementPolicy
    replacements: list[Replacement] = field(default_factory=list)
    """By priority, then replace-by date, then serial."""
    forecast: Forecast = field(default_factory=Forecast)
    by_priority: Counter[int] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, r: Replacement) -> None:
        self.replacements.append(r)
        self.forecast.add(r)
        self.by_priority[r.priority] += 1
        self.by_reason.update(x.code for x in r.reasons)

    def reasons(self) -> dict[str, int]:
        """Reason → terminals, in the rules' order, only those that occur."""
        return {code: self.by_reason[code] for code in REASONS if self.by_reason[code]}

    def as_dict(self) -> dict[str, Any]:
        """The whole assessment as JSON: the policy, a summary, the terminals, the forecast."""
        policy = self.policy
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "policy": policy.__dict__
            | {"statuses": list(policy.statuses), "require": list(policy.require)},
            "summary": {
                "terminals": len(self.replacements),
                "by_priority": {f"P{p}": n for p, n in sorted(self.by_priority.items())},
                "by_reason": self.reasons(),
                "cost": {c: format_minor(v, c) for c, v in self.forecast.total_cost().items()},
            },
            "terminals": [r.as_dict() for r in self.replacements],
            "forecast": self.forecast.rows(),
        }


def assess(
    engine: Engine, policy: ReplacementPolicy, as_of: date, horizon_days: int | None = None
) -> Assessment:
    """Flag the fleet as of ``as_of`` (the policy's horizon unless ``horizon_days``)."""
    horizon = policy.horizon_days if horizon_days is None else horizon_days
    found = Assessment(as_of, horizon, policy)
    for r in flag(engine, policy, as_of, horizon):
        found.add(r)
    found.replacements.sort(key=Replacement.sort_key)
    return found


def flat_row(r: Replacement) -> dict[str, Any]:
    """One terminal as CSV cells (:data:`CSV_COLUMNS`): reasons joined, cost formatted."""
    return {
        "serial": r.serial,
        "model": r.model,
        "firmware": r.firmware,
        "merchant_id": r.merchant_id,
        "status": r.status,
        "priority": f"P{r.priority}",
        "replace_by": r.replace_by.isoformat(),
        "reasons": ";".join(x.code for x in r.reasons),
        "details": " | ".join(x.detail for x in r.reasons),
        "replacement_model": r.replacement_model,
        "cost": format_minor(r.cost, r.currency),
        "currency": r.currency,
    }
