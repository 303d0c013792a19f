"""The compliance gate of fee raises: per merchant, per delivered notice.

A raise takes effect at a merchant **no earlier than the first delivery of its
``fee_change`` notice plus the policy's notice period** (``[fees] notice_period``; none
for a table published with ``--override-notice``, whose override is audited — but the
notice must still have been delivered). Delivery is what
:func:`fleet.notices.evidence.delivered_at` says, and nothing else.

Per merchant of a version (:func:`gates`):

==============  =============================================================================
state           meaning → what its terminals get
==============  =============================================================================
``immediate``   not a raise for it (a reduction, a first table, no notice): the table as is
``in_time``     delivered at least the notice period before the table's effective time: the
                table as is
``late``        delivered, but later: the table's rules with the **effective time moved** to
                delivery + notice period (same version; the terminal holds it pending and
                keeps pricing with the previous table until then)
``waiting``     no evidence of delivery (queued, deferred, failed, a call task): nothing — a
                push or a rollout job of it to this merchant's terminals is **refused** and
                audited (``push_refused``), so the terminals keep the previous table
==============  =============================================================================

The push path asks :func:`table_for` for every terminal it pushes to (``posfleet push``,
rollouts, provisioning after a swap): there is no other way for a raise to reach a
terminal. A rollout job refused as ``waiting`` is retried by the rollout's backoff like any
failed attempt, so a notice delivered meanwhile lets the next attempt through (with the
moved effective time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from fleet.core.errors import NotFoundError
from fleet.core.models import MESSAGES, NOTICES
from fleet.core.policy import FeePolicy
from fleet.fees.tables import Published, load_tables, published
from fleet.notices.evidence import delivered_at
from protocols.feetable import FeeTable

__all__ = [
    "STATES",
    "MerchantGate",
    "gates",
    "listing",
    "newest_raise",
    "notice_days",
    "table_for",
]

STATES = ("immediate", "in_time", "late", "waiting")


@dataclass(frozen=True, slots=True)
class MerchantGate:
    """One merchant's side of one published version."""

    version: int
    merchant_id: str
    direction: str
    """``up``, ``down``, ``new`` (its notice's), or ``none`` (no notice: no change)."""
    notice: str
    """Its notice's status (``queued``, ``composed``, ``sent``, ``failed``…) or ``none``."""
    delivered_at: datetime | None
    channel: str | None
    """The channel that delivered it (or carries it, undelivered)."""
    table_effective: datetime
    effective_at: datetime | None
    """When the table takes effect at this merchant; None: not before a delivery."""
    required_days: int

    @property
    def gated(self) -> bool:
        """A raise for this merchant: its notice must be delivered first."""
        return self.direction == "up"

    @property
    def state(self) -> str:
        if not self.gated:
            return "immediate"
        if self.delivered_at is None:
            return "waiting"
        return "in_time" if self.effective_at == self.table_effective else "late"

    @property
    def compliant(self) -> bool:
        """The effective time the terminals get respects the notice period (a ``waiting``
        merchant is compliant as long as nothing reaches its terminals; it is listed as
        not compliant *yet*: ``False``)."""
        return self.state in ("immediate", "in_time", "late")

    @property
    def days_of_notice(self) -> float | None:
        if self.delivered_at is None or self.effective_at is None:
            return None
        return round((self.effective_at - self.delivered_at) / timedelta(days=1), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "merchant": self.merchant_id,
            "direction": self.direction,
            "notice": self.notice,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "channel": self.channel,
            "table_effective": self.table_effective.isoformat(),
            "effective_at": self.effective_at.isoformat() if self.effective_at else None,
            "days_of_notice": self.days_of_notice,
            "required_days": self.required_days,
            "state": self.state,
            "compliant": self.compliant,
        }


def notice_days(p: Published, policy: FeePolicy) -> int:
    """The notice period a raise of ``p`` needs: the policy's, none for an overridden one."""
    return 0 if p.notice_override else policy.notice_days


def _whole_second_up(at: datetime) -> datetime:
    """A fee table's effective time is whole seconds: round a moved one up, never early."""
    at = at.astimezone(UTC)
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return at


def gates(
    conn: Connection,
    version: int,
    tables: Mapping[int, Published],
    policy: FeePolicy,
    merchants: Iterable[str] | None = None,
) -> dict[str, MerchantGate]:
    """Merchant id → its gate for ``version``, for every merchant with a ``fee_change``
    notice of it (only ``merchants``, when given; a merchant without one is absent:
    ``immediate``)."""
    p = published(tables, version)
    days = notice_days(p, policy)
    query = (
        select(
            NOTICES.c.merchant_id,
            NOTICES.c.payload,
            NOTICES.c.status.label("notice_status"),
            MESSAGES.c.channel,
            MESSAGES.c.status,
            MESSAGES.c.sent_at,
        )
        .select_from(NOTICES.outerjoin(MESSAGES, MESSAGES.c.id == NOTICES.c.message_id))
        .where(NOTICES.c.kind == "fee_change", NOTICES.c.ref == f"fee:{version}")
        .order_by(NOTICES.c.merchant_id)
    )
    wanted = None if merchants is None else sorted(set(merchants))
    rows: list[Any] = []
    if wanted is None:
        rows = list(conn.execute(query))
    else:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows.extend(conn.execute(query.where(NOTICES.c.merchant_id.in_(chunk))))
    out: dict[str, MerchantGate] = {}
    effective = p.table.effective
    for r in rows:
        delivered = delivered_at(r if r.channel is not None else None)
        at: datetime | None = effective
        if r.payload.get("direction") == "up":
            at = None
            if delivered is not None:
                at = max(effective, _whole_second_up(delivered + timedelta(days=days)))
        out[r.merchant_id] = MerchantGate(
            version, r.merchant_id, str(r.payload.get("direction", "new")), r.notice_status,
            delivered, r.channel, effective, at, days,
        )  # fmt: skip
    return out


def table_for(
    conn: Connection,
    version: int,
    merchant_id: str | None,
    tables: Mapping[int, Published],
    policy: FeePolicy,
) -> tuple[FeeTable | None, MerchantGate | None]:
    """What a push of ``version`` may send to a terminal of ``merchant_id``: the table
    (its effective time moved for a ``late`` merchant), or None for a ``waiting`` one;
    and the merchant's gate (None: not gated)."""
    p = published(tables, version)
    if merchant_id is None or not p.raises:
        return p.table, None
    gate = gates(conn, version, tables, policy, [merchant_id]).get(merchant_id)
    if gate is None or not gate.gated:
        return p.table, gate
    if gate.effective_at is None:
        return None, gate
    if gate.effective_at == p.table.effective:
        return p.table, gate
    return replace(p.table, effective=gate.effective_at), gate


def newest_raise(tables: Mapping[int, Published]) -> int | None:
    """The newest published version that raises some merchant's fee (None: none does)."""
    return max((v for v, p in tables.items() if p.raises), default=None)


def listing(
    conn: Connection,
    policy: FeePolicy,
    version: int | None = None,
    tables: Mapping[int, Published] | None = None,
) -> tuple[int, list[MerchantGate]]:
    """``posfleet fees compliance``: every merchant notified of ``version`` (the newest
    raise when None) with its delivery, effective time and state, by merchant id.
    Raises :class:`~fleet.core.errors.NotFoundError` when no published table raises fees
    or ``version`` is not published."""
    tables = load_tables(conn) if tables is None else tables
    if version is None:
        version = newest_raise(tables)
        if version is None:
            raise NotFoundError("no published fee table raises any merchant's fees")
    return version, list(gates(conn, version, tables, policy).values())
