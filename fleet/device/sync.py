"""``posfleet sync``: sign on to a terminal (0800/001) and record what it reports.

The terminal is found by serial (its recorded link, or a given one) or by the link URL
alone (:func:`fleet.device.session.resolve`). What it reports must agree with the
inventory on identity (serial, MID; the session checks) and name a model and firmware
the catalog knows; then model, firmware, active and pending table versions and
``last_seen`` are written, and the health it reports as a sample of its history
(:mod:`fleet.device.health`), with an audit entry of what changed. So are the key versions it
reports (tag 0x20: current, next); a version the fleet never issued
(:mod:`fleet.device.issued`) is recorded and then fails the sync with a
:class:`~fleet.device.keyring.UnissuedKeyError`'s message (``reason`` ``unissued_key``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import FleetError, NotFoundError
from fleet.core.models import FIRMWARE, TERMINALS, now
from fleet.device.health import HealthReport, record_health
from fleet.device.issued import attach
from fleet.device.keyring import KeyRing
from fleet.device.session import DeviceError, DeviceSession, TerminalRef, resolve
from fleet.inventory import get_terminal, terminal_cells
from protocols.errors import LinkError, ProtocolError
from protocols.session import SignOn

__all__ = ["SyncError", "SyncResult", "reaching", "record_sign_on", "sync", "sync_many"]


class SyncError(DeviceError):
    """The terminal can't be reached, or its answer can't be recorded (names what
    disagrees)."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    serial: str
    url: str
    sign_on: SignOn
    changes: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        info = self.sign_on.info
        return {
            "serial": self.serial,
            "url": self.url,
            "model": info.model,
            "firmware": info.firmware,
            "active_version": info.active_version,
            "pending_version": info.pending_version,
            "key_version": self.sign_on.key_versions.current,
            "key_next": self.sign_on.key_versions.next,
            "mid": self.sign_on.mid,
            "changes": self.changes,
        }


def record_sign_on(engine: Engine, dev: DeviceSession, *, actor: str) -> SyncResult:
    """Record the sign-on of an open session (its identity already checked): the model and
    firmware must be in the catalog. Returns what changed."""
    signed, serial, url = dev.signed, dev.ref.serial, dev.ref.url
    info = signed.info
    with writer(engine).begin() as conn:
        row = get_terminal(conn, serial)
        if row is None:
            raise NotFoundError(f"unknown terminal {serial}")
        known = conn.execute(
            select(FIRMWARE.c.version).where(
                FIRMWARE.c.model == info.model, FIRMWARE.c.version == info.firmware
            )
        ).first()
        if known is None:
            raise SyncError(
                f"{serial} reports model {info.model} firmware {info.firmware}, "
                "not in the catalog: import it first"
            )
        seen = now()
        values = {
            "model": info.model,
            "firmware": info.firmware,
            "active_version": info.active_version,
            "pending_version": info.pending_version,
            "link": url,
            "last_seen": seen,
        }
        before = terminal_cells(row)
        after = terminal_cells(row | values)
        changes = {
            k: [before[k], after[k]] for k in after if before[k] != after[k] and k != "last_seen"
        }
        for name, value in dev.key_columns().items():
            if row[name] != value:
                changes[name] = ["" if row[name] is None else str(row[name]), str(value)]
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == serial)
            .values(**values, **dev.key_columns())
        )
        if signed.health is not None:  # a v1 terminal reports none
            record_health(conn, [HealthReport(serial, signed.health, seen, "sync")])
        audit.record(
            conn,
            actor=actor,
            action="sync",
            target=f"terminal:{serial}",
            details={"url": url, "changes": changes, "mid": signed.mid},
        )
    if dev.keys is not None:
        try:
            dev.keys.check_issued(serial, dev.held)
        except DeviceError as exc:
            raise SyncError(str(exc), reason=exc.reason) from exc
    return SyncResult(serial, url, signed, changes)


@contextmanager
def reaching(ref: TerminalRef) -> Iterator[None]:
    """Link, protocol and identity failures as a :class:`SyncError` naming the terminal."""
    try:
        yield
    except SyncError:
        raise
    except DeviceError as exc:
        raise SyncError(str(exc), retryable=exc.retryable, reason=exc.reason) from exc
    except ProtocolError as exc:
        retry = isinstance(exc, LinkError)
        raise SyncError(f"{ref.serial} at {ref.url}: {exc}", retryable=retry) from exc
    except OSError as exc:
        raise SyncError(
            f"{ref.serial} at {ref.url}: {exc.strerror or exc}", retryable=True
        ) from exc


def sync(
    engine: Engine,
    *,
    actor: str,
    serial: str | None = None,
    port: str | None = None,
    baud: int = 115200,
    t2: float = 5.0,
    keys: KeyRing | None = None,
) -> SyncResult:
    """Sign on to one terminal and record it. Raises :class:`SyncError`, also for a
    terminal the inventory lacks or can't reach (a sync of many goes on past it), and for
    one that reports a key version the fleet never issued (after recording it). ``keys``:
    key files given (their versions count as issued too)."""
    try:
        with engine.connect() as conn:
            ref = resolve(conn, serial, port)
            ring = attach(conn, keys or KeyRing())
    except FleetError as exc:  # a sync of many goes on past one it can't find
        raise SyncError(exc.message, where=exc.where) from exc
    with reaching(ref), DeviceSession(ref, keys=ring, baud=baud, t2=t2) as dev:
        return record_sign_on(engine, dev, actor=actor)


SYNC_WORKERS = 16
"""Terminals signed on to at once by :func:`sync_many` (each its own link): an unreachable
terminal costs its T1 resends (about 3 s), which run side by side instead of in turn."""


def sync_many(
    engine: Engine,
    serials: Sequence[str],
    *,
    actor: str,
    workers: int = SYNC_WORKERS,
    baud: int = 115200,
    t2: float = 5.0,
    keys: KeyRing | None = None,
    done: Callable[[str, SyncResult | SyncError], None] | None = None,
) -> list[SyncResult | SyncError]:
    """:func:`sync` each of ``serials``, ``workers`` at a time; the outcome of each (its
    result or its :class:`SyncError`), in the order of ``serials``. ``done(serial,
    outcome)`` is called as each ends (from the calling thread), for a progress bar. Each
    records in its own transaction (SQLite takes the writes in turn)."""

    def one(serial: str) -> SyncResult | SyncError:
        try:
            return sync(engine, actor=actor, serial=serial, baud=baud, t2=t2, keys=keys)
        except SyncError as exc:
            return exc

    outcomes: dict[str, SyncResult | SyncError] = {}
    with ThreadPoolExecutor(max(1, min(workers, len(serials) or 1))) as pool:
        futures = {pool.submit(one, serial): serial for serial in serials}
        for future in as_completed(futures):
            serial = futures[future]
            outcomes[serial] = future.result()
            if done is not None:
                done(serial, outcomes[serial])
    return [outcomes[serial] for serial in serials]
