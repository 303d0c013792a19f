"""Reports from aggregates: pure functions, no I/O.

:mod:`fleet.reports.data` runs the queries (GROUP BY in the database) and hands the
aggregated rows to these builders, which pivot, bucket, mask and word them into a
:class:`~fleet.reports.model.Report`. Everything here can be tested with literals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from fleet.core.masking import mask_address, mask_phone, mask_phones, redact_addresses
from fleet.core.money import format_minor, to_decimal
from fleet.core.policy import ReplacementPolicy
from fleet.core.values import CHANNELS
from fleet.fees.tablefile import Group
from fleet.notices.text import KINDS
from fleet.replacements.rules import REASONS, Forecast, Replacement, quarter
from fleet.reports.model import (
    Chart,
    Column,
    Fact,
    LazyRows,
    Report,
    Section,
    columns,
    series,
    stacks,
)

__all__ = [
    "FLEET_STATUSES",
    "IN_FLEET",
    "JOB_STATUSES",
    "MESSAGE_STATUSES",
    "NOTICE_STATUSES",
    "NoticeAggregates",
    "NoticeFilter",
    "ReplacementTally",
    "RolloutRow",
    "age_histogram",
    "age_years",
    "fleet_report",
    "notices_report",
    "period",
    "period_unit",
    "periods",
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
NOTICE_STATUSES = ("queued", "composed", "sent", "failed", "cancelled")
MESSAGE_STATUSES = ("ready", "sending", "sent", "failed")
NOTICE_COLORS = {
    "queued": "#f08c00",
    "composed": "#4c6ef5",
    "sent": "#2f9e44",
    "failed": "#c92a2a",
    "cancelled": "#868e96",
}
MESSAGE_COLORS = {"ready": "#f08c00", "sending": "#4c6ef5", "sent": "#2f9e44", "failed": "#c92a2a"}
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
        stacks(FLEET_STATUSES, STATUS_COLORS, [models[m] for m in model_names]),
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
    return float(to_decimal(minor, currency))


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
        f"{format_minor(t['cost_minor'], t['currency'])} {t['currency']} "
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
                stacks(JOB_STATUSES, JOB_COLORS, waves),
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


# -- notices -------------------------------------------------------------------------------

PeriodUnit = Literal["day", "week", "month"]


def period_unit(first: date, last: date) -> PeriodUnit:
    """How a chart over time buckets the days from ``first`` to ``last``: per day for up
    to 62 days, per ISO week for up to two years, per month beyond.

    >>> period_unit(date(2026, 10, 1), date(2026, 12, 1))
    'day'
    >>> period_unit(date(2026, 1, 1), date(2026, 12, 31))
    'week'
    >>> period_unit(date(2020, 1, 1), date(2026, 1, 1))
    'month'
    """
    span = (last - first).days
    if span <= 62:
        return "day"
    return "week" if span <= 731 else "month"


def period(day: date, unit: PeriodUnit) -> str:
    """The label of the period holding ``day``: ISO date, ISO week, or year and month.

    >>> [period(date(2027, 1, 1), u) for u in ("day", "week", "month")]
    ['2027-01-01', '2026-W53', '2027-01']
    """
    if unit == "day":
        return day.isoformat()
    if unit == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def periods(first: date, last: date, unit: PeriodUnit) -> list[str]:
    """Every period from the one of ``first`` to the one of ``last``, empty ones included.

    >>> periods(date(2026, 12, 30), date(2027, 1, 11), "week")
    ['2026-W53', '2027-W01', '2027-W02']
    """
    found: list[str] = []
    day = first
    while day <= last:
        label = period(day, unit)
        if not found or found[-1] != label:
            found.append(label)
        day += timedelta(days=1)
    return found


@dataclass(frozen=True, slots=True)
class NoticeFilter:
    """Which notices a report counts: created up to the end of ``as_of`` (UTC), from the
    start of ``since`` if given, of these kinds and on these channels (all when empty)."""

    as_of: date
    since: date | None = None
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def start(self) -> datetime | None:
        return None if self.since is None else datetime.combine(self.since, time(), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.as_of + timedelta(days=1), time(), tzinfo=UTC)

    def params(self) -> dict[str, Any]:
        return {
            "created_from": self.since.isoformat() if self.since else None,
            "created_up_to": self.as_of.isoformat(),
            "kinds": list(self.kinds),
            "channels": list(self.channels),
        }


@dataclass(frozen=True, slots=True)
class NoticeAggregates:
    """What :func:`fleet.reports.data.notices` reads, every row one group."""

    by_kind: Sequence[tuple[str, str | None, str, int, datetime, datetime]] = ()
    """(kind, channel or none, notice status, notices, first and last created)."""
    per_day: Sequence[tuple[date, str, int]] = ()
    """(UTC day the notice was created, notice status, notices)."""
    held: tuple[int, datetime | None] = (0, None)
    """Queued notices with a not-before instant (deferred, or a follow-up), and the first."""
    messages: Sequence[tuple[str, str, str, str | None, int, int, int | None, int | None]] = ()
    """(channel, message status, language, cost currency, messages, attempts, segments,
    cost in minor units); segments and cost are none but for SMS."""
    sms_per_day: Sequence[tuple[date, str, str | None, int, int, int]] = ()
    """(UTC day the SMS was composed, message status, currency, SMS, segments, cost)."""
    message_errors: Sequence[tuple[str, str, int, int, str]] = ()
    """(channel, last error, messages failed, messages waiting to retry, an example code)."""
    notice_failures: Sequence[tuple[str | None, int, str]] = ()
    """(note, notices failed without a message, an example merchant)."""
    examples: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Example code → (merchant, address) of its message."""


