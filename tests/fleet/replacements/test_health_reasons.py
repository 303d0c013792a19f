"""Replacement reasons from health: tamper → P1, a worn part → P2, a forecast date per wear
counter from its history (hand-computed), feeding the quarterly forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from fleet.core.models import TERMINALS
from fleet.core.policy import Policy, PolicyError, ReplacementPolicy
from fleet.device.health import HealthReport, record_health
from fleet.replacements import assess, flag
from protocols.health import Battery, CardReads, HealthInfo, PaperState, Printer, RebootReason

AS_OF = date(2026, 11, 1)
T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
POLICY = ReplacementPolicy()  # wear_percent 90, forecast_min_samples 3


def health(
    reads: int, *, lines: int = 1000, cycles: int = 10, tampered: bool = False
) -> HealthInfo:
    return HealthInfo(
        card_reads=CardReads(chip=reads, contactless=0, magstripe=0),
        uptime=1,
        last_reboot=RebootReason.POWER_ON,
        free_storage=1,
        battery=Battery(level=50, health=90, cycles=cycles),
        printer=Printer(PaperState.OK, lines=lines),
        tampered=tampered,
        tampered_at=T0 + timedelta(days=3) if tampered else None,
    )


def unflagged_pf300(engine: Engine, n: int) -> list[str]:
    """PF-300 terminals no other rule flags as of AS_OF (rated: reader 1,500,000, printer
    6,000,000 lines, battery 800 cycles)."""
    flagged = {r.serial for r in flag(engine, POLICY, AS_OF)}
    with engine.connect() as conn:
        serials = conn.execute(
            select(TERMINALS.c.serial)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.model == "PF-300")
            .order_by(TERMINALS.c.serial)
        ).scalars()
        free = [s for s in serials if s not in flagged]
    assert len(free) >= n
    return free[:n]


def store(engine: Engine, reports: list[HealthReport]) -> None:
    with engine.begin() as conn:
        record_health(conn, reports)


def by_serial(engine: Engine, policy: ReplacementPolicy = POLICY) -> dict[str, object]:
    return {r.serial: r for r in flag(engine, policy, AS_OF)}


def test_tamper_is_p1_at_once(loaded: Engine) -> None:
    (serial,) = unflagged_pf300(loaded, 1)
    store(loaded, [HealthReport(serial, health(10, tampered=True), T0 + timedelta(days=4))])
    r = by_serial(loaded)[serial]
    assert r.priority == 1 and r.replace_by == AS_OF  # type: ignore[attr-defined]
    (reason,) = r.reasons  # type: ignore[attr-defined]
    assert (reason.code, reason.in_effect) == ("tamper", True)
    assert "tamper switch tripped at 2026-10-04T02:00+00:00" in reason.detail


def test_worn_parts_past_their_share_are_p2_now(loaded: Engine) -> None:
    reader, printer, battery, under = unflagged_pf300(loaded, 4)
    store(
        loaded,
        [
            HealthReport(reader, health(1_350_000), T0),  # exactly 90 % of 1,500,000
            HealthReport(printer, health(10, lines=5_400_001), T0),  # past 90 % of 6,000,000
            HealthReport(battery, health(10, cycles=720), T0),  # 90 % of 800
            HealthReport(under, health(1_349_999, lines=5_399_999, cycles=719), T0),
        ],
    )
    found = by_serial(loaded)
    for serial, code in ((reader, "reader"), (printer, "printer"), (battery, "battery")):
        r = found[serial]
        assert r.priority == 2 and r.replace_by == AS_OF  # type: ignore[attr-defined]
        assert [(x.code, x.in_effect) for x in r.reasons] == [(code, True)]  # type: ignore[attr-defined]
    assert "reader at 1,350,000 of 1,500,000 rated reads (90%, limit 90%)" in (
        found[reader].reasons[0].detail  # type: ignore[attr-defined]
    )
    assert under not in found  # one sample: no line, and under the share


def test_forecast_date_from_the_history_by_hand(loaded: Engine) -> None:
    fast, slow, few = unflagged_pf300(loaded, 3)
    reports = []
    for d in (0, 10, 20):  # reader 1,000,000 + 10,000/day; printer 3,000,000 + 20,000/day
        at = T0 + timedelta(days=d)
        reports.append(HealthReport(fast, health(1_000_000 + 10_000 * d), at))
        # 100,000 + 1,000/day: 1,350,000 at day 1,250 (2030-03-05): beyond the horizon
        reports.append(
            HealthReport(slow, health(100_000 + 1_000 * d, lines=3_000_000 + 20_000 * d), at)
        )
    for d in (0, 10):  # two samples only: no forecast (forecast_min_samples = 3)
        reports.append(HealthReport(few, health(1_000_000 + 30_000 * d), T0 + timedelta(days=d)))
    store(loaded, reports)
    found = by_serial(loaded)
    # fast: 1,350,000 = 1,000,000 + 10,000 d  ->  d = 35  ->  2026-10-01 + 35 days = 2026-11-05
    r = found[fast]
    (reason,) = r.reasons  # type: ignore[attr-defined]
    assert (reason.code, reason.due, reason.in_effect) == ("reader", date(2026, 11, 5), False)
    assert "10,000 reads/day over 3 samples" in reason.detail
    assert r.replace_by == date(2026, 11, 5) and r.priority == 2  # type: ignore[attr-defined]
    # slow: printer 5,400,000 = 3,000,000 + 20,000 d  ->  d = 120  ->  2027-01-29
    r = found[slow]
    assert [(x.code, x.due) for x in r.reasons] == [("printer", date(2027, 1, 29))]  # type: ignore[attr-defined]
    assert r.priority == 2  # type: ignore[attr-defined]  # within urgent_within (90 days)
    later = by_serial(loaded, ReplacementPolicy(urgent_days=60))[slow]
    assert later.priority == 3  # type: ignore[attr-defined]
    assert few not in found
    # the quarterly forecast counts them in the quarter of their forecast dates
    shorter = ReplacementPolicy(horizon_days=60)  # 2026-12-31: the printer line is later
    assert slow not in by_serial(loaded, shorter)
    result = assess(loaded, POLICY, AS_OF)
    quarters = {row["quarter"]: row["units"] for row in result.forecast.rows()}
    assert quarters.get("2027-Q1", 0) >= 1 and quarters.get("2026-Q4", 0) >= 1


def test_wear_policy_keys_are_checked() -> None:
    p = Policy.from_toml("[replacement]\nwear_percent = 80\nforecast_min_samples = 5")
    assert (p.replacement.wear_percent, p.replacement.forecast_min_samples) == (80, 5)
    with pytest.raises(PolicyError, match=r"wear_percent: must be 1\.\.100"):
        Policy.from_toml("[replacement]\nwear_percent = 0")
    with pytest.raises(PolicyError, match="forecast_min_samples: must be 2 or more"):
        Policy.from_toml("[replacement]\nforecast_min_samples = 1")
