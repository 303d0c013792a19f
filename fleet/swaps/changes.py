"""Changing a planned swap: cancel it, or move it to another day; and provisioning again a
swap whose provisioning failed.

* :func:`cancel`: a planned swap becomes ``cancelled``; its merchant's notices not sent yet
  are cancelled with it (nothing tells them of a visit that will not happen), audited
  with the reason.
* :func:`reschedule`: a planned swap moves to another day, under the same rule as a plan
  (the merchant is told ``[swaps] advance_days`` ahead, on their calendar): the unsent
  notice of the old date is cancelled and a new one queued for the new date; audited.
* :func:`reprovision`: a done swap whose provisioning failed (or never ran) is provisioned
  again over one device session (:func:`fleet.swaps.provision.provision`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import NOTICES, SWAPS, TERMINALS, now
from fleet.core.policy import Policy
from fleet.device.keyring import KeyRing
from fleet.fees.targets import target_of
from fleet.notices import SwapNotice, queue
from fleet.swaps.provision import provision
from fleet.swaps.visit import SwapError, SwapResult, _local_today, _merchant

__all__ = ["cancel", "reprovision", "reschedule"]


def _planned(conn: Connection, swap_id: int) -> Any:
    row = conn.execute(select(SWAPS).where(SWAPS.c.id == swap_id)).first()
    if row is None:
        raise NotFoundError(f"no swap {swap_id}")
    if row.status != "planned":
        raise SwapError(f"swap {swap_id} is {row.status}, not planned: it can't be changed")
    return row


def _cancel_unsent(conn: Connection, swap_id: int, note: str) -> int:
    """The swap's notices not sent yet (queued), cancelled; returns how many."""
    return int(
        conn.execute(
            update(NOTICES)
            .where(
                NOTICES.c.ref.like(f"swap:{swap_id}%"),
                NOTICES.c.kind == "swap_planned",
                NOTICES.c.status == "queued",
            )
            .values(status="cancelled", note=note)
        ).rowcount
    )


def cancel(
    engine: Engine, swap_id: int, *, reason: str, actor: str, at: datetime | None = None
) -> int:
    """Cancel planned swap ``swap_id``; returns how many unsent notices were cancelled."""
    if not reason.strip():
        raise InputError("cancelling a swap needs a reason (it is audited)")
    at = at or now()
    with writer(engine).begin() as conn:
        row = _planned(conn, swap_id)
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(status="cancelled"))
        withdrawn = _cancel_unsent(conn, swap_id, "the swap was cancelled")
        audit.record(
            conn,
            actor=actor,
            action="swap_cancel",
            target=f"terminal:{row.old_serial}",
            details={"swap": swap_id, "planned_for": row.planned_for.isoformat(),
                     "notices_cancelled": withdrawn},
            reason=reason.strip(),
            at=at,
        )  # fmt: skip
    return withdrawn


def reschedule(
    engine: Engine,
    swap_id: int,
    on: date,
    *,
    actor: str,
    policy: Policy,
    reason: str = "",
    at: datetime | None = None,
) -> SwapResult:
    """Move planned swap ``swap_id`` to ``on`` and tell the merchant (see the module)."""
    at = at or now()
    with writer(engine).begin() as conn:
        row = _planned(conn, swap_id)
        merchant = _merchant(conn, row.merchant_id, row.old_serial)
        if on == row.planned_for:
            raise InputError(f"swap {swap_id} is already planned for {on.isoformat()}")
        earliest = _local_today(merchant, at) + timedelta(days=policy.swaps.advance_days)
        if on < earliest:
            raise SwapError(
                f"swap {swap_id}: {on.isoformat()} is too soon: the merchant is told at least "
                f"{policy.swaps.advance_days} days ahead (earliest {earliest.isoformat()})"
            )
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(planned_for=on))
        _cancel_unsent(conn, swap_id, f"the swap moved to {on.isoformat()}")
        model = conn.execute(
            select(TERMINALS.c.model).where(TERMINALS.c.serial == row.old_serial)
        ).scalar()
        notice = SwapNotice(
            "swap_planned", swap_id, row.old_serial, row.new_serial, model, row.tid, on,
            row.reason, row.engineer or "",
        )  # fmt: skip
        queue(conn, notice, merchant_id=merchant.id, ref=f"swap:{swap_id}@{on.isoformat()}",
              at=at)  # fmt: skip
        audit.record(
            conn,
            actor=actor,
            action="swap_reschedule",
            target=f"terminal:{row.old_serial}",
            details={"swap": swap_id, "from": row.planned_for.isoformat(), "to": on.isoformat()},
            reason=reason.strip(),
            at=at,
        )
    return SwapResult(
        swap_id, row.old_serial, row.new_serial, merchant.id, row.tid, "planned", ["swap_planned"]
    )


def reprovision(
    engine: Engine,
    swap_id: int,
    port: str | None = None,
    *,
    keys: KeyRing,
    policy: Policy,
    actor: str,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Provision again the new terminal of done swap ``swap_id`` whose provisioning failed
    (or never ran), on ``port`` (default: the new terminal's recorded link). Returns the
    outcome, kept on the swap as the first time."""
    with engine.connect() as conn:
        row = conn.execute(select(SWAPS).where(SWAPS.c.id == swap_id)).first()
        if row is None:
            raise NotFoundError(f"no swap {swap_id}")
        if row.status != "done" or not row.new_serial:
            raise SwapError(f"swap {swap_id} is {row.status}: only a done swap is provisioned")
        if (row.provision or "").startswith("ok"):
            raise SwapError(f"swap {swap_id} is provisioned already ({row.provision})")
        link = (
            port
            or conn.execute(
                select(TERMINALS.c.link).where(TERMINALS.c.serial == row.new_serial)
            ).scalar()
        )
        if not link:
            raise InputError(f"swap {swap_id}: {row.new_serial} has no link: give its port")
        result = SwapResult(
            swap_id, row.old_serial, row.new_serial, row.merchant_id, row.tid, row.status,
            table=target_of(conn, row.merchant_id),
        )  # fmt: skip
    return provision(engine, result, link, keys=keys, policy=policy, actor=actor,
                     progress=progress)  # fmt: skip
