"""The follow-up (回访) of a swap: what the merchant said, or another try.

A done swap's follow-up is ``due`` on ``follow_up_on`` (the merchant's date; the call task
or notice was queued with the swap). :func:`record_follow_up` records one attempt:

* **reached**: the merchant's satisfaction (1–5, required) and an issue, if they raised
  one (an issue is ``open`` until :func:`close_issue`); the follow-up is ``done``;
* **not reached**: another call task (or notice) ``follow_up_retry_after`` days later, up
  to the policy's ``follow_up_attempts`` in all; after the last, ``unreached``.

Every attempt is audited (``swap_follow_up``). The swaps report
(:mod:`fleet.reports.swaps`) shows satisfaction by engineer, model and region, and the open
issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from fleet.core import audit
from fleet.core.clock import today_in
from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError, NotFoundError
from fleet.core.models import MERCHANTS, NOTICES, SWAPS, now
from fleet.core.policy import Policy
from fleet.notices import payload_of, queue

__all__ = ["FOLLOW_UP_STATES", "FollowUpResult", "close_issue", "record_follow_up"]

FOLLOW_UP_STATES = ("due", "done", "unreached")


@dataclass(frozen=True, slots=True)
class FollowUpResult:
    swap: int
    state: str
    attempts: int
    next_due: date | None
    """The next try (merchant's date), when not reached and tries are left."""
    satisfaction: int | None
    issue_open: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "swap": self.swap,
            "state": self.state,
            "attempts": self.attempts,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "satisfaction": self.satisfaction,
            "issue_open": self.issue_open,
        }


def _check(reached: bool, satisfaction: int | None, issue: str | None) -> str | None:
    issue = (issue or "").strip() or None
    if issue is not None and len(issue) > 500:
        raise InputError(f"the issue is {len(issue)} characters (at most 500)", where="--issue")
    if reached:
        if satisfaction is None:
            raise InputError("a merchant reached gives a satisfaction of 1 to 5",
                             where="--satisfaction")  # fmt: skip
        if not 1 <= satisfaction <= 5:
            raise InputError(f"{satisfaction} (want 1 to 5)", where="--satisfaction")
    elif satisfaction is not None or issue is not None:
        raise InputError(
            "a merchant not reached gives no satisfaction or issue", where="--reached no"
        )
    return issue


def record_follow_up(
    engine: Engine,
    swap_id: int,
    *,
    reached: bool,
    satisfaction: int | None = None,
    issue: str | None = None,
    actor: str,
    policy: Policy,
    at: datetime | None = None,
) -> FollowUpResult:
    """Record one follow-up attempt of swap ``swap_id`` (see the module notes). Raises
    :class:`InputError` for bad values, :class:`NotFoundError` for no such swap and
    :class:`ConflictError` for a swap not done or whose follow-up is over."""
    at = at or now()
    issue = _check(reached, satisfaction, issue)
    with writer(engine).begin() as conn:
        row = conn.execute(select(SWAPS).where(SWAPS.c.id == swap_id).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"no swap {swap_id}")
        if row.status != "done":
            raise ConflictError(f"swap {swap_id} is {row.status}: only a done swap is followed up")
        if row.follow_up_state == "done":
            raise ConflictError(
                f"swap {swap_id} was followed up on {row.followed_up_at:%Y-%m-%d}: the merchant "
                "was reached already"
            )
        attempts = row.follow_up_attempts + 1
        values: dict[str, Any] = {"follow_up_attempts": attempts, "followed_up_at": at}
        next_due: date | None = None
        if reached:
            values |= {"follow_up_state": "done", "satisfaction": satisfaction,
                       "follow_up_issue": issue, "issue_open": issue is not None}  # fmt: skip
        elif attempts < policy.swaps.follow_up_attempts:
            merchant = conn.execute(
                select(MERCHANTS.c.timezone).where(MERCHANTS.c.id == row.merchant_id)
            ).scalar_one()
            next_due = today_in(merchant, at) + timedelta(days=policy.swaps.follow_up_retry_days)
            values |= {"follow_up_state": "due", "follow_up_on": next_due}
            _requeue(conn, row, attempts, next_due, merchant, policy, at)
        else:
            values |= {"follow_up_state": "unreached"}
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(**values))
        audit.record(
            conn,
            actor=actor,
            action="swap_follow_up",
            target=f"swap:{swap_id}",
            details={
                "reached": reached,
                "satisfaction": satisfaction,
                "attempt": attempts,
                "state": values["follow_up_state"],
                "next_due": next_due.isoformat() if next_due else None,
            },
            reason=issue or "",
            at=at,
        )
    return FollowUpResult(
        swap_id, values["follow_up_state"], attempts, next_due,
        satisfaction if reached else row.satisfaction, bool(values.get("issue_open")),
    )  # fmt: skip


def _requeue(
    conn: Any, row: Any, attempt: int, due: date, zone: str, policy: Policy, at: datetime
) -> None:
    """Another follow-up call task (or notice) on ``due`` at 10:00 merchant time, with the
    first follow-up's payload."""
    first = conn.execute(
        select(NOTICES.c.payload).where(
            NOTICES.c.kind == "follow_up",
            NOTICES.c.merchant_id == row.merchant_id,
            NOTICES.c.ref == f"swap:{row.id}",
        )
    ).scalar()
    if first is None:  # a swap recorded before follow-ups were queued: nothing to repeat
        return
    when = datetime.combine(due, datetime.min.time(), ZoneInfo(zone)).replace(hour=10)
    queue(
        conn,
        payload_of("follow_up", first),
        merchant_id=row.merchant_id,
        ref=f"swap:{row.id}:try{attempt + 1}",
        at=at,
        not_before=when,
        channel="call" if policy.swaps.follow_up == "call" else None,
    )


def close_issue(engine: Engine, swap_id: int, *, actor: str, note: str = "") -> None:
    """Mark the issue a merchant raised on the follow-up of ``swap_id`` resolved."""
    with writer(engine).begin() as conn:
        row = conn.execute(select(SWAPS.c.issue_open).where(SWAPS.c.id == swap_id)).first()
        if row is None:
            raise NotFoundError(f"no swap {swap_id}")
        if not row.issue_open:
            raise ConflictError(f"swap {swap_id} has no open issue")
        conn.execute(update(SWAPS).where(SWAPS.c.id == swap_id).values(issue_open=False))
        audit.record(conn, actor=actor, action="swap_issue_closed", target=f"swap:{swap_id}",
                     reason=note)  # fmt: skip