def _rank(value: str | None, known: Sequence[str]) -> tuple[int, str]:
    """Known values in their order, then the others by name, then none."""
    if value is None:
        return (len(known) + 1, "")
    return (known.index(value), "") if value in known else (len(known), value)


def _money_text(amounts: Mapping[str, int]) -> str:
    return "; ".join(f"{format_minor(v, c)} {c}" for c, v in sorted(amounts.items())) or "none"


def _money_list(amounts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"currency": c, "cost_minor": v} for c, v in sorted(amounts.items())]


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _notice_failures(agg: NoticeAggregates) -> list[dict[str, Any]]:
    """Message errors and notes of notices that failed without a message, with the
    addresses they quote redacted (:func:`~fleet.core.masking.redact_addresses`), grouped
    again: errors that differ only in the recipient they name become one. The example
    message's own address is shown masked."""
    grouped: dict[tuple[str, str | None, str], list[Any]] = {}

    def add(key: tuple[str, str | None, str], failed: int, retrying: int, example: str) -> None:
        found = grouped.get(key)
        if found is None:
            grouped[key] = [failed, retrying, example]
        else:
            found[0] += failed
            found[1] += retrying
            found[2] = min(found[2], example)

    for channel, error, failed, retrying, code in agg.message_errors:
        add(("message", channel, redact_addresses(error)), failed, retrying, code)
    for note, failed, merchant_id in agg.notice_failures:
        add(("notice", None, redact_addresses(note or "(no note)")), failed, 0, merchant_id)
    rows: list[dict[str, Any]] = []
    for (source, on, text), (n_failed, n_retrying, example) in grouped.items():
        merchant: str | None = example
        address: str | None = None
        if source == "message":
            merchant, address = agg.examples.get(example, (None, None))
        rows.append(
            {
                "source": source,
                "channel": on,
                "error": text,
                "failed": n_failed,
                "retrying": n_retrying,
                "example": example if source == "message" else None,
                "merchant": merchant,
                "to": mask_address(address) if address else None,
            }
        )
    rows.sort(
        key=lambda r: (
            -(r["failed"] + r["retrying"]),
            r["source"],
            _rank(r["channel"], CHANNELS),
            r["error"],
        )
    )
    return rows


