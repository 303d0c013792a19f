"""A swap visit: plan it, then swap the terminal in one transaction.

* :func:`plan` — a dated swap of a terminal (typically one the replacements list flags):
  a ``planned`` swap record and a ``swap_planned`` notice, at least the policy's
  ``advance_notice`` ahead.
* :func:`swap` — **one transaction**: the old terminal becomes ``swapped_out`` (kept,
  with its history), the new one (``in_stock``) takes its TID, MID and merchant — and so
  its fee assignment, which follows the merchant — the swap record is written (a plan of
  the old terminal is completed), a ``swap_done`` notice and a follow-up (回访), as a
  call task or a notice some days later, are queued, and the audit log gets the change.
  Any failure rolls all of it back.

**Reasons**: a swap carries a reason code of the catalogue (:mod:`fleet.notices.reasons`),
given or — when not given — derived from what the replacements list flags the old terminal
for (:func:`default_code`); the merchant's notices word the code in the merchant's
language. The operator's free text (``reason``) is kept in the swap record and the audit
log only: it never goes into an SMS or an email.

Over 400 lines because planning and swapping share the checks of the old and the new
terminal and the reason code's derivation, and a swap is one transaction: split, its rules
would be read in two places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, select, update

from fleet.core import audit
from fleet.core.clock import today_in
from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError, NotFoundError
from fleet.core.events import emit
from fleet.core.models import MERCHANTS, SWAPS, TERMINALS, now
from fleet.core.policy import Policy
from fleet.fees.tables import Published, load_tables
from fleet.fees.targets import LIVE, target_of
from fleet.inventory import get_terminal
from fleet.notices import SwapNotice, queue
from fleet.notices.reasons import SWAP_CODES, default_swap_code
from fleet.notices.reasons import reason_code as checked_code
from fleet.replacements.query import flag_statement

__all__ = ["SWAP_STATES", "SwapError", "SwapResult", "list_swaps", "plan", "swap", "swap_in"]


class SwapError(ConflictError):
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
            "reach them; add their contact data first"
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


def _fits_the_merchant(policy: Policy, merchant: Any, notice: SwapNotice) -> None:
    """Refuse a swap whose notice the merchant could not receive: an SMS over the policy's
    segment limit (a long reason) for a merchant with no email to take it instead
    (:func:`fleet.notices.compose.sms_overflow`; with an email, it goes by email)."""
    from fleet.notices.compose import sms_overflow  # noqa: PLC0415 - Jinja2 when swapping

    segments = sms_overflow(policy.notices, merchant, notice)
    if segments is not None:
        raise InputError(
            f"the reason is too long for merchant {merchant.id}'s SMS ({segments} segments, "
            f"the policy allows {policy.notices.sms_max_segments}) and the merchant has no "
            "email to send it by: shorten the reason",
            where=f"swap of {notice.old}",
        )


def default_code(conn: Connection, policy: Policy, old: Mapping[str, Any], at: datetime) -> str:
    """The reason code of a swap of ``old`` nobody gave one: its most pressing replacement
    rule within the policy's horizon (:func:`fleet.notices.reasons.default_swap_code`)."""
    horizon_end = at.date() + timedelta(days=policy.replacement.horizon_days)
    row = conn.execute(
        flag_statement(policy.replacement, horizon_end, catalog_rules=True).where(
            TERMINALS.c.serial == old["serial"]
        )
    ).first()
    rules = []
    if row is not None:
        m = row._mapping
        rules = [k[2:].replace("_", "-") for k in m if k.startswith("r_") and m[k]]
    return default_swap_code(rules, status=str(old["status"]))


def _given(code: str | None) -> str | None:
    """A reason code given for a swap, checked (None: none given)."""
    if code is None or not code.strip():
        return None
    return checked_code(code, allowed=SWAP_CODES)


def _code(
    conn: Connection, policy: Policy, old: Mapping[str, Any], code: str | None, at: datetime
) -> str:
    return default_code(conn, policy, old, at) if code is None else code


def _local_today(merchant: Any, at: datetime) -> date:
    """Today on the merchant's calendar: a terminal's ``deployed_on`` is the merchant's date
    (:mod:`fleet.core.clock`)."""
    return today_in(merchant.timezone, at)


