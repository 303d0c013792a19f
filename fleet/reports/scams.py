"""The scam radar report: NOT GENUINE verifications and scam complaints per region and
UTC day, with the policy's threshold alert, and the complaints themselves. Pure: the
days and complaints in (:mod:`fleet.notices.scams` reads them), a
:class:`~fleet.reports.model.Report` out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from fleet.notices.scams import ScamDay
from fleet.reports.model import Chart, Column, Fact, Report, Section, series

__all__ = ["build_scams"]


def build_scams(
    days: Sequence[ScamDay],
    complaints: Sequence[dict[str, Any]],
    *,
    since: date,
    until: date,
    threshold: int,
) -> Report:
    alerts = [d for d in days if d.alert]
    rows = [d.as_dict() | {"day": d.day} for d in days]
    by_region: dict[str, int] = {}
    for d in days:
        by_region[d.region] = by_region.get(d.region, 0) + d.total
    regions = sorted(by_region, key=lambda r: (-by_region[r], r))[:20]
    return Report(
        name="scams",
        title="Scam radar: calls and texts claiming to be us",
        as_of=until,
        params={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "threshold": threshold,
            "days": "UTC",
        },
        summary=(
            Fact.count(
                "not_genuine", "NOT GENUINE verifications", sum(d.not_genuine for d in days)
            ),
            Fact.count("complaints", "scam complaints", sum(d.complaints for d in days)),
            Fact.count("alerts", f"region-days at or over {threshold}", len(alerts)),
            Fact(
                "alerting",
                "alerts",
                [f"{d.region} {d.day.isoformat()}" for d in alerts],
                ", ".join(f"{d.region} {d.day.isoformat()}" for d in alerts[:10]) or "none",
            ),
        ),
        sections=(
            Section(
                "scams",
                "Per region and day (UTC)",
                (
                    Column("region"),
                    Column("day", "day (UTC)", "date"),
                    Column("not_genuine", "NOT GENUINE", "int"),
                    Column("complaints", "complaints", "int"),
                    Column("total", "total", "int"),
                    Column("alert", "alert", "bool"),
                ),
                rows,
                note=f"alert: {threshold} or more signals in a region on a day (policy "
                "inbound.scam_threshold)",
            ),
            Section(
                "complaints",
                "Scam complaints",
                (
                    Column("at", "at (UTC)", "datetime"),
                    Column("region"),
                    Column("merchant_id", "merchant"),
                    Column("channel"),
                    Column("note", "what the merchant said", wrap=True),
                ),
                [
                    {
                        "at": c["at"],
                        "region": c["region"],
                        "merchant_id": c["merchant_id"] or "",
                        "channel": c["channel"],
                        "note": c["note"],
                    }
                    for c in complaints
                ],
            ),
        ),
        main="scams",
        charts=(
            Chart(
                "by_region",
                "Signals by region",
                tuple(regions),
                (series("signals", [by_region[r] for r in regions], "#c92a2a"),),
                xlabel="region",
                ylabel="signals",
                description="NOT GENUINE verifications and scam complaints per region",
            ),
        ),
    )
