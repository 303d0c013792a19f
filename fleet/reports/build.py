"""Reports from aggregates: pure functions, no I/O.

:mod:`fleet.reports.data` runs the queries (GROUP BY in the database) and hands the
aggregated rows to these builders, which pivot, bucket, mask and word them into a
:class:`~fleet.reports.model.Report`. Everything here can be tested with literals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fleet.fees import Group
from fleet.policy import ReplacementPolicy
from fleet.replacements import REASONS, Forecast, Replacement, format_money, quarter
from fleet.reports.mask import mask_phone, mask_phones
from fleet.reports.model import (
    Chart,
    Column,
    Fact,
    LazyRows,
    Report,
    Section,
    columns,
    series,
)

__all__ = [
    "FLEET_STATUSES",
    "IN_FLEET",
    "JOB_STATUSES",
    "ReplacementTally",
    "RolloutRow",
    "age_histogram",
    "age_years",
    "fleet_report",
    "replacements_report",
    "rollout_report",
]

FLEET_STATUSES = ("in_stock", "deployed", "faulty", "swapped_out", "retired")
IN_FLEET = ("in_stock", "deployed", "faulty")
"""Terminals still in the fleet: the firmware table and the age histogram count these."""
JOB_STATUSES = ("done", "running", "pending", "failed", "cancelled")
PRIORITIES = ("P1", "P2", "P3")

STATUS_COLORS = {
    "in_stock": "#4c6ef5",
    "deployed": "#2f9e44",
    "faulty": "#e8590c",
    "swapped_out": "#adb5bd",
    "retired": "#495057",
}
JOB_COLORS = {
    "done": "#2f9e44",
    "running": "#4c6ef5",
    "pending": "#ced4da",
    "failed": "#c92a2a",
    "cancelled": "#868e96",
}
PRIORITY_COLORS = {"P1": "#c92a2a", "P2": "#f08c00", "P3": "#4c6ef5"}
MAX_ROLLOUT_CHARTS = 12


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


# -- fleet ---------------------------------------------------------------------------------


def age_years(made: date, as_of: date) -> int:
    """Whole years from ``made`` to ``as_of`` (negative when made later).

    >>> age_years(date(2020, 3, 1), date(2026, 2, 28))
    5
    >>> age_years(date(2020, 3, 1), date(2026, 3, 1))
    6
    >>> age_years(date(2024, 2, 29), date(2025, 2, 28))
    0
    >>> age_years(date(2027, 1, 1), date(2026, 1, 1))
    -1
    """
    before = (as_of.month, as_of.day) < (made.month, made.day)
    return as_of.year - made.year - before


@dataclass(frozen=True, slots=True)
class AgeHistogram:
    buckets: tuple[int, ...]
    """Terminals per whole year of age: ``buckets[k]`` are ``k`` to ``k+1`` years old."""
    unknown: int = 0
    """No manufacture date."""
    not_yet_made: int = 0
    """Made after the as-of date."""


def age_histogram(by_made: Iterable[tuple[date | None, int]], as_of: date) -> AgeHistogram:
    """Counts per manufacture date → counts per year of age (empty years included).

    >>> h = age_histogram([(date(2025, 6, 1), 3), (date(2022, 1, 1), 2), (None, 1)],
    ...                   date(2026, 1, 1))
    >>> h.buckets, h.unknown, h.not_yet_made
    ((3, 0, 0, 0, 2), 1, 0)
    """
    counts: Counter[int] = Counter()
    unknown = later = 0
    for made, n in by_made:
        if made is None:
            unknown += n
            continue
        years = age_years(made, as_of)
        if years < 0:
            later += n
        else:
            counts[years] += n
    top = max(counts, default=-1)
    return AgeHistogram(tuple(counts[k] for k in range(top + 1)), unknown, later)


def fleet_report(
    counts: Iterable[tuple[str, str, str, int]],
    vendors: Mapping[str, str],
    firmware_eos: Mapping[tuple[str, str], date | None],
    by_made: Iterable[tuple[date | None, int]],
    as_of: date,
) -> Report:
    """``counts``: (model, firmware, status, terminals) for every terminal; ``vendors``:
    model → vendor and ``firmware_eos``: (model, version) → end of support, from the
    catalog; ``by_made``: (manufactured on, terminals) for the terminals in the fleet
    (:data:`IN_FLEET`), which are also the ones the firmware table counts."""
    models: dict[str, dict[str, Any]] = {}
    by_status: Counter[str] = Counter()
    in_use: Counter[tuple[str, str]] = Counter()
    for model, version, status, n in sorted(counts):
        row = models.setdefault(
            model,
            {"model": model, "vendor": vendors.get(model, "")} | dict.fromkeys(FLEET_STATUSES, 0),
        )
        row[status] = row.get(status, 0) + n
        by_status[status] += n
        if status in IN_FLEET:
            in_use[(model, version)] += n
    for row in models.values():
        row["total"] = sum(row[s] for s in FLEET_STATUSES)
    firmware: list[dict[str, Any]] = []
    for (model, version), n in sorted(in_use.items()):
        eos = firmware_eos.get((model, version))
        firmware.append(
            {
                "model": model,
                "firmware": version,
                "terminals": n,
                "end_of_support": eos,
                "supported": eos is None or eos > as_of,
            }
        )
    ages = age_histogram(by_made, as_of)
    age_rows: list[dict[str, Any]] = [
        {"bucket": f"{k}-{k + 1}", "from_years": k, "to_years": k + 1, "terminals": n}
        for k, n in enumerate(ages.buckets)
    ]
    total = sum(by_status.values())
    in_fleet = sum(by_status[s] for s in IN_FLEET)
    unsupported = sum(r["terminals"] for r in firmware if not r["supported"])
    statuses = {s: by_status[s] for s in FLEET_STATUSES}
    summary = (
        Fact("terminals", "terminals", total, f"{total:,}"),
        Fact("in_fleet", "in the fleet (in stock, deployed, faulty)", in_fleet, f"{in_fleet:,}"),
        Fact("by_status", "by status", statuses, _counts_text(statuses)),
        Fact("models", "models", len(models), f"{len(models):,}"),
        Fact("firmware_versions", "firmware versions in use", len(firmware), f"{len(firmware):,}"),
        Fact(
            "unsupported_firmware",
            f"on firmware unsupported on {as_of}",
            unsupported,
            f"{unsupported:,}",
        ),
        Fact("unknown_age", "no manufacture date", ages.unknown, f"{ages.unknown:,}"),
        Fact("not_yet_made", f"made after {as_of}", ages.not_yet_made, f"{ages.not_yet_made:,}"),
    )
    model_names = tuple(models)
    composition = Chart(
        "composition",
        "Fleet composition by model",
        model_names,
        tuple(
            series(s, [models[m][s] for m in model_names], STATUS_COLORS[s])
            for s in FLEET_STATUSES
            if by_status[s]
        ),
        stacked=True,
        xlabel="model",
        ylabel="terminals",
        description="Terminals per model, stacked by status.",
    )
    age_chart = Chart(
        "age",
        f"Age as of {as_of.isoformat()}",
        tuple(r["bucket"] for r in age_rows),
        (series("terminals", ages.buckets, "#4c6ef5"),),
        xlabel="years since manufacture",
        ylabel="terminals",
        description="Terminals in the fleet per whole year since manufacture.",
    )
    return Report(
        name="fleet",
        title=f"Fleet as of {as_of.isoformat()}",
        as_of=as_of,
        params={"statuses_counted": list(IN_FLEET)},
        summary=summary,
        sections=(
            Section(
                "models",
                "Terminals by model and status",
                (
                    Column("model"),
                    Column("vendor"),
                    *(Column(s, s.replace("_", " "), "int") for s in FLEET_STATUSES),
                    Column("total", kind="int"),
                ),
                tuple(models.values()),
            ),
            Section(
                "firmware",
                f"Firmware in the fleet, supported on {as_of.isoformat()}",
                columns(
                    "model",
                    "firmware",
                    ("terminals", "terminals", "int"),
                    ("end_of_support", "end of support", "date"),
                    ("supported", "supported", "bool"),
                ),
                tuple(firmware),
                note="terminals in stock, deployed or faulty",
            ),
            Section(
                "age",
                "Age histogram (years since manufacture)",
                columns(
                    ("bucket", "years"),
                    ("from_years", "from", "int"),
                    ("to_years", "to", "int"),
                    ("terminals", "terminals", "int"),
                ),
                tuple(age_rows),
                note="terminals in stock, deployed or faulty; a bucket k-(k+1) holds those at "
                "least k and under k+1 whole years old",
            ),
        ),
        main="models",
        charts=(composition, age_chart),
    )


# -- replacements --------------------------------------------------------------------------


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

    def add(self, r: Replacement) -> None:
        self.count += 1
        self.forecast.add(r)
        self._by_day[(r.replace_by, r.priority)] += 1
        for reason in r.reasons:
            self.by_reason[reason.code] += 1
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

    def merchant_ids(self) -> set[str]:
        return {r.merchant_id for r in self.rows() if r.merchant_id}


def _major(minor: int, currency: str) -> float:
    """For chart axes only: money stays integer minor units everywhere else."""
    return float(Decimal(format_money(minor, currency)))


def replacements_report(
    tally: ReplacementTally,
    phones: Mapping[str, str | None],
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int,
) -> Report:
    """``phones``: merchant id → E.164 (masked here, never shown whole). The terminal rows
    are made as they are read (:class:`LazyRows`)."""
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

    rows = LazyRows(tally.rows(), row)
    forecast = [
        {
            "quarter": q,
            "currency": currency,
            "units": units,
            "cost_minor": amount,
        }
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
    priorities = tally.by_priority
    per_quarter = tally.per_quarter
    by_priority = {p: priorities[p] for p in PRIORITIES if priorities[p]}
    by_reason = {c: tally.by_reason[c] for c in REASONS if tally.by_reason[c]}
    quarters = sorted({q for q, _ in tally.forecast.per})
    currencies = sorted({c for _, c in tally.forecast.per})
    units_chart = Chart(
        "forecast_units",
        "Replacements per quarter (units)",
        tuple(quarters),
        tuple(
            series(p, [per_quarter[(q, p)] for q in quarters], PRIORITY_COLORS[p])
            for p in PRIORITIES
            if priorities[p]
        ),
        stacked=True,
        xlabel="quarter of the replace-by date",
        ylabel="terminals",
        description="Terminals to replace per quarter of their replace-by date, by priority.",
    )
    cost_chart = Chart(
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
    cost_text = "; ".join(
        f"{format_money(t['cost_minor'], t['currency'])} {t['currency']} "
        f"({_plural(t['units'], 'unit')})"
        for t in totals
    )
    limit_note = (
        f"first {len(rows):,} of {tally.count:,} by priority, replace-by date and serial; "
        "CSV and JSON carry them all"
        if tally.count > len(rows)
        else ""
    )
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
        summary=(
            Fact("terminals", "terminals to replace", tally.count, f"{tally.count:,}"),
            Fact("by_priority", "by priority", by_priority, _counts_text(by_priority)),
            Fact("by_reason", "by reason", by_reason, _counts_text(by_reason)),
            Fact("cost", "cost", totals, cost_text or "none"),
        ),
        sections=(
            Section(
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
                total=tally.count,
                note=limit_note,
                brief=("priority", "serial", "replace_by", "merchant_phone", "details"),
            ),
            Section(
                "forecast",
                "Forecast by quarter of replace-by date",
                (
                    Column("quarter"),
                    Column("currency"),
                    Column("units", kind="int"),
                    Column("cost_minor", "cost", "money"),
                ),
                tuple(forecast),
            ),
        ),
        main="terminals",
        charts=(units_chart, cost_chart),
    )


# -- rollouts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutRow:
    id: int
    version: int
    status: str
    wave: int
    """The open wave, from 0."""
    waves: tuple[int, ...]
    """Cumulative share per wave, ppm."""
    max_failure_ppm: int
    group: Mapping[str, Any]
    created_at: datetime
    created_by: str


def _ppm(value: int) -> str:
    return f"{value / 10_000:g}%"


def rollout_report(
    rollouts: Sequence[RolloutRow],
    job_counts: Iterable[tuple[int, int, str, int]],
    errors: Iterable[tuple[int, str, int, int, str]],
    attempts: Iterable[tuple[int, int, int]],
    as_of: date,
    ids: Sequence[int] = (),
) -> Report:
    """``job_counts``: (rollout, wave, job status, jobs); ``errors``: (rollout, last error,
    failed jobs, jobs still retrying, an example serial); ``attempts``: (rollout, push
    attempts, attempts that failed)."""
    counts: dict[tuple[int, int], Counter[str]] = {}
    for rollout_id, wave, status, n in job_counts:
        counts.setdefault((rollout_id, wave), Counter())[status] += n
    tried = {rollout_id: (n, bad) for rollout_id, n, bad in attempts}
    rollout_rows: list[dict[str, Any]] = []
    wave_rows: list[dict[str, Any]] = []
    charts: list[Chart] = []
    totals: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for r in rollouts:
        by_status[r.status] += 1
        per_rollout: Counter[str] = Counter()
        waves: list[dict[str, Any]] = []
        for i, share in enumerate(r.waves):
            c = counts.get((r.id, i), Counter())
            per_rollout.update(c)
            waves.append(
                {
                    "rollout": r.id,
                    "version": r.version,
                    "rollout_status": r.status,
                    "wave": i + 1,
                    "share_ppm": share,
                    "terminals": sum(c.values()),
                    **{s: c[s] for s in JOB_STATUSES},
                }
            )
        wave_rows += waves
        totals.update(per_rollout)
        n_attempts, n_bad = tried.get(r.id, (0, 0))
        rollout_rows.append(
            {
                "rollout": r.id,
                "version": r.version,
                "status": r.status,
                "wave": f"{r.wave + 1} of {len(r.waves)}",
                "group": Group.from_dict(dict(r.group)).describe(),
                "max_failure_ppm": r.max_failure_ppm,
                "terminals": sum(per_rollout.values()),
                **{s: per_rollout[s] for s in JOB_STATUSES},
                "attempts": n_attempts,
                "attempt_errors": n_bad,
                "created_at": r.created_at,
                "created_by": r.created_by,
            }
        )
        charts.append(
            Chart(
                f"rollout_{r.id}",
                f"Rollout {r.id}: table v{r.version}, {r.status}",
                tuple(f"wave {w['wave']} ({_ppm(w['share_ppm'])})" for w in waves),
                tuple(
                    series(s, [w[s] for w in waves], JOB_COLORS[s])
                    for s in JOB_STATUSES
                    if per_rollout[s]
                ),
                stacked=True,
                ylabel="terminals",
                description=f"Jobs of rollout {r.id} per wave, by status.",
            )
        )
    failure_rows = [
        {
            "rollout": rollout_id,
            "error": mask_phones(error),
            "failed": failed,
            "retrying": retrying,
            "example": example,
        }
        for rollout_id, error, failed, retrying, example in sorted(
            errors, key=lambda e: (e[0], -(e[2] + e[3]), e[1])
        )
    ]
    shown = charts[-MAX_ROLLOUT_CHARTS:]
    job_totals = {s: totals[s] for s in JOB_STATUSES}
    statuses = dict(sorted(by_status.items()))
    return Report(
        name="rollout",
        title="Rollouts" + (f" {', '.join(map(str, ids))}" if ids else ""),
        as_of=as_of,
        params={"rollouts": list(ids), "created_up_to": as_of.isoformat()},
        summary=(
            Fact("rollouts", "rollouts", len(rollouts), f"{len(rollouts):,}"),
            Fact("by_status", "by status", statuses, _counts_text(statuses)),
            Fact("jobs", "jobs", job_totals, _counts_text(job_totals)),
            Fact(
                "distinct_errors",
                "distinct last errors",
                len(failure_rows),
                f"{len(failure_rows):,}",
            ),
        ),
        sections=(
            Section(
                "rollouts",
                "Rollouts",
                (
                    Column("rollout", kind="int"),
                    Column("version", "table", "int"),
                    Column("status"),
                    Column("wave", "open wave"),
                    Column("group", wrap=True),
                    Column("max_failure_ppm", "halts past", "ppm"),
                    Column("terminals", kind="int"),
                    *(Column(s, kind="int") for s in JOB_STATUSES),
                    Column("attempts", kind="int"),
                    Column("attempt_errors", "failed attempts", "int"),
                    Column("created_at", "created", "datetime"),
                    Column("created_by", "by"),
                ),
                tuple(rollout_rows),
                note="job states are the current ones",
                brief=("rollout", "status", "wave", "terminals", "done", "pending", "failed"),
            ),
            Section(
                "waves",
                "Progress per wave",
                (
                    Column("rollout", kind="int"),
                    Column("version", "table", "int"),
                    Column("rollout_status", "rollout status"),
                    Column("wave", kind="int"),
                    Column("share_ppm", "share", "ppm"),
                    Column("terminals", kind="int"),
                    *(Column(s, kind="int") for s in JOB_STATUSES),
                ),
                tuple(wave_rows),
                brief=("rollout", "wave", "share_ppm", "terminals", *JOB_STATUSES[:4]),
            ),
            Section(
                "failures",
                "Failures by last error",
                (
                    Column("rollout", kind="int"),
                    Column("error", "last error", wrap=True),
                    Column("failed", kind="int"),
                    Column("retrying", kind="int"),
                    Column("example", "e.g."),
                ),
                tuple(failure_rows),
                note="jobs failed for good, and jobs waiting to retry, by their last error",
            ),
        ),
        main="waves",
        charts=tuple(shown),
    )