def plan(
    engine: Engine,
    old_serial: str,
    on: date,
    *,
    reason: str = "",
    actor: str,
    policy: Policy,
    engineer: str = "",
    new_serial: str | None = None,
    at: datetime | None = None,
    reason_code: str | None = None,
) -> SwapResult:
    """Plan the swap of ``old_serial`` on ``on`` and queue the merchant's advance notice.
    ``reason_code``: why, as the merchant reads it (derived when None); ``reason``: the
    operator's note, kept in the record and the audit only."""
    at = at or now()
    reason_code = _given(reason_code)  # bad input first
    with writer(engine).begin() as conn:
        old = _live_old(conn, old_serial)
        code = _code(conn, policy, old, reason_code, at)
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
                reason_code=code,
                engineer=engineer,
                created_at=at,
                created_by=actor,
            )
            .returning(SWAPS.c.id)
        ).scalar_one()
        notice = SwapNotice(
            "swap_planned", swap_id, old_serial, new_serial, model, old["tid"], on, code,
            engineer,
        )  # fmt: skip
        _fits_the_merchant(policy, merchant, notice)
        queue(conn, notice, merchant_id=merchant.id, ref=f"swap:{swap_id}", at=at)
        emit(
            conn,
            "swap.planned",
            {"swap": swap_id, "old_serial": old_serial, "new_serial": new_serial,
             "merchant_id": merchant.id, "tid": old["tid"], "planned_for": on.isoformat()},
            at=at,
        )  # fmt: skip
        audit.record(
            conn,
            actor=actor,
            action="swap_plan",
            target=f"terminal:{old_serial}",
            details={
                "swap": swap_id,
                "on": on.isoformat(),
                "new": new_serial,
                "reason_code": code,
            },
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
    reason: str = "",
    actor: str,
    policy: Policy,
    engineer: str = "",
    at: datetime | None = None,
    reason_code: str | None = None,
) -> SwapResult:
    """Swap ``old_serial`` for ``new_serial`` in one transaction (see the module notes)."""
    with writer(engine).begin() as conn:
        return swap_in(
            conn, old_serial, new_serial, reason=reason, actor=actor, policy=policy,
            engineer=engineer, at=at or now(), tables=load_tables(conn),
            reason_code=reason_code,
        )  # fmt: skip


def swap_in(
    conn: Connection,
    old_serial: str,
    new_serial: str,
    *,
    reason: str,
    actor: str,
    policy: Policy,
    engineer: str,
    at: datetime,
    tables: Mapping[int, Published],
    reason_code: str | None = None,
) -> SwapResult:
    """:func:`swap` in the caller's transaction (a day sheet's), with the published tables
    the caller has read once."""
    reason_code = _given(reason_code)  # bad input first
    if old_serial == new_serial:
        raise SwapError(f"{old_serial}: a terminal can't replace itself")
    old = _live_old(conn, old_serial)
    new = _spare(conn, new_serial)
    merchant = _merchant(conn, old["merchant_id"], old_serial)
    planned = conn.execute(
        select(SWAPS.c.id, SWAPS.c.reason_code).where(
            SWAPS.c.old_serial == old_serial, SWAPS.c.status == "planned"
        )
    ).first()
    if reason_code is None and planned is not None:
        reason_code = planned.reason_code  # the plan's, as its notice said
    code = _code(conn, policy, old, reason_code, at)
    target = target_of(conn, merchant.id, tables)
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
    values = {
        "new_serial": new_serial,
        "status": "done",
        "done_at": at,
        "follow_up_on": follow_up_on,
        "follow_up_state": "due",
        "reason": reason.strip(),
        "reason_code": code,
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
    done = SwapNotice(
        "swap_done", swap_id, old_serial, new_serial, new["model"], old["tid"], today, code,
        engineer, target,
    )  # fmt: skip
    ref = f"swap:{swap_id}"
    _fits_the_merchant(policy, merchant, done)
    queue(conn, done, merchant_id=merchant.id, ref=ref, at=at)
    zone = ZoneInfo(merchant.timezone)
    follow_at = datetime.combine(follow_up_on, datetime.min.time(), zone).replace(hour=10)
    queue(
        conn,
        replace(done, kind="follow_up"),
        merchant_id=merchant.id,
        ref=ref,
        at=at,
        not_before=follow_at,
        channel="call" if policy.swaps.follow_up == "call" else None,
    )
    emit(
        conn,
        "swap.done",
        {"swap": swap_id, "old_serial": old_serial, "new_serial": new_serial,
         "merchant_id": merchant.id, "tid": old["tid"], "table": target,
         "follow_up_on": follow_up_on.isoformat()},
        at=at,
    )  # fmt: skip
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
            "reason_code": code,
        },
        reason=reason,
        at=at,
    )
    return SwapResult(
        swap_id, old_serial, new_serial, merchant.id, old["tid"], "done",
        ["swap_done", "follow_up"], target, None, follow_up_on,
    )  # fmt: skip


SWAP_STATES = ("planned", "done", "cancelled")


def list_swaps(engine: Engine, status: str | None = None) -> list[dict[str, Any]]:
    """Swaps, newest first (only those in ``status``, when given)."""
    if status is not None and status not in SWAP_STATES:
        raise InputError(f"swap status {status!r} (want planned, done or cancelled)")
    query = select(SWAPS).order_by(SWAPS.c.id.desc())
    if status:
        query = query.where(SWAPS.c.status == status)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
