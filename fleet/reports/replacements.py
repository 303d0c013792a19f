"""The replacements report: the terminals due for replacement (reasons, priority,
replace-by date, the merchant's number masked) and the forecast of units and cost per
quarter. Pure: :class:`ReplacementTally` takes the flagged terminals one by one
(:func:`fleet.reports.queries.replacement_tally` streams them) and :func:`build_replacements`
makes the :class:`~fleet.reports.model.Report`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fleet.core.masking import mask_phone
from fleet.core.money import format_minor, to_decimal
from fleet.core.policy import ReplacementPolicy
from fleet.replacements.rules import REASONS, Forecast, Reason, Replacement, quarter
from fleet.reports.model import (
    Chart,
    Column,
    Fact,
    LazyRows,
    Report,
    Row,
    Section,
    plural,
    series,
    stacks,
)

__all__ = ["PRIORITIES", "ReplacementTally", "build_replacements"]

PRIORITIES = ("P1", "P2", "P3")
PRIORITY_COLORS = {"P1": "#c92a2a", "P2": "#f08c00", "P3": "#4c6ef5"}


@dataclass
class ReplacementTally:
    """Streams :class:`Replacement` s into the forecast and counts, keeping the rows
    (all of them, or only the first ``limit`` by priority, replace-by date and serial)."""

    limit: int | None = None
    forecast: Forecast = field(default_factory=Forecast)
    by_reason: Counter[str] = field(default_factory=Counter)
    count: int = 0
    _by_day: Counter[tuple[date, int]] = field(default_factory=Counter)
    """(replace-by date, priority) → units: few keys, turned into quarters at the end."""
    _rows: list[Replacement] = field(default_factory=list)
    _health: list[dict[str, Any]] = field(default_factory=list)
    """The health reasons (tamper, wear), the first :data:`HEALTH_ROWS` by priority and date."""

    def add(self, r: Replacement) -> None:
        self.count += 1
        self.forecast.add(r)
        self._by_day[(r.replace_by, r.priority)] += 1
        for reason in r.reasons:
            self.by_reason[reason.code] += 1
            if reason.code in HEALTH_REASONS:
                self._add_health(r, reason)
        self._rows.append(r)
        if self.limit is not None and len(self._rows) >= 2 * self.limit + 1024:
            self._rows.sort(key=Replacement.sort_key)
            del self._rows[self.limit :]

    @property
    def by_priority(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for (_, priority), n in self._by_day.items():
            found[f"P{priority}"] += n
        return found

    @property
    def per_quarter(self) -> Counter[tuple[str, str]]:
        """(quarter, priority) → units."""
        found: Counter[tuple[str, str]] = Counter()
        for (day, priority), n in self._by_day.items():
            found[(quarter(day), f"P{priority}")] += n
        return found

    def rows(self) -> list[Replacement]:
        self._rows.sort(key=Replacement.sort_key)
        if self.limit is not None:
            del self._rows[self.limit :]
        return self._rows

    def _add_health(self, r: Replacement, reason: Reason) -> None:
        self._health.append(
            {"serial": r.serial, "model": r.model, "merchant_id": r.merchant_id,
             "priority": f"P{r.priority}", "reason": reason.code, "detail": reason.detail,
             "due": reason.due, "in_effect": reason.in_effect}
        )  # fmt: skip
        if len(self._health) >= 2 * HEALTH_ROWS:
            self._health.sort(key=_health_order)
            del self._health[HEALTH_ROWS:]

    def health_rows(self) -> list[dict[str, Any]]:
        self._health.sort(key=_health_order)
        del self._health[HEALTH_ROWS:]
        return self._health

    def merchant_ids(self) -> set[str]:
        return {r.merchant_id for r in self.rows() if r.merchant_id}


HEALTH_REASONS = frozenset({"tamper", "reader", "printer", "battery"})
HEALTH_ROWS = 1000
"""The health section lists at most this many reasons (the terminals section has all)."""


def _health_order(row: Mapping[str, Any]) -> tuple[str, date, str, str]:
    return (row["priority"], row["due"], row["serial"], row["reason"])


def _major(minor: int, currency: str) -> float:
    """For chart axes only: money stays integer minor units everywhere else."""
    return float(to_decimal(minor, currency))


def _terminal_rows(tally: ReplacementTally, phones: Mapping[str, str | None]) -> LazyRows:
    """The terminal rows, made as they are read; each merchant's number masked once."""
    masked: dict[str, str | None] = {}

    def contact(merchant_id: str | None) -> str | None:
        if merchant_id is None:
            return None
        if merchant_id not in masked:
            phone = phones.get(merchant_id)
            masked[merchant_id] = mask_phone(phone) if phone else None
        return masked[merchant_id]

    def row(r: Replacement) -> dict[str, Any]:
        return {
            "serial": r.serial,
            "model": r.model,
            "firmware": r.firmware,
            "merchant_id": r.merchant_id,
            "merchant_phone": contact(r.merchant_id),
            "status": r.status,
            "priority": f"P{r.priority}",
            "replace_by": r.replace_by,
            "reasons": [x.code for x in r.reasons],
            "details": [x.detail for x in r.reasons],
            "replacement_model": r.replacement_model,
            "cost_minor": r.cost,
            "currency": r.currency,
        }

    return LazyRows(tally.rows(), row)


