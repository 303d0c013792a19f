"""Rollouts and their jobs in the database: create, pause, resume, cancel, status.

A rollout is of one **kind** (:class:`RolloutKind`): it pushes one published fee table to
the terminals whose target it is, or (:mod:`fleet.rollout.keys`) moves terminals to a new
MAC key version. Either way it reaches its terminals (in a group, or all) in **waves**
(:mod:`fleet.rollout.waves`): one ``rollout_job`` per terminal, worked by
:class:`fleet.rollout.worker.Worker`; pausing, resuming, cancelling and the status are the
same for both kinds.

Over 400 lines because creating, pausing, resuming, cancelling and the status of both kinds
of rollout share the rollout row's life cycle and its wave accounting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import ConflictError, NotFoundError
from fleet.core.models import JOBS, ROLLOUTS, now
from fleet.core.policy import MaintenancePolicy, RolloutPolicy
from fleet.device.windows import has_windows, windows_for
from fleet.fees.group import Group
from fleet.fees.targets import push_targets
from fleet.rollout.waves import share_text, split_waves

__all__ = [
    "JobProblem",
    "RolloutError",
    "RolloutKind",
    "RolloutState",
    "RolloutStatus",
    "WaveStatus",
    "cancel",
    "create",
    "list_rollouts",
    "pause",
    "resume",
    "status",
]


class RolloutError(ConflictError):
    """A rollout that can't be created or changed in its state (names it and why)."""


class RolloutKind(enum.StrEnum):
    """What a rollout brings its terminals."""

    FEES = "fees"
    """A published fee table (``version``)."""
    KEY = "key"
    """A MAC key version (``version``, from ``key_from``)."""


class RolloutState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def over(self) -> bool:
        """No worker will take a job of it again (resuming a halted one aside)."""
        return self in (RolloutState.DONE, RolloutState.HALTED, RolloutState.CANCELLED)


def create(
    engine: Engine,
    version: int,
    *,
    group: Group,
    policy: RolloutPolicy,
    actor: str,
    waves: tuple[int, ...] | None = None,
    max_failure_ppm: int | None = None,
    note: str = "",
) -> tuple[int, list[int]]:
    """Create a rollout of fee table ``version`` and its jobs; returns (id, terminals per
    wave)."""
    with writer(engine).begin() as conn:
        chosen = push_targets(conn, version, group)
        return insert_rollout(
            conn,
            {"kind": RolloutKind.FEES, "version": version},
            chosen,
            group=group,
            policy=policy,
            actor=actor,
            waves=waves,
            max_failure_ppm=max_failure_ppm,
            note=note,
            audit_as=("push", {"version": version}),
        )


def insert_rollout(
    conn: Connection,
    what: dict[str, Any],
    serials: list[str],
    *,
    group: Group,
    policy: RolloutPolicy,
    actor: str,
    waves: tuple[int, ...] | None,
    max_failure_ppm: int | None,
    note: str,
    audit_as: tuple[str, dict[str, Any]],
) -> tuple[int, list[int]]:
    """Write a rollout of ``what`` (its kind's columns) to ``serials`` in waves, with its
    jobs and an audit entry (``audit_as``: action, details), in the caller's transaction.
    Returns (id, terminals per wave)."""
    waves = waves or policy.waves
    rollout_id = conn.execute(
        insert(ROLLOUTS)
        .values(
            **what,
            group=group.as_dict(),
            waves=list(waves),
            max_failure_ppm=policy.max_failure_ppm if max_failure_ppm is None else max_failure_ppm,
            max_attempts=policy.max_attempts,
            status=RolloutState.RUNNING,
            wave=0,
            created_at=now(),
            created_by=actor,
            note=note,
        )
        .returning(ROLLOUTS.c.id)
    ).scalar_one()
    split = split_waves(serials, waves)
    jobs = [
        {"rollout_id": rollout_id, "wave": wave, "serial": s, "status": "pending", "attempts": 0}
        for wave, chosen in enumerate(split)
        for s in chosen
    ]
    for i in range(0, len(jobs), 5000):
        conn.execute(insert(JOBS), jobs[i : i + 5000])
    sizes = [len(w) for w in split]
    action, details = audit_as
    audit.record(
        conn,
        actor=actor,
        action=action,
        target=f"rollout:{rollout_id}",
        details={
            "created": True,
            **details,
            "group": group.describe(),
            "waves": sizes,
            "terminals": len(serials),
        },
        reason=note,
    )
    return rollout_id, sizes


