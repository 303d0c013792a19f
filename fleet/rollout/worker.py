"""The rollout worker: claims jobs under leases and works them: a fee-table push, many
terminals at once from one loop thread (:mod:`fleet.rollout.pusher`, jobs claimed and
recorded in batches), or a key change (:func:`fleet.device.rotate.rotate_terminal`), in
threads.

**Claiming** goes through :mod:`fleet.core.leases`: one statement, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so any number of ``rollout run`` processes on any number of
machines share a rollout without two taking the same job; on SQLite the same statement
runs under the database's single writer lock (one machine). A worker renews its lease
while it pushes; a worker that dies stops renewing, and once the lease has expired the
job is claimable again and another worker takes it over (the terminal resumes the
download where it stopped, the key change from the step it reached). A worker records
its result only while it still holds the lease, so a job is never finished by two
workers. A failed job is retried with the leases' backoff up to ``max_attempts``; past the
failure threshold the rollout halts.

Progress is reported as typed events (:mod:`fleet.rollout.events`) to ``on_event``.

Over 400 lines because :class:`Worker` holds what the threaded path and the engine's pusher
(:mod:`fleet.rollout.pusher`) share: claims under leases, maintenance windows, finishing,
and the wave check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import FleetError, NotFoundError
from fleet.core.events import emit
from fleet.core.leases import Backoff, Leased, worker_identity
from fleet.core.models import JOBS, ROLLOUTS, now
from fleet.core.policy import FeePolicy, MaintenancePolicy, RolloutPolicy
from fleet.device.issued import attach
from fleet.device.keyring import KeyRing, UnissuedKeyError
from fleet.device.push import PushFailedError, PushOutcome, push_terminal
from fleet.device.rotate import RotationOutcome, rotate_terminal
from fleet.device.session import TerminalRef, resolve
from fleet.device.windows import windows_for
from fleet.fees.tables import Published, load_tables
from fleet.rollout.events import (
    Event,
    Finished,
    Halted,
    JobLost,
    Progressed,
    RolloutDone,
    Started,
    WaveOpened,
)
from fleet.rollout.jobs import RolloutKind, RolloutState, audit_action
from fleet.rollout.keys import require_keys
from fleet.rollout.waves import over_threshold

__all__ = ["Claimed", "Worker"]

LEASED = Leased(JOBS, "running")
_DEFERS_PER_CLAIM = 64
"""Jobs outside their window one claim puts back before it says "nothing now"."""


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    serial: str
    attempts: int
    taken_over: bool


@dataclass(frozen=True, slots=True)
class _Rollout:
    state: RolloutState
    kind: RolloutKind
    version: int
    """The fee table, or the key version (:attr:`kind`)."""
    max_attempts: int
    wave: int
    key_from: int | None


def _ready(rollout_id: int, wave: int, at: datetime) -> Any:
    return and_(
        JOBS.c.rollout_id == rollout_id,
        JOBS.c.wave <= wave,
        LEASED.claimable(
            and_(
                JOBS.c.status == "pending",
                or_(JOBS.c.next_attempt_at.is_(None), JOBS.c.next_attempt_at <= at),
            ),
            at,
        ),
    )


_EXPIRED = literal("lease of ", String) + JOBS.c.lease_owner + literal(" expired", String)


class Worker:
    """One ``rollout run`` process: ``threads`` pushers sharing the database.

    ``keys``: the master keys it signs with (the versions the terminals report; a key
    rollout needs both of its versions). ``name`` identifies the process in leases and
    attempts (host:pid by default).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        keys: KeyRing,
        fee_policy: FeePolicy,
        policy: RolloutPolicy,
        actor: str,
        name: str | None = None,
        baud: int = 115200,
        t2: float = 5.0,
        t1_margin: float = 0.5,
        poll: float = 0.5,
        on_event: Callable[[Event], None] | None = None,
        maintenance: MaintenancePolicy | None = None,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.fee_policy = fee_policy
        self.policy = policy
        self.actor = actor
        self.name = worker_identity(name)
        self.link = {"baud": baud, "t2": t2, "t1_margin": t1_margin}
        self.poll = poll
        self.on_event: Callable[[Event], None] = on_event or (lambda _event: None)
        self.maintenance = maintenance or MaintenancePolicy()
        self.clock = clock
        """The instant windows, leases and retries are judged at (injected in tests)."""
        self.stop = threading.Event()
        self.backoff = Backoff(policy.backoff_s)
        self._tables: dict[int, Published] | None = None
        """Published tables, loaded once: they are immutable."""

    # -- claiming and finishing ------------------------------------------------------------

    def claim(self, rollout_id: int, thread: str) -> Claimed | None:
        found = self.claim_many(rollout_id, f"{self.name}/{thread}", 1)
        return found[0] if found else None

    def claim_many(self, rollout_id: int, owner: str, n: int) -> list[Claimed]:
        """Claim up to ``n`` ready jobs of the running rollout for ``owner`` whose terminals
        are inside their maintenance windows (none when the rollout is not running). A job
        claimed outside its window goes back to ``pending`` until the window opens
        (``next_attempt_at``; its attempt not counted), and others are claimed instead."""
        found: list[Claimed] = []
        for _ in range(_DEFERS_PER_CLAIM):
            batch = self._claim_batch(rollout_id, owner, n - len(found))
            if batch is None:
                break
            claimed, deferred = batch
            found.extend(claimed)
            if not deferred or len(found) >= n:
                break
        found.sort(key=lambda c: c.id)
        return found

    def _claim_batch(self, rollout_id: int, owner: str, n: int) -> tuple[list[Claimed], int] | None:
        """One transaction: up to ``n`` jobs claimed, those outside their windows deferred;
        ``(claimed, how many deferred)``, or ``None`` when nothing was ready."""
        at = self.clock()
        with writer(self.engine).begin() as conn:
            r = conn.execute(
                select(ROLLOUTS.c.status, ROLLOUTS.c.wave).where(ROLLOUTS.c.id == rollout_id)
            ).first()
            if r is None or r.status != RolloutState.RUNNING:
                return None
            pick = (
                select(JOBS.c.id)
                .where(_ready(rollout_id, r.wave, at))
                .order_by(JOBS.c.wave, JOBS.c.id)
                .limit(n)
            )
            rows = LEASED.claim(
                conn,
                pick,
                owner=owner,
                until=at + timedelta(seconds=self.policy.lease_s),
                returning=(JOBS.c.id, JOBS.c.serial, JOBS.c.attempts, JOBS.c.last_error),
                # a job still "running" here lost its worker: say so in its history
                values={
                    "last_error": case(
                        (JOBS.c.status == "running", _EXPIRED), else_=JOBS.c.last_error
                    )
                },
            )
            if not rows:
                return None
            serials = [row.serial for row in rows]
            windows = windows_for(conn, serials, self.maintenance)
            kept, deferred = [], 0
            for row in rows:
                window = windows.get(row.serial)
                if window is not None and not window.is_open(at):
                    conn.execute(
                        update(JOBS)
                        .where(JOBS.c.id == row.id)
                        .values(
                            status="pending",
                            lease_owner=None,
                            lease_until=None,
                            attempts=JOBS.c.attempts - 1,
                            next_attempt_at=window.next_open(at),
                        )
                    )
                    deferred += 1  # deferred to its window
                else:
                    kept.append(row)
        claimed = [
            Claimed(
                row.id,
                row.serial,
                row.attempts,
                bool(row.last_error and str(row.last_error).startswith("lease of ")),
            )
            for row in kept
        ]
        return claimed, deferred

    def renew_many(self, held: list[tuple[int, str]]) -> set[int]:
        """Extend the leases of (job id, owner) pairs; returns the ids still held."""
        until = self.clock() + timedelta(seconds=self.policy.lease_s)
        kept: set[int] = set()
        with writer(self.engine).begin() as conn:
            for start in range(0, len(held), 500):
                chunk = held[start : start + 500]
                rows = conn.execute(
                    update(JOBS)
                    .where(
                        tuple_(JOBS.c.id, JOBS.c.lease_owner).in_(chunk),
                        JOBS.c.status == "running",
                    )
                    .values(lease_until=until)
                    .returning(JOBS.c.id)
                ).all()
                kept.update(r.id for r in rows)
        return kept

    def renew(self, job_id: int, owner: str) -> bool:
        until = self.clock() + timedelta(seconds=self.policy.lease_s)
        with writer(self.engine).begin() as conn:
            return LEASED.renew(conn, job_id, owner, until)

    def finish(
        self, rollout_id: int, job: Claimed, owner: str, error: str | None, max_attempts: int
    ) -> str:
        """Record a job's result if we still hold it; open the next wave or halt."""
        with writer(self.engine).begin() as conn:
            self._lock_rollout(conn, rollout_id)
            result = self.finish_in(conn, job, owner, error, max_attempts, self.clock())
            if result != "lost":
                self._advance(conn, rollout_id)
        return result

    def finish_in(
        self,
        conn: Connection,
        job: Claimed,
        owner: str,
        error: str | None,
        max_attempts: int,
        at: datetime,
    ) -> str:
        """Record a job's result in the caller's transaction if ``owner`` still holds it:
        ``done``, ``failed``, ``pending`` (to be retried) or ``lost``."""
        values: dict[str, Any]
        if error is None:
            values = {"status": "done", "finished_at": at}
        elif job.attempts >= max_attempts:
            values = {"status": "failed", "finished_at": at, "last_error": error[:500]}
        else:
            values = {
                "status": "pending",
                "next_attempt_at": self.backoff.after(at, job.attempts),
                "last_error": error[:500],
            }
        if not LEASED.finish(conn, job.id, owner, **values):
            return "lost"
        return str(values["status"])

    def finish_done(self, conn: Connection, held: list[tuple[int, str]], at: datetime) -> set[int]:
        """Mark done, in one statement, the (job id, owner) pairs still held; returns the
        ids marked (the others were lost)."""
        done: set[int] = set()
        for start in range(0, len(held), 500):
            chunk = held[start : start + 500]
            rows = conn.execute(
                update(JOBS)
                .where(
                    tuple_(JOBS.c.id, JOBS.c.lease_owner).in_(chunk),
                    JOBS.c.status == "running",
                )
                .values(status="done", finished_at=at, lease_until=None)
                .returning(JOBS.c.id)
            ).all()
            done.update(r.id for r in rows)
        return done

    @staticmethod
    def _lock_rollout(conn: Connection, rollout_id: int) -> None:
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

    def _advance(self, conn: Connection, rollout_id: int) -> None:
        r = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id)).first()
        if r is None or r.status != RolloutState.RUNNING:
            return
        opened, failed = conn.execute(
            select(func.count(), func.count().filter(JOBS.c.status == "failed"))
            .select_from(JOBS)
            .where(JOBS.c.rollout_id == rollout_id, JOBS.c.wave <= r.wave)
        ).one()
        if over_threshold(failed=failed, opened=opened, max_failure_ppm=r.max_failure_ppm):
            self._set(conn, rollout_id, RolloutState.HALTED)
            audit.record(
                conn,
                actor=self.actor,
                action=audit_action(r.kind),
                target=f"rollout:{rollout_id}",
                details={"status": ["running", "halted"], "failed": failed, "of": opened},
                reason="failure threshold passed",
            )
            emit(
                conn,
                "rollout.halted",
                {"rollout": rollout_id, "version": r.version, "failed": failed, "of": opened},
            )
            self.on_event(Halted(rollout_id, failed, opened))
            return
        wave, last = r.wave, len(r.waves) - 1
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
            self.on_event(WaveOpened(rollout_id, wave + 1))
        if not unfinished and wave >= last:
            self._set(conn, rollout_id, RolloutState.DONE)
            counts: dict[str, int] = dict(
                conn.execute(
                    select(JOBS.c.status, func.count())
                    .where(JOBS.c.rollout_id == rollout_id)
                    .group_by(JOBS.c.status)
                ).all()
            )
            emit(
                conn,
                "rollout.done",
                {"rollout": rollout_id, "version": r.version,
                 "jobs": {str(k): int(v) for k, v in counts.items()}},
            )  # fmt: skip
            self.on_event(RolloutDone(rollout_id))

    @staticmethod
    def _set(conn: Connection, rollout_id: int, state: RolloutState) -> None:
        conn.execute(
            update(ROLLOUTS)
            .where(ROLLOUTS.c.id == rollout_id, ROLLOUTS.c.status == RolloutState.RUNNING)
            .values(status=state)
        )

    # -- the loop ---------------------------------------------------------------------------

    def _rollout(self, rollout_id: int) -> _Rollout:
        c = ROLLOUTS.c
        with self.engine.connect() as conn:
            r = conn.execute(
                select(
                    c.status, c.kind, c.version, c.key_version, c.key_from, c.max_attempts, c.wave
                ).where(c.id == rollout_id)
            ).first()
        if r is None:
            raise NotFoundError(f"no rollout {rollout_id}")
        kind = RolloutKind(r.kind)
        return _Rollout(
            RolloutState(r.status),
            kind,
            int(r.key_version if kind == RolloutKind.KEY else r.version),
            int(r.max_attempts),
            int(r.wave),
            r.key_from,
        )

    def prepare(self, rollout_id: int) -> None:
        """Check the key ring against the issued versions (their check values); a key
        rollout needs the keys of both its versions (:class:`InputError` otherwise).
        :meth:`run` does it first."""
        r = self._rollout(rollout_id)
        with self.engine.connect() as conn:
            self.keys = attach(conn, self.keys)
        if r.kind == RolloutKind.KEY:
            require_keys(self.keys, rollout_id, r.key_from or 0, r.version)

    def _work(
        self, r: _Rollout, ref: TerminalRef, job: Claimed, owner: str, progress: Any
    ) -> PushOutcome | RotationOutcome:
        """The job's work, by the rollout's kind."""
        if r.kind == RolloutKind.KEY:
            return rotate_terminal(
                self.engine, ref, r.version, keys=self.keys, old=r.key_from, actor=self.actor,
                progress=progress, worker=owner, job_id=job.id, **self.link,  # type: ignore[arg-type]
            )  # fmt: skip
        if self._tables is None or r.version not in self._tables:
            with self.engine.connect() as conn:
                self._tables = load_tables(conn)
        return push_terminal(
            self.engine, ref, r.version, self._tables, keys=self.keys, policy=self.fee_policy,
            actor=self.actor, progress=progress, worker=owner, job_id=job.id,
            **self.link,  # type: ignore[arg-type]
        )  # fmt: skip

    def _push_one(self, rollout_id: int, r: _Rollout, job: Claimed, owner: str) -> None:
        last_renew = time.monotonic()
        lost = False

        def progress(stored: int, count: int) -> None:
            nonlocal last_renew, lost
            self.on_event(Progressed(job.serial, stored, count, owner))
            if time.monotonic() - last_renew > self.policy.lease_s / 3:
                last_renew = time.monotonic()
                if not self.renew(job.id, owner):
                    lost = True
                    raise PushFailedError("lease lost")

        self.on_event(Started(job.serial, job.attempts, owner, job.taken_over))
        error: str | None = None
        outcome: PushOutcome | RotationOutcome | None = None
        attempts = r.max_attempts
        try:
            with self.engine.connect() as conn:
                ref = resolve(conn, job.serial)
            outcome = self._work(r, ref, job, owner, progress)
        except FleetError as exc:
            error = str(exc)
            if getattr(exc, "reason", None) == UnissuedKeyError.reason:
                attempts = job.attempts  # to be replaced, not retried: failed at once
        if lost:
            self.on_event(JobLost(job.serial, owner))
            return
        result = self.finish(rollout_id, job, owner, error, attempts)
        self.on_event(Finished(job.serial, result, error, outcome, owner, job.attempts))

    def _thread(self, rollout_id: int, index: int, until_idle: bool) -> None:
        thread = f"t{index}"
        owner = f"{self.name}/{thread}"
        while not self.stop.is_set():
            r = self._rollout(rollout_id)
            if r.state.over:
                return
            running = r.state == RolloutState.RUNNING
            job = self.claim(rollout_id, thread) if running else None
            if job is None:
                if until_idle and r.state == RolloutState.PAUSED:
                    return
                if running:
                    self.check_waves(rollout_id)
                if until_idle and self._nothing_left(rollout_id):
                    return
                self.stop.wait(self.poll)
                continue
            self._push_one(rollout_id, r, job, owner)

    def _nothing_left(self, rollout_id: int) -> bool:
        with self.engine.connect() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(JOBS)
                .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status.in_(("pending", "running")))
            ).scalar_one()
        return n == 0

    def run(self, rollout_id: int, threads: int = 4, *, until_idle: bool = True) -> RolloutState:
        """Work on the rollout with ``threads`` pushers until it is done, halted, cancelled or
        paused (or, without ``until_idle``, until :attr:`stop` is set). Returns its state.

        A fee-table rollout is pushed through the many-links engine
        (:class:`fleet.rollout.pusher.EnginePusher`): ``threads`` is then the number of
        terminals pushed at once, from one loop thread. A key rollout runs ``threads``
        blocking sessions in threads."""
        self.prepare(rollout_id)
        if self._rollout(rollout_id).kind == RolloutKind.FEES:
            from fleet.rollout.pusher import EnginePusher  # noqa: PLC0415

            pusher = EnginePusher(self, rollout_id, threads, until_idle=until_idle)
            try:
                pusher.run()
            except KeyboardInterrupt:
                self.stop.set()
                raise
            return self._rollout(rollout_id).state
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
        return self._rollout(rollout_id).state
