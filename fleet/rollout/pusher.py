"""A fee-table rollout driven through the host's many-links engine (:mod:`protocols.engine`):
many terminals pushed from one loop thread, the database worked from one other.

The **database thread** (the caller's) claims jobs in batches (one transaction for as many
as there are free links), resolves their terminals in one query, hands each push to the
engine, renews the leases of every push in flight in one statement every third of the
lease, and records finished pushes in batches: the jobs' outcomes, every attempt, the
terminals' versions and the audit entries, then the wave check — one transaction per batch.
The **engine thread** runs the conversations (:func:`fleet.device.pushflow.push_flow`):
the table is loaded once per rollout and its blocks encoded and MAC'd once per terminal
key (:class:`~protocols.flows.PreparedTable`); each terminal gets one sign-on, which the
download, the status query and the test sale all use.

Crash safety is the worker's: a job is finished only while its lease is held (a lost lease
stops the push at its next block and the job is left to whoever holds it now), and a dead
worker's jobs are claimed again when their leases expire. A terminal reached over a serial
port (not ``socket://``) is pushed by the blocking session in a thread of a small pool, as
before.
"""

from __future__ import annotations

import itertools
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.core.db import writer
from fleet.core.errors import FleetError
from fleet.device.attempts import Attempt
from fleet.device.keyring import UnissuedKeyError
from fleet.device.push import PushFailedError
from fleet.device.pushflow import (
    Pushed,
    PushState,
    conversation,
    push_flow,
    record_pushes,
    result_of,
)
from fleet.device.session import TerminalRef, resolve_many
from fleet.fees.tables import load_tables
from fleet.rollout.events import Finished, JobLost, Progressed, Started
from fleet.rollout.jobs import RolloutState
from protocols.engine import Engine, Job, Outcome
from protocols.flows import Flow, PreparedTable

if TYPE_CHECKING:
    from fleet.device.push import PushOutcome
    from fleet.rollout.worker import Claimed, Worker, _Rollout

__all__ = ["BATCH_S", "EnginePusher"]

BATCH_S = 0.1
"""The database thread's turn: finished pushes are recorded, and free links refilled, in
batches at most this often."""


@dataclass(slots=True)
class _Flight:
    job: Claimed
    owner: str
    ref: TerminalRef
    state: PushState
    lost: bool = False