def _charts(tally: ReplacementTally) -> tuple[Chart, ...]:
    per_quarter = tally.per_quarter
    quarters = sorted({q for q, _ in tally.forecast.per})
    currencies = sorted({c for _, c in tally.forecast.per})
    units = Chart(
        "forecast_units",
        "Replacements per quarter (units)",
        tuple(quarters),
        stacks(
            PRIORITIES,
            PRIORITY_COLORS,
            [{p: per_quarter[(q, p)] for p in PRIORITIES} for q in quarters],
        ),
        stacked=True,
        xlabel="quarter of the replace-by date",
        ylabel="terminals",
        description="Terminals to replace per quarter of their replace-by date, by priority.",
    )
    cost = Chart(
        "forecast_cost",
        "Replacements per quarter (cost)",
        tuple(quarters),
        tuple(
            series(
                c,
                [_major(tally.forecast.per.get((q, c), [0, 0])[1], c) for q in quarters],
            )
            for c in currencies
        ),
        xlabel="quarter of the replace-by date",
        ylabel=f"cost ({currencies[0]})" if len(currencies) == 1 else "cost",
        description="Cost of the replacement models per quarter, per currency.",
    )
    return units, cost


def _summary(tally: ReplacementTally, totals: Sequence[Mapping[str, Any]]) -> tuple[Fact, ...]:
    priorities = tally.by_priority
    by_priority = {p: priorities[p] for p in PRIORITIES if priorities[p]}
    by_reason = {c: tally.by_reason[c] for c in REASONS if tally.by_reason[c]}
    cost_text = "; ".join(
        f"{format_minor(t['cost_minor'], t['currency'])} {t['currency']} "
        f"({plural(t['units'], 'unit')})"
        for t in totals
    )
    return (
        Fact.count("terminals", "terminals to replace", tally.count),
        Fact.counts("by_priority", "by priority", by_priority),
        Fact.counts("by_reason", "by reason", by_reason),
        Fact("cost", "cost", totals, cost_text or "none"),
    )


def _sections(
    rows: Sequence[Row],
    total: int,
    forecast: Sequence[Mapping[str, Any]],
    health: Sequence[Mapping[str, Any]] = (),
) -> tuple[Section, ...]:
    limit_note = (
        f"first {len(rows):,} of {total:,} by priority, replace-by date and serial; "
        "CSV and JSON carry them all"
        if total > len(rows)
        else ""
    )
    terminals = Section(
        "terminals",
        "Terminals to replace",
        (
            Column("serial"),
            Column("model"),
            Column("firmware"),
            Column("merchant_id", "merchant"),
            Column("merchant_phone", "contact"),
            Column("status"),
            Column("priority", "P"),
            Column("replace_by", "replace by", "date"),
            Column("reasons", kind="list"),
            Column("details", kind="list"),
            Column("replacement_model", "replacement"),
            Column("cost_minor", "cost", "money"),
            Column("currency"),
        ),
        rows,
        total=total,
        note=limit_note,
        brief=("priority", "serial", "replace_by", "merchant_phone", "details"),
    )
    by_quarter = Section(
        "forecast",
        "Forecast by quarter of replace-by date",
        (
            Column("quarter"),
            Column("currency"),
            Column("units", kind="int"),
            Column("cost_minor", "cost", "money"),
        ),
        tuple(forecast),
    )
    if not health:  # no terminal reported tamper or wear: no section
        return terminals, by_quarter
    health_section = Section(
        "health",
        "Health: tampered and worn terminals",
        (
            Column("serial"),
            Column("model"),
            Column("merchant_id", "merchant"),
            Column("priority", "P"),
            Column("reason"),
            Column("detail"),
            Column("due", "due", "date"),
            Column("in_effect", "now", "bool"),
        ),
        tuple(health),
        note="from the terminals' own health reports: a tripped tamper switch; a reader, "
        "printer or battery past its share of rated life, or the day its wear line over the "
        "health history gets there (forecast)",
    )
    return terminals, by_quarter, health_section


def build_replacements(
    tally: ReplacementTally,
    phones: Mapping[str, str | None],
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int,
) -> Report:
    """``phones``: merchant id → E.164 (masked here, never shown whole). The terminal rows
    are made as they are read (:class:`~fleet.reports.model.LazyRows`)."""
    forecast = [
        {"quarter": q, "currency": currency, "units": units, "cost_minor": amount}
        for (q, currency), (units, amount) in sorted(tally.forecast.per.items())
    ]
    totals: list[dict[str, Any]] = [
        {
            "currency": currency,
            "units": tally.forecast.total_units_in(currency),
            "cost_minor": amount,
        }
        for currency, amount in tally.forecast.total_cost().items()
    ]
    return Report(
        name="replacements",
        title=f"Replacements as of {as_of.isoformat()}, horizon {horizon_days} days",
        as_of=as_of,
        params={
            "horizon_days": horizon_days,
            "max_age_years": policy.max_age_years,
            "urgent_days": policy.urgent_days,
            "statuses": list(policy.statuses),
            "require": list(policy.require),
            "fault_threshold": policy.fault_threshold,
        },
        summary=_summary(tally, totals),
        sections=_sections(
            _terminal_rows(tally, phones), tally.count, forecast, tally.health_rows()
        ),
        main="terminals",
        charts=_charts(tally),
    )
