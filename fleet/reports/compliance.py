"""The fee-raise compliance section of the notices report: per merchant notified of the
newest raise, when its notice was delivered and by which channel, when the raise takes
effect there, the days of notice and whether that is compliant
(:mod:`fleet.fees.compliance` decides; this only lays it out). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from fleet.fees.compliance import MerchantGate
from fleet.reports.model import Column, Section

__all__ = ["compliance_section"]

COLUMNS = (
    Column("merchant"),
    Column("direction"),
    Column("notice"),
    Column("delivered_at", "notice delivered", "datetime"),
    Column("channel"),
    Column("effective_at", "effective at", "datetime"),
    Column("days_of_notice", "days of notice"),
    Column("state"),
    Column("compliant", kind="bool"),
)


def compliance_section(version: int | None, gates: Sequence[MerchantGate]) -> Section:
    """The section (empty, saying so, when no published table raises fees)."""
    rows = [
        {
            "merchant": g.merchant_id,
            "direction": g.direction,
            "notice": g.notice,
            "delivered_at": g.delivered_at,
            "channel": g.channel or "",
            "effective_at": g.effective_at,
            "days_of_notice": "" if g.days_of_notice is None else f"{g.days_of_notice:.1f}",
            "state": g.state,
            "compliant": g.compliant,
        }
        for g in gates
    ]
    if version is None:
        note = "no published fee table raises any merchant's fees"
    else:
        waiting = sum(g.state == "waiting" for g in gates)
        late = sum(g.state == "late" for g in gates)
        note = (
            f"fee table v{version}: a raise takes effect at a merchant no earlier than its "
            f"notice's delivery + the notice period; {late} late (effective moved), "
            f"{waiting} waiting for delivery (their terminals keep the previous table)"
        )
    return Section(
        "fee_compliance",
        "Fee-raise compliance",
        COLUMNS,
        tuple(rows),
        note=note,
        brief=("merchant", "delivered_at", "channel", "effective_at", "days_of_notice",
               "compliant"),
    )  # fmt: skip
