"""Pushing a table to one terminal or a group, with new links after a broken one: what
``posfleet push`` and the console's push button call.

A broken link (``retryable``) gets a new attempt, up to ``retries`` more, resuming the
download where the terminal stopped; a refusal or a disagreement is final at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from fleet.core import audit
from fleet.core.clock import now
from fleet.core.db import writer
from fleet.core.errors import InputError
from fleet.core.policy import FeePolicy, MaintenancePolicy
from fleet.device.issued import attach
from fleet.device.keyring import KeyRing
from fleet.device.push import PushFailedError, PushOutcome, push_terminal
from fleet.device.session import resolve
from fleet.device.windows import has_windows, outside
from fleet.fees.group import Group
from fleet.fees.tables import load_tables, published
from fleet.fees.targets import push_targets

__all__ = ["PushReport", "group_terminals", "push_many"]


@dataclass(frozen=True, slots=True)
class PushReport:
    """One terminal's push: its outcome, or the error of its last attempt."""

    serial: str
    version: int
    outcome: PushOutcome | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.outcome is not None:
            return self.outcome.as_dict()
        return {
            "serial": self.serial,
            "version": self.version,
            "outcome": "error",
            "error": self.error,
        }


def group_terminals(engine: Engine, version: int, group: Group) -> list[str]:
    """The terminals a push of ``version`` to ``group`` covers
    (:func:`fleet.fees.targets.push_targets`)."""
    with engine.connect() as conn:
        return push_targets(conn, version, group)


def push_many(
    engine: Engine,
    serials: Sequence[str],
    version: int,
    *,
    keys: KeyRing,
    policy: FeePolicy,
    actor: str,
    port: str | None = None,
    baud: int = 115200,
    t2: float = 5.0,
    retries: int = 3,
    progress: Callable[[str, int, int], None] | None = None,
    failed_attempt: Callable[[str, int, str], None] | None = None,
    finished: Callable[[PushReport], None] | None = None,
    maintenance: MaintenancePolicy | None = None,
    now_reason: str | None = None,
    clock: Callable[[], datetime] = now,
) -> list[PushReport]:
    """Push ``version`` to each of ``serials`` in turn (``port``: the link of a single
    terminal instead of its recorded one), signing with the key of the version each
    terminal reports (``keys``). ``progress(serial, stored, count)``,
    ``failed_attempt(serial, attempt, error)`` and ``finished(report)`` report as it goes.

    ``maintenance``: a terminal whose window is closed (at ``clock()``) is not pushed (its
    report says when the window opens) unless ``now_reason`` is given: then it is pushed
    at once, and the override is audited (``override``, with the reason and window)."""
    if now_reason is not None and not now_reason.strip():
        raise InputError("--now needs a --reason (it is audited)")
    with engine.connect() as conn:
        tables = load_tables(conn)
        keys = attach(conn, keys)
        closed = {}
        if maintenance is not None and has_windows(maintenance):
            at = clock()
            closed = {
                w.serial: (w, w.next_open(at)) for w in outside(conn, serials, maintenance, at)
            }
    published(tables, version)
    reports = []
    for serial in serials:
        if serial in closed:
            window, opens = closed[serial]
            if now_reason is None:
                report = PushReport(
                    serial, version, None,
                    f"{serial} is outside its maintenance window ({window.describe()}); it "
                    f"opens {opens.isoformat(timespec='minutes')}: wait, or push --now --reason",
                )  # fmt: skip
                reports.append(report)
                if finished is not None:
                    finished(report)
                continue
            with writer(engine).begin() as conn:
                audit.record(
                    conn, actor=actor, action="override", target=f"terminal:{serial}",
                    details={"push": version, "window": window.describe(),
                             "opens": opens.isoformat()},
                    reason=now_reason.strip(),
                )  # fmt: skip

        def show(stored: int, count: int, serial: str = serial) -> None:
            if progress is not None:
                progress(serial, stored, count)

        report = PushReport(serial, version, None, "not attempted")
        for attempt in range(1, retries + 2):
            with engine.connect() as conn:
                ref = resolve(conn, serial, port)
            try:
                outcome = push_terminal(
                    engine, ref, version, tables, keys=keys, policy=policy,
                    actor=actor, baud=baud, t2=t2, progress=show, worker="cli",
                )  # fmt: skip
            except PushFailedError as exc:
                report = PushReport(serial, version, None, str(exc))
                if failed_attempt is not None:
                    failed_attempt(serial, attempt, str(exc))
                if not exc.retryable:
                    break
                continue
            report = PushReport(serial, version, outcome)
            break
        reports.append(report)
        if finished is not None:
            finished(report)
    return reports
