"""Staged rollouts: jobs in the database, claimed by any number of workers under leases.

A rollout pushes one published table to the terminals whose target it is (in a group, or
all), in **waves** (cumulative shares, e.g. 1 %, 10 %, 100 %). A wave opens only when the
one before it has finished and the failures so far are within the threshold; past the
threshold the rollout **halts** by itself. A failed push is retried with exponential
backoff up to ``max_attempts``; every attempt and its error is kept (``push_attempt``).

**Claiming** is one statement: ``UPDATE rollout_job SET status='running', lease… WHERE id
IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …`` on PostgreSQL, so any number of
``rollout run`` processes on any number of machines share a rollout without two taking the
same job; on SQLite the same statement runs under the database's single writer lock (one
machine). A worker renews its lease while it pushes; a worker that dies stops renewing,
and once the lease has expired the job is claimable again and another worker takes it
over (the terminal resumes the download where it stopped). A worker records its result
only while it still holds the lease, so a job is never finished by two workers.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, String, and_, case, func, insert, literal, or_, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import JOBS, ROLLOUTS, now
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.device.push import PushFailedError, PushOutcome, load_target, push_terminal
from fleet.fees.publishing import load_tables, targeted_terminals
from fleet.fees.tablefile import Group
from fleet.inventory.service import NotFoundError

__all__ = [
    "ACTIVE",
    "RolloutError",
    "Worker",
    "cancel",
    "create",
    "pause",
    "resume",
    "status",
]

ACTIVE = ("running",)
LIVE = ("deployed", "faulty")
MAX_BACKOFF_S = 600.0


class RolloutError(Exception):
    """A rollout that can't be created or changed (names the rollout and why)."""


def _order_key(serial: str) -> str:
    """Spread waves evenly over models, merchants and regions: order by a hash."""
    return hashlib.sha256(serial.encode()).hexdigest()


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
    """Create a rollout and its jobs; returns (id, terminals per wave)."""
    waves = waves or policy.waves
    with writer(engine).begin() as conn:
        tables = load_tables(conn)
        if version not in tables:
            raise RolloutError(f"fee table {version} is not published")
        chosen = sorted(targeted_terminals(conn, version, group, tables), key=_order_key)
        if not chosen:
            raise RolloutError(
                f"no deployed terminal with a link has table {version} as its target"
                + ("" if group.everyone else f" in {group.describe()}")
            )
        rollout_id = conn.execute(
            insert(ROLLOUTS)
            .values(
                version=version,
                group=group.as_dict(),
                waves=list(waves),
                max_failure_ppm=max_failure_ppm
                if max_failure_ppm is not None
                else policy.max_failure_ppm,
                max_attempts=policy.max_attempts,
                status="running",
                wave=0,
                created_at=now(),
                created_by=actor,
                note=note,
            )
            .returning(ROLLOUTS.c.id)
        ).scalar_one()
        bounds = [math.ceil(len(chosen) * w / 1_000_000) for w in waves]
        jobs, sizes, start = [], [], 0
        for wave, bound in enumerate(bounds):
            end = max(bound, start)
            jobs += [
                {
                    "rollout_id": rollout_id,
                    "wave": wave,
                    "serial": s,
                    "status": "pending",
                    "attempts": 0,
                }
                for s in chosen[start:end]
            ]
            sizes.append(end - start)
            start = end
        for i in range(0, len(jobs), 5000):
            conn.execute(insert(JOBS), jobs[i : i + 5000])
        audit.record(
            conn,
            actor=actor,
            action="push",
            target=f"rollout:{rollout_id}",
            details={
                "created": True,
                "version": version,
                "group": group.describe(),
                "waves": sizes,
                "terminals": len(chosen),
            },
            reason=note,
        )
    return rollout_id, sizes


def _set_status(
    engine: Engine, rollout_id: int, new: str, allowed: tuple[str, ...], actor: str, reason: str
) -> str:
    with writer(engine).begin() as conn:
        row = conn.execute(select(ROLLOUTS.c.status).where(ROLLOUTS.c.id == rollout_id)).first()
        if row is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if row.status not in allowed:
            raise RolloutError(f"rollout {rollout_id} is {row.status}: can't make it {new}")
        conn.execute(update(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id).values(status=new))
        if new == "cancelled":
            conn.execute(
                update(JOBS)
                .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status == "pending")
                .values(status="cancelled")
            )
        audit.record(
            conn,
            actor=actor,
            action="push",
            target=f"rollout:{rollout_id}",
            details={"status": [row.status, new]},
            reason=reason,
        )
    return str(row.status)


