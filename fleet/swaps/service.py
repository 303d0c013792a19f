"""Terminal swaps: plan, swap in one transaction, provision, follow up; day sheets.

* :func:`plan` — a dated swap of a terminal (typically one the replacements list flags):
  a ``planned`` swap record and a ``swap_planned`` notice, at least the policy's
  ``advance_notice`` ahead.
* :func:`swap` — **one transaction**: the old terminal becomes ``swapped_out`` (kept,
  with its history), the new one (``in_stock``) takes its TID, MID and merchant — and so
  its fee assignment, which follows the merchant — the swap record is written (a plan of
  the old terminal is completed), a ``swap_done`` notice and a follow-up (回访), as a
  call task or a notice some days later, are queued, and the audit log gets the change.
  Any failure rolls all of it back.
* :func:`provision` — with a link to the new terminal: sync it, push the merchant's
  current table and verify it with a test sale (:mod:`fleet.device.push`).
* :func:`day_sheet` — a field engineer's CSV of swaps: every row is checked first, a bad
  row rejects the file (``file:line: column: reason``), and the swaps are one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import MERCHANTS, SWAPS, TERMINALS, now
from fleet.core.policy import Policy
from fleet.core.records import Column, RejectedFileError, RowError, Schema, read_rows, shape_error
from fleet.core.values import parse_link, parse_token
from fleet.fees.publishing import load_tables, targets
from fleet.inventory.service import NotFoundError, get_terminal
from fleet.notices.outbox import queue

__all__ = [
    "DAY_SHEET",
    "SwapError",
    "SwapResult",
    "day_sheet",
    "plan",
    "provision",
    "swap",
]

LIVE = ("deployed", "faulty")


class SwapError(Exception):
    """A swap or plan that can't be made; the message says which terminal and why."""


@dataclass
class SwapResult:
    id: int
    old: str
    new: str | None
    merchant_id: str
    tid: str
    status: str
    notices: list[str] = field(default_factory=list)
    table: int | None = None
    """The fee table the merchant's terminals should have (what provisioning pushes)."""
    provision: str | None = None
    follow_up_on: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "swap": self.id,
            "old": self.old,
            "new": self.new,
            "merchant_id": self.merchant_id,
            "tid": self.tid,
            "status": self.status,
            "notices": self.notices,
            "table": self.table,
            "follow_up_on": self.follow_up_on.isoformat() if self.follow_up_on else None,
            "provision": self.provision,
        }


def _merchant(conn: Connection, merchant_id: str | None, serial: str) -> Any:
    if not merchant_id:
        raise SwapError(f"{serial} has no merchant: nothing to swap it for")
    merchant = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)).first()
    if merchant is None:
        raise NotFoundError(f"merchant {merchant_id} of {serial} is not in the inventory")
    if not merchant.phone and not merchant.email:
        raise SwapError(
            f"merchant {merchant_id} ({merchant.name}) has no phone or email: the swap must "
            "reach them; add contact data first (posfleet merchants import)"
        )
    return merchant


def _live_old(conn: Connection, serial: str) -> dict[str, Any]:
    old = get_terminal(conn, serial)
    if old is None:
        raise NotFoundError(f"unknown terminal {serial}")
    if old["status"] not in LIVE:
        raise SwapError(f"{serial} is {old['status']}, not deployed or faulty: nothing to swap")
    if not old["tid"] or not old["mid"]:
        raise SwapError(f"{serial} has no TID/MID to hand over")
    return old


def _local_today(merchant: Any, at: datetime) -> date:
    return at.astimezone(ZoneInfo(merchant.timezone)).date()


