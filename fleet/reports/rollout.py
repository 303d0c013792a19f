"""The rollout report: each rollout (a fee table's or a key change's) with its jobs per
wave and status, its attempts, and its failures grouped by last error (phone numbers in an
error masked). Pure:
:class:`RolloutAggregates` in (:func:`fleet.reports.queries.rollout_aggregates` reads
them), a :class:`~fleet.reports.model.Report` out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fleet.core.masking import mask_phones
from fleet.fees.tablefile import Group
from fleet.reports.model import Chart, Column, Fact, Report, Section, stacks

__all__ = ["JOB_STATUSES", "RolloutAggregates", "RolloutRow", "build_rollout"]

JOB_STATUSES = ("done", "running", "pending", "failed", "cancelled")
JOB_COLORS = {
    "done": "#2f9e44",
    "running": "#4c6ef5",
    "pending": "#ced4da",
    "failed": "#c92a2a",
    "cancelled": "#868e96",
}
MAX_ROLLOUT_CHARTS = 12
"""The charts of the newest rollouts only: one chart each."""


@dataclass(frozen=True, slots=True)
class RolloutRow:
    id: int
    version: int
    """The fee table, or the key version terminals move to (``kind`` ``key``)."""
    status: str
    wave: int
    """The open wave, from 0."""
    waves: tuple[int, ...]
    """Cumulative share per wave, ppm."""
    max_failure_ppm: int
    group: Mapping[str, Any]
    created_at: datetime
    created_by: str
    kind: str = "fees"
    """``fees`` or ``key``."""
    key_from: int | None = None
    """The key version terminals move from (``key``)."""

    @property
    def what(self) -> str:
        if self.kind == "key":
            return f"key v{self.key_from} → v{self.version}"
        return f"table v{self.version}"


@dataclass(frozen=True, slots=True)
class RolloutAggregates:
    """What :func:`fleet.reports.queries.rollout_aggregates` reads."""

    rollouts: Sequence[RolloutRow] = ()
    job_counts: Sequence[tuple[int, int, str, int]] = ()
    """(rollout, wave, job status, jobs)."""
    errors: Sequence[tuple[int, str, int, int, str]] = ()
    """(rollout, last error, failed jobs, jobs still retrying, an example serial)."""
    attempts: Sequence[tuple[int, int, int]] = ()
    """(rollout, push attempts, attempts that failed)."""


def _ppm(value: int) -> str:
    return f"{value / 10_000:g}%"


def _waves(r: RolloutRow, counts: Mapping[tuple[int, int], Counter[str]]) -> list[dict[str, Any]]:
    """One row per wave of ``r``: its share and its jobs by status."""
    waves: list[dict[str, Any]] = []
    for i, share in enumerate(r.waves):
        c = counts.get((r.id, i), Counter())
        waves.append(
            {
                "rollout": r.id,
                "kind": r.kind,
                "version": r.version,
                "rollout_status": r.status,
                "wave": i + 1,
                "share_ppm": share,
                "terminals": sum(c.values()),
                **{s: c[s] for s in JOB_STATUSES},
            }
        )
    return waves


def _rollout_row(r: RolloutRow, jobs: Counter[str], attempts: tuple[int, int]) -> dict[str, Any]:
    return {
        "rollout": r.id,
        "kind": r.kind,
        "version": r.version,
        "from_version": r.key_from,
        "status": r.status,
        "wave": f"{r.wave + 1} of {len(r.waves)}",
        "group": Group.from_dict(dict(r.group)).describe(),
        "max_failure_ppm": r.max_failure_ppm,
        "terminals": sum(jobs.values()),
        **{s: jobs[s] for s in JOB_STATUSES},
        "attempts": attempts[0],
        "attempt_errors": attempts[1],
        "created_at": r.created_at,
        "created_by": r.created_by,
    }


def _chart(r: RolloutRow, waves: Sequence[Mapping[str, Any]]) -> Chart:
    return Chart(
        f"rollout_{r.id}",
        f"Rollout {r.id}: {r.what}, {r.status}",
        tuple(f"wave {w['wave']} ({_ppm(w['share_ppm'])})" for w in waves),
        stacks(JOB_STATUSES, JOB_COLORS, waves),
        stacked=True,
        ylabel="terminals",
        description=f"Jobs of rollout {r.id} per wave, by status.",
    )


def _failures(errors: Sequence[tuple[int, str, int, int, str]]) -> list[dict[str, Any]]:
    return [
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


def _sections(
    rollouts: Sequence[Mapping[str, Any]],
    waves: Sequence[Mapping[str, Any]],
    failures: Sequence[Mapping[str, Any]],
) -> tuple[Section, ...]:
    jobs = tuple(Column(s, kind="int") for s in JOB_STATUSES)
    return (
        Section(
            "rollouts",
            "Rollouts",
            (
                Column("rollout", kind="int"),
                Column("kind"),
                Column("version", kind="int"),
                Column("from_version", "from", "int"),
                Column("status"),
                Column("wave", "open wave"),
                Column("group", wrap=True),
                Column("max_failure_ppm", "halts past", "ppm"),
                Column("terminals", kind="int"),
                *jobs,
                Column("attempts", kind="int"),
                Column("attempt_errors", "failed attempts", "int"),
                Column("created_at", "created", "datetime"),
                Column("created_by", "by"),
            ),
            tuple(rollouts),
            note="job states are the current ones",
            brief=("rollout", "status", "wave", "terminals", "done", "pending", "failed"),
        ),
        Section(
            "waves",
            "Progress per wave",
            (
                Column("rollout", kind="int"),
                Column("kind"),
                Column("version", kind="int"),
                Column("rollout_status", "rollout status"),
                Column("wave", kind="int"),
                Column("share_ppm", "share", "ppm"),
                Column("terminals", kind="int"),
                *jobs,
            ),
            tuple(waves),
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
            tuple(failures),
            note="jobs failed for good, and jobs waiting to retry, by their last error",
        ),
    )


def build_rollout(agg: RolloutAggregates, as_of: date, ids: Sequence[int] = ()) -> Report:
    """The rollouts of ``agg`` (those of ``ids``, when given, created up to ``as_of``)."""
    counts: dict[tuple[int, int], Counter[str]] = {}
    for rollout_id, wave, status, n in agg.job_counts:
        counts.setdefault((rollout_id, wave), Counter())[status] += n
    tried = {rollout_id: (n, bad) for rollout_id, n, bad in agg.attempts}
    rollout_rows: list[dict[str, Any]] = []
    wave_rows: list[dict[str, Any]] = []
    charts: list[Chart] = []
    totals: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for r in agg.rollouts:
        by_status[r.status] += 1
        waves = _waves(r, counts)
        jobs: Counter[str] = Counter()
        for i in range(len(r.waves)):
            jobs.update(counts.get((r.id, i), Counter()))
        totals.update(jobs)
        wave_rows += waves
        rollout_rows.append(_rollout_row(r, jobs, tried.get(r.id, (0, 0))))
        charts.append(_chart(r, waves))
    failures = _failures(agg.errors)
    return Report(
        name="rollout",
        title="Rollouts" + (f" {', '.join(map(str, ids))}" if ids else ""),
        as_of=as_of,
        params={"rollouts": list(ids), "created_up_to": as_of.isoformat()},
        summary=(
            Fact.count("rollouts", "rollouts", len(agg.rollouts)),
            Fact.counts("by_status", "by status", dict(sorted(by_status.items()))),
            Fact.counts("jobs", "jobs", {s: totals[s] for s in JOB_STATUSES}),
            Fact.count("distinct_errors", "distinct last errors", len(failures)),
        ),
        sections=_sections(rollout_rows, wave_rows, failures),
        main="waves",
        charts=tuple(charts[-MAX_ROLLOUT_CHARTS:]),
    )