def notices_report(agg: NoticeAggregates, where: NoticeFilter) -> Report:
    """The notices chosen by ``where`` by kind, channel and status, per day; the messages
    carrying them by channel, status and language with SMS segments and cost; failures
    by (masked) error. States are the current ones."""
    kinds = where.kinds or KINDS
    channels = where.channels or CHANNELS
    by_status: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    per_kind: dict[str, Counter[str]] = {}
    kind_rows: list[dict[str, Any]] = []
    for kind, channel, status, n, first, last in sorted(
        agg.by_kind,
        key=lambda r: (_rank(r[0], KINDS), _rank(r[1], CHANNELS), _rank(r[2], NOTICE_STATUSES)),
    ):
        kind_rows.append(
            {
                "kind": kind,
                "channel": channel,
                "status": status,
                "notices": n,
                "first_created": first,
                "last_created": last,
            }
        )
        by_status[status] += n
        by_kind[kind] += n
        per_kind.setdefault(kind, Counter())[status] += n

    days: dict[date, Counter[str]] = {}
    for day, status, n in agg.per_day:
        days.setdefault(day, Counter())[status] += n
    day_rows: list[dict[str, Any]] = [
        {"day": day, "notices": sum(c.values()), **{s: c[s] for s in NOTICE_STATUSES}}
        for day, c in sorted(days.items())
    ]

    message_rows: list[dict[str, Any]] = []
    per_channel: dict[str, Counter[str]] = {}
    by_message_status: Counter[str] = Counter()
    sms = sms_segments = 0
    sms_cost: Counter[str] = Counter()
    sent_cost: Counter[str] = Counter()
    for channel, status, language, currency, n, attempts, segments, cost in sorted(
        agg.messages,
        key=lambda r: (_rank(r[0], CHANNELS), _rank(r[1], MESSAGE_STATUSES), r[2], r[3] or ""),
    ):
        message_rows.append(
            {
                "channel": channel,
                "status": status,
                "language": language,
                "messages": n,
                "attempts": attempts,
                "segments": segments,
                "cost_minor": cost,
                "currency": currency,
            }
        )
        per_channel.setdefault(channel, Counter())[status] += n
        by_message_status[status] += n
        if channel == "sms":
            sms += n
            sms_segments += segments or 0
            if currency and cost is not None:
                sms_cost[currency] += cost
                if status == "sent":
                    sent_cost[currency] += cost

    sms_rows: list[dict[str, Any]] = []
    sms_days: dict[date, Counter[str]] = {}
    for day, status, currency, n, segments, cost in sorted(
        agg.sms_per_day, key=lambda r: (r[0], _rank(r[1], MESSAGE_STATUSES), r[2] or "")
    ):
        sms_rows.append(
            {
                "day": day,
                "status": status,
                "messages": n,
                "segments": segments,
                "cost_minor": cost,
                "currency": currency,
            }
        )
        sms_days.setdefault(day, Counter())[status] += segments

    failure_rows = _notice_failures(agg)
    total = sum(by_status.values())
    statuses = {s: by_status[s] for s in NOTICE_STATUSES}
    kind_counts = {k: by_kind[k] for k in kinds}
    held, next_due = agg.held
    messages = sum(by_message_status.values())
    channel_counts = {c: sum(per_channel.get(c, Counter()).values()) for c in channels}
    message_statuses = {s: by_message_status[s] for s in MESSAGE_STATUSES}
    waiting = by_message_status["ready"] + by_message_status["sending"]
    retrying = sum(r["retrying"] for r in failure_rows)
    summary = (
        Fact("notices", "notices", total, f"{total:,}"),
        Fact("by_status", "notices by status", statuses, _counts_text(statuses)),
        Fact("by_kind", "notices by kind", kind_counts, _counts_text(kind_counts)),
        Fact(
            "held",
            "queued, held to a later time",
            {"notices": held, "next_due": next_due},
            f"{held:,}" + (f", the first due {_instant(next_due)}" if next_due else ""),
        ),
        Fact("messages", "messages", messages, f"{messages:,}"),
        Fact(
            "messages_by_channel",
            "messages by channel",
            channel_counts,
            _counts_text(channel_counts),
        ),
        Fact(
            "messages_by_status",
            "messages by status",
            message_statuses,
            _counts_text(message_statuses),
        ),
        Fact(
            "waiting",
            "waiting to be sent",
            {"messages": waiting, "retrying": retrying},
            f"{waiting:,} ({retrying:,} to retry after an error)",
        ),
        Fact(
            "sms",
            "SMS",
            {"messages": sms, "segments": sms_segments, "cost": _money_list(sms_cost)},
            f"{_plural(sms, 'message')}, {_plural(sms_segments, 'segment')}, "
            f"{_money_text(sms_cost)}",
        ),
        Fact(
            "sms_sent_cost",
            "SMS cost of those sent",
            _money_list(sent_cost),
            _money_text(sent_cost),
        ),
        Fact(
            "distinct_errors",
            "distinct errors and failure notes",
            len(failure_rows),
            f"{len(failure_rows):,}",
        ),
    )

    all_days = sorted(set(days) | set(sms_days))
    unit = period_unit(all_days[0], all_days[-1]) if all_days else "day"
    buckets = periods(all_days[0], all_days[-1], unit) if all_days else []
    per_period: dict[str, Counter[str]] = {}
    for day, c in days.items():
        per_period.setdefault(period(day, unit), Counter()).update(c)
    sms_per_period: dict[str, Counter[str]] = {}
    for day, c in sms_days.items():
        sms_per_period.setdefault(period(day, unit), Counter()).update(c)
    empty: Counter[str] = Counter()
    kind_names = tuple(k for k in sorted(per_kind, key=lambda k: _rank(k, KINDS)))
    channel_names = tuple(c for c in sorted(per_channel, key=lambda c: _rank(c, CHANNELS)))
    charts = (
        Chart(
            "notices_over_time",
            f"Notices per {unit}",
            tuple(buckets),
            stacks(
                NOTICE_STATUSES,
                NOTICE_COLORS,
                [per_period.get(b, empty) for b in buckets],
            ),
            stacked=True,
            xlabel=f"{unit} created (UTC)",
            ylabel="notices",
            description=f"Notices per {unit} they were created, stacked by their status now.",
        ),
        Chart(
            "notices_by_kind",
            "Notices by kind",
            kind_names,
            stacks(NOTICE_STATUSES, NOTICE_COLORS, [per_kind[k] for k in kind_names]),
            stacked=True,
            xlabel="kind",
            ylabel="notices",
            description="Notices per kind, stacked by status.",
        ),
        Chart(
            "messages_by_channel",
            "Messages by channel",
            channel_names,
            stacks(
                MESSAGE_STATUSES,
                MESSAGE_COLORS,
                [per_channel[c] for c in channel_names],
            ),
            stacked=True,
            xlabel="channel",
            ylabel="messages",
            description="Messages (one notice, or several as a digest) per channel, "
            "stacked by status.",
        ),
        Chart(
            "sms_segments",
            f"SMS segments per {unit}",
            tuple(buckets),
            stacks(
                MESSAGE_STATUSES,
                MESSAGE_COLORS,
                [sms_per_period.get(b, empty) for b in buckets],
            ),
            stacked=True,
            xlabel=f"{unit} composed (UTC)",
            ylabel="segments",
            description=f"SMS segments per {unit} the messages were composed, stacked by status.",
        ),
    )
    title = f"Notices as of {where.as_of.isoformat()}"
    if where.since:
        title = f"Notices from {where.since.isoformat()} to {where.as_of.isoformat()}"
    return Report(
        name="notices",
        title=title,
        as_of=where.as_of,
        params=where.params(),
        summary=summary,
        sections=(
            Section(
                "by_kind",
                "Notices by kind, channel and status",
                (
                    Column("kind"),
                    Column("channel"),
                    Column("status"),
                    Column("notices", kind="int"),
                    Column("first_created", "first created", "datetime"),
                    Column("last_created", "last created", "datetime"),
                ),
                tuple(kind_rows),
                note="channel: the message's once composed, else the one forced (a call "
                "task), else none; statuses are the current ones",
                brief=("kind", "channel", "status", "notices", "first_created"),
            ),
            Section(
                "messages",
                "Messages by channel, status and language",
                (
                    Column("channel"),
                    Column("status"),
                    Column("language"),
                    Column("messages", kind="int"),
                    Column("attempts", kind="int"),
                    Column("segments", kind="int"),
                    Column("cost_minor", "cost", "money"),
                    Column("currency"),
                ),
                tuple(message_rows),
                note="the messages carrying these notices (a digest carries several); "
                "segments and cost for SMS only",
                brief=(
                    "channel",
                    "status",
                    "language",
                    "messages",
                    "segments",
                    "cost_minor",
                    "currency",
                ),
            ),
            Section(
                "per_day",
                "Notices per day created (UTC)",
                (
                    Column("day", kind="date"),
                    Column("notices", kind="int"),
                    *(Column(s, kind="int") for s in NOTICE_STATUSES),
                ),
                tuple(day_rows),
                note="days with notices only; statuses are the current ones",
            ),
            Section(
                "sms_per_day",
                "SMS per day composed (UTC)",
                (
                    Column("day", kind="date"),
                    Column("status"),
                    Column("messages", "SMS", "int"),
                    Column("segments", kind="int"),
                    Column("cost_minor", "cost", "money"),
                    Column("currency"),
                ),
                tuple(sms_rows),
            ),
            Section(
                "failures",
                "Failures by error",
                (
                    Column("source"),
                    Column("channel"),
                    Column("error", wrap=True),
                    Column("failed", kind="int"),
                    Column("retrying", kind="int"),
                    Column("example", "e.g."),
                    Column("merchant"),
                    Column("to"),
                ),
                tuple(failure_rows),
                note="messages that failed for good or wait to retry, by last error; "
                "notices that failed without a message, by note; the addresses an error "
                "quotes are redacted, the example's is masked",
                brief=("channel", "error", "failed", "retrying", "example"),
            ),
        ),
        main="by_kind",
        charts=charts,
    )