def plan(
    engine: Engine,
    old_serial: str,
    on: date,
    *,
    reason: str,
    actor: str,
    policy: Policy,
    engineer: str = "",
    new_serial: str | None = None,
    at: datetime | None = None,
) -> SwapResult:
    """Plan the swap of ``old_serial`` on ``on`` and queue the merchant's advance notice."""
    at = at or now()
    if not reason.strip():
        raise SwapError("give a --reason: the merchant's notice states it")
    with writer(engine).begin() as conn:
        old = _live_old(conn, old_serial)
        merchant = _merchant(conn, old["merchant_id"], old_serial)
        earliest = _local_today(merchant, at) + timedelta(days=policy.swaps.advance_days)
        if on < earliest:
            raise SwapError(
                f"{old_serial}: {on.isoformat()} is too soon: the merchant is told at least "
                f"{policy.swaps.advance_days} days ahead (earliest {earliest.isoformat()})"
            )
        if new_serial is not None:
            _spare(conn, new_serial)
        open_plan = conn.execute(
            select(SWAPS.c.id, SWAPS.c.planned_for).where(
                SWAPS.c.old_serial == old_serial, SWAPS.c.status == "planned"
            )
        ).first()
        if open_plan is not None:
            raise SwapError(
                f"{old_serial} already has swap {open_plan.id} planned for "
                f"{open_plan.planned_for.isoformat()}"
            )
        model = old["model"]
        swap_id = conn.execute(
            insert(SWAPS)
            .values(
                old_serial=old_serial,
                new_serial=new_serial,
                merchant_id=merchant.id,
                tid=old["tid"],
                mid=old["mid"],
                status="planned",
                planned_for=on,
                reason=reason.strip(),
                engineer=engineer,
                created_at=at,
                created_by=actor,
            )
            .returning(SWAPS.c.id)
        ).scalar_one()
        payload = {
            "swap": swap_id,
            "old": old_serial,
            "new": new_serial,
            "model": model,
            "tid": old["tid"],
            "date": on.isoformat(),
            "reason": reason.strip(),
            "engineer": engineer,
        }
        queue(
            conn, kind="swap_planned", merchant_id=merchant.id, ref=f"swap:{swap_id}",
            payload=payload, at=at,
        )  # fmt: skip
        audit.record(
            conn,
            actor=actor,
            action="swap_plan",
            target=f"terminal:{old_serial}",
            details={"swap": swap_id, "on": on.isoformat(), "new": new_serial},
            reason=reason,
            at=at,
        )
    return SwapResult(
        swap_id, old_serial, new_serial, merchant.id, old["tid"], "planned", ["swap_planned"]
    )


def _spare(conn: Connection, serial: str) -> dict[str, Any]:
    new = get_terminal(conn, serial)
    if new is None:
        raise NotFoundError(f"unknown terminal {serial}")
    if new["status"] != "in_stock":
        where = f" at merchant {new['merchant_id']}" if new["merchant_id"] else ""
        raise SwapError(
            f"{serial} is {new['status']}{where}, not in stock: a replacement must come from stock"
        )
    return new


def swap(
    engine: Engine,
    old_serial: str,
    new_serial: str,
    *,
    reason: str,
    actor: str,
    policy: Policy,
    engineer: str = "",
    at: datetime | None = None,
) -> SwapResult:
    """Swap ``old_serial`` for ``new_serial`` in one transaction (see the module notes)."""
    with writer(engine).begin() as conn:
        return _swap(
            conn, old_serial, new_serial, reason=reason, actor=actor, policy=policy,
            engineer=engineer, at=at or now(),
        )  # fmt: skip