def audit_action(kind: str) -> str:
    """The audit action of a rollout of ``kind``: ``push`` (fee tables) or ``key``."""
    return "key" if kind == RolloutKind.KEY else "push"


def _set_status(
    engine: Engine,
    rollout_id: int,
    new: RolloutState,
    allowed: tuple[RolloutState, ...],
    actor: str,
    reason: str,
) -> None:
    with writer(engine).begin() as conn:
        row = conn.execute(
            select(ROLLOUTS.c.status, ROLLOUTS.c.kind).where(ROLLOUTS.c.id == rollout_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no rollout {rollout_id}")
        if row.status not in allowed:
            raise RolloutError(f"rollout {rollout_id} is {row.status}: can't make it {new}")
        conn.execute(update(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id).values(status=new))
        if new == RolloutState.CANCELLED:
            conn.execute(
                update(JOBS)
                .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status == "pending")
                .values(status="cancelled")
            )
        if new == RolloutState.RUNNING:  # failed jobs of a halted rollout get another chance
            conn.execute(
                update(JOBS)
                .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status == "failed")
                .values(status="pending", attempts=0, next_attempt_at=None)
            )
        audit.record(
            conn,
            actor=actor,
            action=audit_action(row.kind),
            target=f"rollout:{rollout_id}",
            details={"status": [row.status, str(new)]},
            reason=reason,
        )