class EnginePusher:
    """One worker process's pushes of fee-table rollout ``rollout_id`` (module docstring):
    up to ``links`` terminals at once."""

    def __init__(self, worker: Worker, rollout_id: int, links: int, *, until_idle: bool) -> None:
        self.w = worker
        self.rollout_id = rollout_id
        self.links = max(1, links)
        self.until_idle = until_idle
        self.done: queue.SimpleQueue[tuple[_Flight, Outcome]] = queue.SimpleQueue()
        self.flying: dict[int, _Flight] = {}
        self.serial_pushes: dict[int, Future[None]] = {}
        self._batch = itertools.count(1)
        self._pool: ThreadPoolExecutor | None = None
        self._prepared: dict[int, PreparedTable] = {}

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        w = self.w
        link = w.link
        engine = Engine(
            baud=int(link["baud"]),
            t1_margin=link["t1_margin"],
            t2=link["t2"],
            concurrency=self.links,
        )
        engine.start()
        renew_every = w.policy.lease_s / 3
        next_renew = time.monotonic() + renew_every
        idle_until = 0.0
        try:
            while True:
                # one turn every BATCH_S at most: results and claims gather into batches
                turn = time.monotonic()
                self._record(self._drain(BATCH_S if self._busy() else 0.0))
                if self.flying and time.monotonic() >= next_renew:
                    next_renew = time.monotonic() + renew_every
                    self._renew()
                self._reap_serial()
                r = w._rollout(self.rollout_id)
                running = r.state == RolloutState.RUNNING and not w.stop.is_set()
                claimed = 0
                free = self.links - len(self.flying) - len(self.serial_pushes)
                wanted = free > 0 and (not self._busy() or free >= max(1, self.links // 4))
                if running and wanted and time.monotonic() >= idle_until:
                    claimed = self._claim(engine, r, free)
                    if not claimed:
                        idle_until = time.monotonic() + min(w.poll, 0.25)
                if self._busy():
                    rest = BATCH_S - (time.monotonic() - turn)
                    if rest > 0 and not w.stop.is_set():
                        time.sleep(rest)
                    continue
                if r.state.over or w.stop.is_set():
                    return
                if claimed:
                    continue
                if self.until_idle and r.state == RolloutState.PAUSED:
                    return
                if r.state == RolloutState.RUNNING:
                    w.check_waves(self.rollout_id)
                if self.until_idle and w._nothing_left(self.rollout_id):
                    return
                w.stop.wait(w.poll)
                idle_until = 0.0
        finally:
            engine.close()
            self._record(self._drain(0.0))
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _busy(self) -> bool:
        return bool(self.flying or self.serial_pushes)

    # -- claiming and submitting --------------------------------------------------------------

    def _table(self, version: int) -> PreparedTable:
        w = self.w
        if w._tables is None or version not in w._tables:
            with w.engine.connect() as conn:
                w._tables = load_tables(conn)
        prepared = self._prepared.get(version)
        if prepared is None:
            from fleet.fees.tables import published  # noqa: PLC0415

            prepared = PreparedTable(published(w._tables, version).table)
            self._prepared[version] = prepared
        return prepared

    def _claim(self, engine: Engine, r: _Rollout, free: int) -> int:
        w = self.w
        owner = f"{w.name}/b{next(self._batch)}"
        jobs = w.claim_many(self.rollout_id, owner, min(free, 500))
        if not jobs:
            return 0
        prepared = self._table(r.version)
        with w.engine.connect() as conn:
            refs = resolve_many(conn, [j.serial for j in jobs])
        unresolved: list[tuple[Claimed, str]] = []
        for job in jobs:
            w.on_event(Started(job.serial, job.attempts, owner, job.taken_over))
            ref = refs[job.serial]
            if isinstance(ref, FleetError):
                unresolved.append((job, str(ref)))
                continue
            if not ref.url.startswith("socket://"):
                self._serial(r, job, owner)
                continue
            self._submit(engine, prepared, job, owner, ref)
        if unresolved:
            self._finish_unresolved(r, unresolved, owner)
        return len(jobs)

    def _submit(
        self, engine: Engine, prepared: PreparedTable, job: Claimed, owner: str, ref: TerminalRef
    ) -> None:
        w = self.w
        attempt = Attempt(w.engine, job.serial, prepared.version, owner, job.id)
        flight = _Flight(job, owner, ref, PushState(attempt))
        self.flying[job.id] = flight
        tables = w._tables
        assert tables is not None

        def progress(stored: int, count: int) -> None:
            w.on_event(Progressed(job.serial, stored, count, owner))
            if flight.lost:
                raise PushFailedError("lease lost")

        def flow() -> Flow[PushOutcome]:
            return push_flow(
                conversation(ref, w.keys), ref, prepared, tables, keys=w.keys,
                policy=w.fee_policy, into=flight.state, progress=progress,
            )  # fmt: skip

        future = engine.submit(Job(ref.url, flow, job.id))
        future.add_done_callback(lambda f: self.done.put((flight, f.result())))

    def _serial(self, r: _Rollout, job: Claimed, owner: str) -> None:
        """A terminal on a serial port: the blocking session, in the pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(self.links, 8), thread_name_prefix="rollout")
        self.serial_pushes[job.id] = self._pool.submit(
            self.w._push_one, self.rollout_id, r, job, owner
        )

    def _reap_serial(self) -> None:
        for job_id, future in list(self.serial_pushes.items()):
            if future.done():
                del self.serial_pushes[job_id]
                future.result()

    def _finish_unresolved(self, r: _Rollout, jobs: list[tuple[Claimed, str]], owner: str) -> None:
        w = self.w
        with writer(w.engine).begin() as conn:
            w._lock_rollout(conn, self.rollout_id)
            at = w.clock()
            results = [(job, error, w.finish_in(conn, job, owner, error, r.max_attempts, at))
                       for job, error in jobs]  # fmt: skip
            w._advance(conn, self.rollout_id)
        for job, error, result in results:
            w.on_event(Finished(job.serial, result, error, None, owner, job.attempts))

    # -- leases and results ---------------------------------------------------------------------

    def _renew(self) -> None:
        pairs = [(f.job.id, f.owner) for f in self.flying.values()]
        kept = self.w.renew_many(pairs)
        for job_id, flight in self.flying.items():
            if job_id not in kept:
                flight.lost = True

    def _drain(self, wait: float) -> list[tuple[_Flight, Outcome]]:
        items: list[tuple[_Flight, Outcome]] = []
        try:
            items.append(self.done.get(timeout=wait) if wait else self.done.get_nowait())
        except queue.Empty:
            return items
        while True:
            try:
                items.append(self.done.get_nowait())
            except queue.Empty:
                return items

    def _record(self, items: list[tuple[_Flight, Outcome]]) -> None:
        if not items:
            return
        w = self.w
        r = w._rollout(self.rollout_id)
        pushes: list[tuple[_Flight, Pushed]] = []
        for flight, outcome in items:
            self.flying.pop(flight.job.id, None)
            pushed = result_of(outcome, flight.state, flight.ref)
            if flight.lost and pushed.outcome is None:
                pushed.error = "lease lost"
            pushes.append((flight, pushed))
        results: dict[int, str] = {}
        at = w.clock()
        with writer(w.engine).begin() as conn:
            w._lock_rollout(conn, self.rollout_id)
            ok = [(f.job.id, f.owner) for f, p in pushes if p.outcome is not None and not f.lost]
            done = w.finish_done(conn, ok, at) if ok else set()
            for flight, pushed in pushes:
                job = flight.job
                if pushed.outcome is not None and not flight.lost:
                    results[job.id] = "done" if job.id in done else "lost"
                elif flight.lost:
                    results[job.id] = "lost"
                else:
                    attempts = r.max_attempts
                    if pushed.reason == UnissuedKeyError.reason:
                        attempts = job.attempts  # to be replaced, not retried: failed at once
                    results[job.id] = w.finish_in(
                        conn, job, flight.owner, pushed.error or "failed", attempts, at
                    )
            record_pushes(conn, [p for _, p in pushes], actor=w.actor, at=at)
            w._advance(conn, self.rollout_id)
        for flight, pushed in pushes:
            job = flight.job
            result = results[job.id]
            if result == "lost":
                w.on_event(JobLost(job.serial, flight.owner))
                continue
            w.on_event(
                Finished(job.serial, result, pushed.error, pushed.whole, flight.owner, job.attempts)
            )