def _swap(
    conn: Connection,
    old_serial: str,
    new_serial: str,
    *,
    reason: str,
    actor: str,
    policy: Policy,
    engineer: str,
    at: datetime,
) -> SwapResult:
    if not reason.strip():
        raise SwapError("give a --reason: the merchant's notice states it")
    if old_serial == new_serial:
        raise SwapError(f"{old_serial}: a terminal can't replace itself")
    old = _live_old(conn, old_serial)
    new = _spare(conn, new_serial)
    merchant = _merchant(conn, old["merchant_id"], old_serial)
    target = targets(conn, load_tables(conn)).get(merchant.id)
    today = _local_today(merchant, at)
    conn.execute(
        update(TERMINALS).where(TERMINALS.c.serial == old_serial).values(status="swapped_out")
    )
    conn.execute(
        update(TERMINALS)
        .where(TERMINALS.c.serial == new_serial)
        .values(
            tid=old["tid"],
            mid=old["mid"],
            merchant_id=merchant.id,
            status="deployed",
            deployed_on=today,
        )
    )
    follow_up_on = today + timedelta(days=policy.swaps.follow_up_days)
    planned = conn.execute(
        select(SWAPS.c.id).where(SWAPS.c.old_serial == old_serial, SWAPS.c.status == "planned")
    ).first()
    values = {
        "new_serial": new_serial,
        "status": "done",
        "done_at": at,
        "follow_up_on": follow_up_on,
        "reason": reason.strip(),
        "engineer": engineer,
    }
    if planned is not None:
        swap_id = planned.id
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(**values))
    else:
        swap_id = conn.execute(
            insert(SWAPS)
            .values(
                old_serial=old_serial, merchant_id=merchant.id, tid=old["tid"], mid=old["mid"],
                created_at=at, created_by=actor, **values,
            )
            .returning(SWAPS.c.id)
        ).scalar_one()  # fmt: skip
    payload = {
        "swap": swap_id,
        "old": old_serial,
        "new": new_serial,
        "model": new["model"],
        "tid": old["tid"],
        "date": today.isoformat(),
        "reason": reason.strip(),
        "engineer": engineer,
        "version": target,
    }
    ref = f"swap:{swap_id}"
    queue(conn, kind="swap_done", merchant_id=merchant.id, ref=ref, payload=payload, at=at)
    zone = ZoneInfo(merchant.timezone)
    follow_at = datetime.combine(follow_up_on, datetime.min.time(), zone).replace(hour=10)
    queue(
        conn,
        kind="follow_up",
        merchant_id=merchant.id,
        ref=ref,
        payload=payload,
        at=at,
        not_before=follow_at,
        channel="call" if policy.swaps.follow_up == "call" else None,
    )
    audit.record(
        conn,
        actor=actor,
        action="swap",
        target=f"terminal:{old_serial}",
        details={
            "swap": swap_id,
            "new": new_serial,
            "merchant": merchant.id,
            "tid": old["tid"],
            "mid": old["mid"],
            "table": target,
            "engineer": engineer,
            "follow_up_on": follow_up_on.isoformat(),
        },
        reason=reason,
        at=at,
    )
    return SwapResult(
        swap_id, old_serial, new_serial, merchant.id, old["tid"], "done",
        ["swap_done", "follow_up"], target, None, follow_up_on,
    )  # fmt: skip


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
    """Sync the new terminal on ``port``, push its merchant's table and verify it with a
    test sale; the outcome is kept on the swap. Raises SyncError / PushFailedError."""
    from fleet.device.push import PushFailedError, load_target, push_terminal  # noqa: PLC0415
    from fleet.device.sync import SyncError, sync  # noqa: PLC0415

    assert result.new is not None
    try:
        sync(engine, actor=actor, serial=result.new, port=port)
        if result.table is None:
            outcome = "ok: synced; no fee table covers the merchant"
        else:
            target = load_target(engine, result.new, result.table, port)
            pushed = push_terminal(
                engine, target, master_key=master_key, policy=policy.fees, actor=actor,
                progress=progress,
            )  # fmt: skip
            outcome = f"ok: synced; table {pushed.version} {pushed.describe()}"
    except (SyncError, PushFailedError, NotFoundError) as exc:
        _set_provision(engine, result.id, f"failed: {exc}"[:500])
        raise
    _set_provision(engine, result.id, outcome)
    result.provision = outcome
    return outcome


def _set_provision(engine: Engine, swap_id: int, text: str) -> None:
    with writer(engine).begin() as conn:
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(provision=text))


# -- day sheets ---------------------------------------------------------------------------

DAY_SHEET = Schema(
    "swaps",
    (
        Column("old_serial", lambda t: parse_token(t, max_len=40, what="serial")),
        Column("new_serial", lambda t: parse_token(t, max_len=40, what="serial")),
        Column("reason", lambda t: t.strip()),
        Column("engineer", lambda t: t.strip()[:80], required=False, default=""),
        Column("port", parse_link, required=False),
    ),
)


def day_sheet(
    engine: Engine, path: Path, *, actor: str, policy: Policy, engineer: str = ""
) -> list[tuple[SwapResult, str | None]]:
    """Every swap of a day sheet, in one transaction; returns each with its port (to
    provision after). Raises :class:`RejectedFileError` listing every bad row."""
    _fmt, header, rows = read_rows(path, "swaps")
    errors: list[RowError] = list(DAY_SHEET.check_header(str(path), header))
    if errors:
        raise RejectedFileError(errors)
    parsed: list[tuple[Any, dict[str, Any]]] = []
    for row in _rows(rows, errors):
        values = DAY_SHEET.parse(row, errors)
        if values is not None:
            parsed.append((row, values))
    seen: dict[str, Any] = {}
    for row, v in parsed:
        for col in ("old_serial", "new_serial"):
            if v[col] in seen:
                errors.append(
                    RowError(row.path, row.line, col, f"{v[col]} is already on line {seen[v[col]]}")
                )
            seen[v[col]] = row.line
    at = now()
    done: list[tuple[SwapResult, str | None]] = []
    with writer(engine).begin() as conn:
        for row, v in parsed:
            try:
                result = _swap(
                    conn, v["old_serial"], v["new_serial"], reason=v["reason"], actor=actor,
                    policy=policy, engineer=v.get("engineer") or engineer, at=at,
                )  # fmt: skip
            except (SwapError, NotFoundError) as exc:
                errors.append(RowError(row.path, row.line, "", str(exc)))
                continue
            done.append((result, v.get("port")))
        if errors:  # raising rolls back every swap of the sheet
            raise RejectedFileError(errors, len(parsed))
    return done


def _rows(rows: Iterator[Any], errors: list[RowError]) -> Iterator[Any]:
    for row in rows:
        shaped = shape_error(row)
        if shaped is not None:
            errors.append(shaped)
            continue
        yield row