def pause(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    _set_status(engine, rollout_id, "paused", ("running",), actor, reason)


def resume(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    """Resume a paused or halted rollout (a halted one: after the cause is fixed)."""
    _set_status(engine, rollout_id, "running", ("paused", "halted"), actor, reason)
    with writer(engine).begin() as conn:  # failed jobs of a halted rollout get another chance
        conn.execute(
            update(JOBS)
            .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=None)
        )


def cancel(engine: Engine, rollout_id: int, *, actor: str, reason: str = "") -> None:
    _set_status(engine, rollout_id, "cancelled", ("running", "paused", "halted"), actor, reason)


@dataclass
class WaveStatus:
    wave: int
    share_ppm: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def status(engine: Engine, rollout_id: int) -> dict[str, Any]:
    """The rollout, per-wave job counts, and the failing terminals with their last error."""
    with engine.connect() as conn:
        r = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id)).first()
        if r is None:
            raise RolloutError(f"no rollout {rollout_id}")
        waves = [WaveStatus(i, w) for i, w in enumerate(r.waves)]
        for wave, job_status, n in conn.execute(
            select(JOBS.c.wave, JOBS.c.status, func.count())
            .where(JOBS.c.rollout_id == rollout_id)
            .group_by(JOBS.c.wave, JOBS.c.status)
        ):
            waves[wave].counts[job_status] = n
        problems = [
            dict(row._mapping)
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
    totals: dict[str, int] = {}
    for w in waves:
        for k, v in w.counts.items():
            totals[k] = totals.get(k, 0) + v
    return {
        "id": r.id,
        "version": r.version,
        "status": r.status,
        "wave": r.wave,
        "group": Group.from_dict(r.group).describe(),
        "max_failures": f"{r.max_failure_ppm / 10_000:g}%",
        "created_at": r.created_at.isoformat(),
        "created_by": r.created_by,
        "totals": totals,
        "waves": [
            {
                "wave": w.wave + 1,
                "share": f"{w.share_ppm / 10_000:g}%",
                "terminals": w.total,
                **w.counts,
            }
            for w in waves
        ],
        "problems": problems,
    }


def _claimable(rollout_id: int, wave: int, at: datetime) -> Any:
    return and_(
        JOBS.c.rollout_id == rollout_id,
        JOBS.c.wave <= wave,
        or_(
            and_(
                JOBS.c.status == "pending",
                or_(JOBS.c.next_attempt_at.is_(None), JOBS.c.next_attempt_at <= at),
            ),
            and_(JOBS.c.status == "running", JOBS.c.lease_until < at),
        ),
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    serial: str
    attempts: int
    taken_over: bool


class Worker:
    """One ``rollout run`` process: ``threads`` pushers sharing the database.

    ``name`` identifies the process in leases and attempts (host:pid by default).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        master_key: bytes,
        fee_policy: FeePolicy,
        policy: RolloutPolicy,
        actor: str,
        name: str | None = None,
        baud: int = 115200,
        t2: float = 5.0,
        t1_margin: float = 0.5,
        poll: float = 0.5,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.master_key = master_key
        self.fee_policy = fee_policy
        self.policy = policy
        self.actor = actor
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.baud = baud
        self.t2 = t2
        self.t1_margin = t1_margin
        self.poll = poll
        self.on_event = on_event or (lambda _kind, _data: None)
        self.stop = threading.Event()
        self._tables: dict[int, Any] | None = None
        """Published tables, loaded once: they are immutable."""

    # -- claiming and finishing ------------------------------------------------------------

    def claim(self, rollout_id: int, thread: str) -> Claimed | None:
        at = now()
        lease = at + timedelta(seconds=self.policy.lease_s)
        owner = f"{self.name}/{thread}"
        with writer(self.engine).begin() as conn:
            r = conn.execute(
                select(ROLLOUTS.c.status, ROLLOUTS.c.wave).where(ROLLOUTS.c.id == rollout_id)
            ).first()
            if r is None or r.status not in ACTIVE:
                return None
            pick = (
                select(JOBS.c.id)
                .where(_claimable(rollout_id, r.wave, at))
                .order_by(JOBS.c.wave, JOBS.c.id)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            row = conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(pick.scalar_subquery()))
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_until=lease,
                    attempts=JOBS.c.attempts + 1,
                    # a job still "running" here lost its worker: say so in its history
                    last_error=case(
                        (
                            JOBS.c.status == "running",
                            literal("lease of ", String)
                            + JOBS.c.lease_owner
                            + literal(" expired", String),
                        ),
                        else_=JOBS.c.last_error,
                    ),
                )
                .returning(JOBS.c.id, JOBS.c.serial, JOBS.c.attempts, JOBS.c.last_error)
            ).first()
        if row is None:
            return None
        taken = bool(row.last_error and str(row.last_error).startswith("lease of "))
        return Claimed(row.id, row.serial, row.attempts, taken)

    def renew(self, job_id: int, owner: str) -> bool:
        with writer(self.engine).begin() as conn:
            done = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.lease_owner == owner, JOBS.c.status == "running")
                .values(lease_until=now() + timedelta(seconds=self.policy.lease_s))
            ).rowcount
        return bool(done)

    def finish(
        self, rollout_id: int, job: Claimed, owner: str, error: str | None, max_attempts: int
    ) -> str:
        """Record a job's result if we still hold it; open the next wave or halt."""
        at = now()
        if error is None:
            values: dict[str, Any] = {"status": "done", "finished_at": at, "lease_until": None}
        elif job.attempts >= max_attempts:
            values = {
                "status": "failed",
                "finished_at": at,
                "last_error": error[:500],
                "lease_until": None,
            }
        else:
            delay = min(MAX_BACKOFF_S, self.policy.backoff_s * 2 ** (job.attempts - 1))
            values = {
                "status": "pending",
                "next_attempt_at": at + timedelta(seconds=delay),
                "last_error": error[:500],
                "lease_until": None,
            }
        with writer(self.engine).begin() as conn:
            self._lock_rollout(conn, rollout_id)
            held = conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id, JOBS.c.lease_owner == owner, JOBS.c.status == "running")
                .values(**values)
            ).rowcount
            if not held:
                return "lost"
            self._advance(conn, rollout_id)
        return str(values["status"])

    @staticmethod
    def _lock_rollout(conn: Any, rollout_id: int) -> None:
        """Serialise the finishers of one rollout: each then sees the others' committed jobs
        when it decides whether a wave is complete (without it, two workers finishing the
        last two jobs of a wave at once each see the other's still running, and the next
        wave never opens). SQLite's BEGIN IMMEDIATE already serialises."""
        if conn.dialect.name == "postgresql":
            conn.execute(select(ROLLOUTS.c.id).where(ROLLOUTS.c.id == rollout_id).with_for_update())

    def check_waves(self, rollout_id: int) -> None:
        """Open the next wave (or finish the rollout) if the current one is complete."""
        with writer(self.engine).begin() as conn:
            self._lock_rollout(conn, rollout_id)
            self._advance(conn, rollout_id)

    def _advance(self, conn: Any, rollout_id: int) -> None:
        r = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id)).first()
        if r is None or r.status != "running":
            return
        opened, failed = conn.execute(
            select(func.count(), func.count().filter(JOBS.c.status == "failed"))
            .select_from(JOBS)
            .where(JOBS.c.rollout_id == rollout_id, JOBS.c.wave <= r.wave)
        ).one()
        if opened and failed * 1_000_000 > r.max_failure_ppm * opened:
            conn.execute(
                update(ROLLOUTS)
                .where(ROLLOUTS.c.id == rollout_id, ROLLOUTS.c.status == "running")
                .values(status="halted")
            )
            audit.record(
                conn,
                actor=self.actor,
                action="push",
                target=f"rollout:{rollout_id}",
                details={"status": ["running", "halted"], "failed": failed, "of": opened},
                reason="failure threshold passed",
            )
            self.on_event("halted", {"rollout": rollout_id, "failed": failed, "of": opened})
            return
        wave = r.wave
        last = len(r.waves) - 1
        while True:
            unfinished = conn.execute(
                select(func.count())
                .select_from(JOBS)
                .where(
                    JOBS.c.rollout_id == rollout_id,
                    JOBS.c.wave == wave,
                    JOBS.c.status.in_(("pending", "running")),
                )
            ).scalar_one()
            if unfinished or wave >= last:
                break
            wave += 1  # the wave before succeeded: open the next one
        if wave != r.wave:
            conn.execute(
                update(ROLLOUTS)
                .where(ROLLOUTS.c.id == rollout_id, ROLLOUTS.c.wave == r.wave)
                .values(wave=wave)
            )
            self.on_event("wave", {"rollout": rollout_id, "wave": wave + 1})
        if not unfinished and wave >= last:
            conn.execute(
                update(ROLLOUTS)
                .where(ROLLOUTS.c.id == rollout_id, ROLLOUTS.c.status == "running")
                .values(status="done")
            )
            self.on_event("done", {"rollout": rollout_id})

    # -- the loop ---------------------------------------------------------------------------

    def _rollout_state(self, rollout_id: int) -> tuple[str, int, int, int]:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(
                    ROLLOUTS.c.status, ROLLOUTS.c.version, ROLLOUTS.c.max_attempts, ROLLOUTS.c.wave
                ).where(ROLLOUTS.c.id == rollout_id)
            ).first()
        if r is None:
            raise RolloutError(f"no rollout {rollout_id}")
        return str(r.status), int(r.version), int(r.max_attempts), int(r.wave)

    def _push_one(
        self, rollout_id: int, version: int, job: Claimed, owner: str, max_attempts: int
    ) -> None:
        last_renew = time.monotonic()
        lost = False

        def progress(stored: int, count: int) -> None:
            nonlocal last_renew, lost
            self.on_event(
                "progress", {"serial": job.serial, "stored": stored, "count": count, "owner": owner}
            )
            if time.monotonic() - last_renew > self.policy.lease_s / 3:
                last_renew = time.monotonic()
                if not self.renew(job.id, owner):
                    lost = True
                    raise PushFailedError("lease lost")

        self.on_event(
            "start",
            {
                "serial": job.serial,
                "attempt": job.attempts,
                "owner": owner,
                "taken_over": job.taken_over,
            },
        )
        error: str | None = None
        outcome: PushOutcome | None = None
        try:
            target = load_target(self.engine, job.serial, version, tables=self._tables)
            self._tables = target.tables
            outcome = push_terminal(
                self.engine,
                target,
                master_key=self.master_key,
                policy=self.fee_policy,
                actor=self.actor,
                baud=self.baud,
                t2=self.t2,
                t1_margin=self.t1_margin,
                progress=progress,
                worker=owner,
                job_id=job.id,
            )
        except (PushFailedError, NotFoundError) as exc:
            error = str(exc)
        if lost:
            self.on_event("lost", {"serial": job.serial, "owner": owner})
            return
        result = self.finish(rollout_id, job, owner, error, max_attempts)
        self.on_event(
            "finish",
            {
                "serial": job.serial,
                "result": result,
                "error": error,
                "outcome": outcome.outcome if outcome else None,
                "owner": owner,
                "attempt": job.attempts,
            },
        )

    def _thread(self, rollout_id: int, index: int, until_idle: bool) -> None:
        thread = f"t{index}"
        owner = f"{self.name}/{thread}"
        while not self.stop.is_set():
            state, version, max_attempts, _ = self._rollout_state(rollout_id)
            if state in ("done", "halted", "cancelled"):
                return
            job = self.claim(rollout_id, thread) if state in ACTIVE else None
            if job is None:
                if until_idle and state == "paused":
                    return
                if state in ACTIVE:
                    self.check_waves(rollout_id)
                if until_idle and self._nothing_left(rollout_id):
                    return
                self.stop.wait(self.poll)
                continue
            self._push_one(rollout_id, version, job, owner, max_attempts)

    def _nothing_left(self, rollout_id: int) -> bool:
        with self.engine.connect() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(JOBS)
                .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status.in_(("pending", "running")))
            ).scalar_one()
        return n == 0

    def run(self, rollout_id: int, threads: int = 4, *, until_idle: bool = True) -> str:
        """Work on the rollout with ``threads`` pushers until it is done, halted, cancelled or
        paused (or, without ``until_idle``, until :attr:`stop` is set). Returns its status."""
        self._rollout_state(rollout_id)
        workers = [
            threading.Thread(
                target=self._thread,
                args=(rollout_id, i, until_idle),
                name=f"rollout-{i}",
                daemon=True,
            )
            for i in range(threads)
        ]
        for w in workers:
            w.start()
        try:
            for w in workers:
                while w.is_alive():
                    w.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for w in workers:
                w.join()
            raise
        return self._rollout_state(rollout_id)[0]