def pause(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    """Stop claiming new jobs (running pushes finish)."""
    _set_status(engine, rollout_id, RolloutState.PAUSED, (RolloutState.RUNNING,), actor, reason)


def resume(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    """Resume a paused or halted rollout (a halted one: after the cause is fixed)."""
    allowed = (RolloutState.PAUSED, RolloutState.HALTED)
    _set_status(engine, rollout_id, RolloutState.RUNNING, allowed, actor, reason)


def cancel(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    """Cancel: pending jobs are dropped; terminals keep what they have."""
    allowed = (RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.HALTED)
    _set_status(engine, rollout_id, RolloutState.CANCELLED, allowed, actor, reason)


@dataclass
class WaveStatus:
    wave: int
    """1-based."""
    share_ppm: int
    counts: dict[str, int] = field(default_factory=dict)
    """Jobs per status (``pending``, ``running``, ``done``, ``failed``, ``cancelled``)."""
    waiting: int = 0
    """Pending jobs whose terminal's maintenance window is closed now."""
    finishes_by: datetime | None = None
    """When its last waiting terminal's window opens (the wave can finish then); None:
    no terminal waits for a window."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self, *, windowed: bool = False) -> dict[str, Any]:
        doc = {"wave": self.wave, "share": share_text(self.share_ppm), "terminals": self.total}
        if windowed:
            doc["waiting_for_window"] = self.waiting
            doc["finishes_by"] = self.finishes_by.isoformat() if self.finishes_by else None
        return doc


@dataclass(frozen=True, slots=True)
class JobProblem:
    """A job that is not done and has an error."""

    serial: str
    wave: int
    status: str
    attempts: int
    last_error: str
    next_attempt_at: datetime | None


@dataclass
class RolloutStatus:
    id: int
    version: int
    """The fee table, or the key version terminals move to (:attr:`kind`)."""
    status: RolloutState
    wave: int
    """The current wave, 0-based."""
    group: Group
    max_failure_ppm: int
    created_at: datetime
    created_by: str
    waves: list[WaveStatus]
    problems: list[JobProblem]
    kind: RolloutKind = RolloutKind.FEES
    key_from: int | None = None
    """The key version terminals move from (a key rollout)."""
    windowed: bool = False
    """The policy has maintenance windows: the waves say who waits for one."""

    @property
    def what(self) -> str:
        """What it brings: ``table v7``, ``key v1 → v2``."""
        if self.kind == RolloutKind.KEY:
            return f"key v{self.key_from} → v{self.version}"
        return f"table v{self.version}"

    @property
    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for w in self.waves:
            for k, v in w.counts.items():
                totals[k] = totals.get(k, 0) + v
        return totals

    @property
    def terminals(self) -> int:
        return sum(w.total for w in self.waves)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``rollout status --format json``)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "version": self.version,
            **({"from_version": self.key_from} if self.kind == RolloutKind.KEY else {}),
            "status": str(self.status),
            "wave": self.wave,
            "group": self.group.describe(),
            "max_failures": share_text(self.max_failure_ppm),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "totals": self.totals,
            "waves": [w.as_dict(windowed=self.windowed) | w.counts for w in self.waves],
            "problems": [
                {
                    "serial": p.serial,
                    "wave": p.wave,
                    "status": p.status,
                    "attempts": p.attempts,
                    "last_error": p.last_error,
                    "next_attempt_at": p.next_attempt_at,
                }
                for p in self.problems
            ],
        }


def _window_waits(
    conn: Connection,
    rollout_id: int,
    waves: list[WaveStatus],
    maintenance: MaintenancePolicy,
    at: datetime,
) -> None:
    """Per wave: pending jobs whose window is closed at ``at``, and when the last of them
    opens (not before the job's own ``next_attempt_at``)."""
    pending = conn.execute(
        select(JOBS.c.serial, JOBS.c.wave, JOBS.c.next_attempt_at).where(
            JOBS.c.rollout_id == rollout_id, JOBS.c.status == "pending"
        )
    ).all()
    found = windows_for(conn, [p.serial for p in pending], maintenance)
    for p in pending:
        window = found.get(p.serial)
        if window is None or window.window.always:
            continue
        start = max(at, p.next_attempt_at) if p.next_attempt_at else at
        if start == at and window.is_open(at):
            continue
        wave = waves[p.wave]
        wave.waiting += 1
        opens = window.next_open(start)
        if wave.finishes_by is None or opens > wave.finishes_by:
            wave.finishes_by = opens


def status(
    engine: Engine,
    rollout_id: int,
    *,
    maintenance: MaintenancePolicy | None = None,
    at: datetime | None = None,
) -> RolloutStatus:
    """The rollout, per-wave job counts, and the failing terminals with their last error;
    with ``maintenance``, per wave how many terminals wait for their window (at ``at``,
    default now) and when the wave can finish."""
    with engine.connect() as conn:
        r = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id)).first()
        if r is None:
            raise NotFoundError(f"no rollout {rollout_id}")
        waves = [WaveStatus(i + 1, w) for i, w in enumerate(r.waves)]
        for wave, job_status, n in conn.execute(
            select(JOBS.c.wave, JOBS.c.status, func.count())
            .where(JOBS.c.rollout_id == rollout_id)
            .group_by(JOBS.c.wave, JOBS.c.status)
        ):
            waves[wave].counts[job_status] = n
        windowed = maintenance is not None and has_windows(maintenance)
        if maintenance is not None and windowed:
            _window_waits(conn, rollout_id, waves, maintenance, at or now())
        problems = [
            JobProblem(
                row.serial, row.wave, row.status, row.attempts, row.last_error, row.next_attempt_at
            )
            for row in conn.execute(
                select(
                    JOBS.c.serial,
                    JOBS.c.wave,
                    JOBS.c.status,
                    JOBS.c.attempts,
                    JOBS.c.last_error,
                    JOBS.c.next_attempt_at,
                )
                .where(
                    JOBS.c.rollout_id == rollout_id,
                    JOBS.c.last_error.is_not(None),
                    JOBS.c.status != "done",
                )
                .order_by(JOBS.c.status, JOBS.c.serial)
                .limit(200)
            )
        ]
    kind = RolloutKind(r.kind)
    return RolloutStatus(
        r.id,
        r.key_version if kind == RolloutKind.KEY else r.version,
        RolloutState(r.status),
        r.wave,
        Group.from_dict(r.group),
        r.max_failure_ppm,
        r.created_at,
        r.created_by,
        waves,
        problems,
        kind,
        r.key_from,
        windowed,
    )


def list_rollouts(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """Rollouts, newest first, each with its job counts by status (``totals``)."""
    with engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(select(ROLLOUTS).order_by(ROLLOUTS.c.id.desc()).limit(limit))
        ]
        ids = [r["id"] for r in rows]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            for rollout_id, job_status, n in conn.execute(
                select(JOBS.c.rollout_id, JOBS.c.status, func.count())
                .where(JOBS.c.rollout_id.in_(ids))
                .group_by(JOBS.c.rollout_id, JOBS.c.status)
            ):
                counts[rollout_id][job_status] = int(n)
    for row in rows:
        row["totals"] = counts[row["id"]]
        row["terminals"] = sum(row["totals"].values())
        row["group"] = Group.from_dict(row["group"]).describe()
    return rows
