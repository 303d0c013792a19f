"""Health in the reports: the fleet report's per-model health section and the replacements
report's tamper and wear section; neither appears when no terminal reported health."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from fleet.core.models import TERMINALS
from fleet.core.policy import ReplacementPolicy
from fleet.device.health import HealthReport, record_health
from fleet.reports import fleet_report, replacements_report
from fleet.reports.render import html, json_doc
from protocols.health import Battery, CardReads, HealthInfo, PaperState, Printer, RebootReason

AS_OF = date(2026, 11, 1)
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def health(reads: int, *, tampered: bool = False) -> HealthInfo:
    return HealthInfo(
        card_reads=CardReads(chip=reads, contactless=0, magstripe=0),
        uptime=1,
        last_reboot=RebootReason.TAMPER if tampered else RebootReason.POWER_ON,
        free_storage=1,
        battery=Battery(level=50, health=90, cycles=400),
        printer=Printer(PaperState.OK, lines=600_000),
        tampered=tampered,
    )


def sections(doc: dict[str, Any]) -> dict[str, Any]:
    """The report's sections by key (JSON: one list of rows per section)."""
    return {k: v for k, v in doc.items() if isinstance(v, list)}


def test_reports_show_health_only_when_reported(loaded: Engine) -> None:
    policy = ReplacementPolicy()
    assert "health" not in sections(json_doc(fleet_report(loaded, AS_OF)))
    assert "health" not in sections(json_doc(replacements_report(loaded, policy, AS_OF)))
    with loaded.connect() as conn:
        pf300 = list(
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.model == "PF-300", TERMINALS.c.status == "deployed")
                .order_by(TERMINALS.c.serial)
                .limit(2)
            ).scalars()
        )
    tampered, worn = pf300
    reports = [HealthReport(tampered, health(10, tampered=True), T0)]
    reports += [
        HealthReport(worn, health(1_000_000 + 10_000 * d), T0 + timedelta(days=d))
        for d in (0, 10, 20)
    ]
    with loaded.begin() as conn:
        record_health(conn, reports)
    fleet = sections(json_doc(fleet_report(loaded, AS_OF)))["health"]
    (row,) = fleet
    # PF-300: reader rated 1,500,000 → (10 + 1,200,000) / 2 / 15,000 = 40.0003 %
    assert (row["model"], row["reporting"], row["tampered"]) == ("PF-300", 2, 1)
    assert row["reader_share"] == "40.0%" and row["printer_share"] == "10.0%"
    assert row["battery_share"] == "50.0%"  # 400 of 800 cycles
    report = replacements_report(loaded, policy, AS_OF)
    rows = {(r["serial"], r["reason"]): r for r in sections(json_doc(report))["health"]}
    assert rows[(tampered, "tamper")]["priority"] == "P1"
    forecast = rows[(worn, "reader")]
    assert forecast["due"] == "2026-11-05" and forecast["in_effect"] is False
    assert "over 3 samples" in forecast["detail"]
    assert "Health: tampered and worn terminals" in html(report)
