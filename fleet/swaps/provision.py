"""Provisioning a swapped-in terminal over **one** device session: one link, one
sign-on, the identity checked once; the sign-on is recorded (sync), the merchant's
target table pushed and verified with a test sale, and the outcome kept on the swap."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, update

from fleet.core.db import writer
from fleet.core.errors import FleetError, InputError
from fleet.core.models import SWAPS
from fleet.core.policy import Policy
from fleet.device.push import push_on
from fleet.device.session import DeviceSession, resolve
from fleet.device.sync import reaching, record_sign_on
from fleet.fees.tables import load_tables
from fleet.swaps.visit import SwapResult

__all__ = ["provision"]


def provision(
    engine: Engine,
    result: SwapResult,
    port: str,
    *,
    master_key: bytes,
    policy: Policy,
    actor: str,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Provision the new terminal of ``result`` on ``port`` (see the module's notes).
    Raises :class:`~fleet.device.SyncError` (link, identity, catalog) or
    :class:`~fleet.device.PushFailedError`; either way the outcome is kept on the swap."""
    if result.new is None:
        raise InputError(f"swap {result.id} has no new terminal to provision")
    try:
        with engine.connect() as conn:
            ref = resolve(conn, result.new, port)
            tables = load_tables(conn)
        with reaching(ref), DeviceSession(ref, master_key=master_key) as dev:
            record_sign_on(engine, dev, actor=actor)
            if result.table is None:
                outcome = "ok: synced; no fee table covers the merchant"
            else:
                pushed = push_on(
                    engine, dev, result.table, tables, policy=policy.fees, actor=actor,
                    progress=progress,
                )  # fmt: skip
                outcome = f"ok: synced; table {pushed.version} {pushed.describe()}"
    except FleetError as exc:
        _set_provision(engine, result.id, f"failed: {exc}"[:500])
        raise
    _set_provision(engine, result.id, outcome)
    result.provision = outcome
    return outcome


def _set_provision(engine: Engine, swap_id: int, text: str) -> None:
    with writer(engine).begin() as conn:
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(provision=text))
