"""Maintenance windows: DST-aware local windows (pure), a rollout over terminals in three
time zones claimed only inside each one's window across a DST change (clock injected),
`rollout status` waits and finish, and `push` refused outside the window unless
`--now --reason` (audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.audit import AuditFilter, query
from fleet.core.models import JOBS, MERCHANTS, TERMINALS
from fleet.core.policy import FeePolicy, MaintenancePolicy, Policy, PolicyError, RolloutPolicy
from fleet.core.windows import Window
from fleet.device import KeyRing
from fleet.device.windows import windows_for
from fleet.fees import Group, publish
from fleet.rollout import Worker, status
from fleet.rollout.jobs import RolloutKind, insert_rollout
from protocols.mac import generate_master_key_file

NIGHT = Window(60, 300)  # 01:00-05:00
ZONES = ("America/New_York", "Europe/Dublin", "Asia/Shanghai")
TABLE = """name = "windows"
currency = "CNY"
effective = 2026-01-01T00:00:00+08:00
[[rules]]
card = "any"
rate = "0.38%"
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_window_follows_the_local_clock_across_dst_changes() -> None:
    ny = "America/New_York"  # 2026-03-08 02:00 EST → 03:00 EDT
    assert NIGHT.next_open(ny, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 6)  # 01:00 EST
    assert NIGHT.closes(ny, utc(2026, 3, 8, 6)) == utc(2026, 3, 8, 9)  # 05:00 EDT: 3 hours
    assert NIGHT.next_open(ny, utc(2026, 3, 8, 9)) == utc(2026, 3, 9, 5)  # 01:00 EDT
    assert not NIGHT.is_open(ny, utc(2026, 3, 8, 9)) and NIGHT.is_open(ny, utc(2026, 3, 8, 8, 59))
    syd = "Australia/Sydney"  # 2026-04-05 03:00 AEDT → 02:00 AEST: a 5-hour night
    opens = NIGHT.next_open(syd, utc(2026, 4, 4, 6))
    assert opens == utc(2026, 4, 4, 14)  # 01:00 AEDT (UTC+11)
    assert NIGHT.closes(syd, opens) - opens == timedelta(hours=5)
    late = Window(22 * 60 + 30, 2 * 60 + 30)  # over midnight
    dub = "Europe/Dublin"
    assert late.is_open(dub, utc(2026, 6, 1, 0, 30)) and not late.is_open(dub, utc(2026, 6, 1, 2))
    assert late.closes(dub, utc(2026, 6, 1, 21, 30)) == utc(2026, 6, 2, 1, 30)  # IST = UTC+1
    gap = Window(2 * 60 + 30, 4 * 60)  # 02:30 does not exist in New York on 2026-03-08
    assert gap.next_open(ny, utc(2026, 3, 8, 5)) == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    assert gap.is_open(ny, utc(2026, 3, 8, 7, 30))


def test_maintenance_policy_is_read_and_checked() -> None:
    p = Policy.from_toml(
        '[maintenance]\ndefault = "01:00-05:00"\n'
        'groups = { "region=north" = "02:00-03:00" }\nmerchants = { M1 = "22:00-02:00" }'
    )
    assert p.maintenance.default == (60, 300)
    assert p.maintenance.groups == (("region=north", (120, 180)),)
    assert Policy.from_toml(p.to_toml()).maintenance == p.maintenance
    with pytest.raises(PolicyError, match=r"maintenance\.default: '03:00-03:00' is empty"):
        Policy.from_toml('[maintenance]\ndefault = "03:00-03:00"')
    with pytest.raises(PolicyError, match=r"maintenance\.merchants\.M1: want HH:MM-HH:MM"):
        Policy.from_toml('[maintenance]\nmerchants = { M1 = "1-5" }')


def _three_zones(engine: Engine) -> list[str]:
    """Three deployed terminals of three merchants, put in three zones (in ZONES order)."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.merchant_id.is_not(None))
            .order_by(TERMINALS.c.serial)
        ).all()
        chosen: dict[str, str] = {}
        for serial, merchant in rows:
            if merchant not in chosen.values():
                chosen[serial] = merchant
            if len(chosen) == 3:
                break
        for merchant, zone in zip(chosen.values(), ZONES, strict=True):
            conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant).values(timezone=zone))
    return list(chosen)


def _rollout(engine: Engine, tmp: Path, serials: list[str]) -> int:
    path = tmp / "table.toml"
    path.write_text(TABLE)
    version = publish(engine, path, actor="t", policy=FeePolicy()).version
    policy = RolloutPolicy(max_attempts=1000, backoff_s=1.0)
    with engine.begin() as conn:
        rid, _ = insert_rollout(
            conn, {"kind": RolloutKind.FEES, "version": version}, serials, group=Group(),
            policy=policy, actor="t", waves=(1_000_000,), max_failure_ppm=1_000_000, note="",
            audit_as=("push", {"version": version}),
        )  # fmt: skip
    return rid


def test_rollout_in_three_zones_claims_each_only_inside_its_window_across_dst(
    loaded: Engine, tmp_path: Path
) -> None:
    serials = _three_zones(loaded)
    zone_of = dict(zip(serials, ZONES, strict=True))
    rid = _rollout(loaded, tmp_path, serials)
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    clock = [utc(2026, 3, 7, 12)]
    worker = Worker(
        loaded, keys=KeyRing.read([key]), fee_policy=FeePolicy(),
        policy=RolloutPolicy(max_attempts=1000, backoff_s=1.0), actor="t",
        maintenance=MaintenancePolicy(default=(60, 300)), clock=lambda: clock[0],
    )  # fmt: skip
    # before any window opens: all three wait; the wave finishes when the last one opens
    info = status(loaded, rid, maintenance=worker.maintenance, at=clock[0])
    assert (info.waves[0].waiting, info.waves[0].finishes_by) == (3, utc(2026, 3, 8, 6))
    claims: dict[str, list[datetime]] = {s: [] for s in serials}
    while clock[0] < utc(2026, 3, 9, 7):
        while (job := worker.claim(rid, "t0")) is not None:
            claims[job.serial].append(clock[0])
            local = clock[0].astimezone(ZoneInfo(zone_of[job.serial]))
            assert 1 <= local.hour < 5, (job.serial, clock[0], local)
            # New York's terminal keeps failing (retried), the others succeed at once
            failing = zone_of[job.serial] == "America/New_York"
            worker.finish(rid, job, f"{worker.name}/t0", "no answer" if failing else None, 1000)
        clock[0] += timedelta(minutes=15)
    by_zone = {zone_of[s]: c for s, c in claims.items()}
    assert by_zone["Asia/Shanghai"] == [utc(2026, 3, 7, 17)]  # 01:00 CST
    assert by_zone["Europe/Dublin"] == [utc(2026, 3, 8, 1)]  # 01:00 GMT
    ny = by_zone["America/New_York"]
    first_night = [c for c in ny if c.date() == datetime(2026, 3, 8).date()]
    assert first_night[0] == utc(2026, 3, 8, 6) and max(first_night) < utc(2026, 3, 8, 9)
    second_night = [c for c in ny if c > utc(2026, 3, 8, 12)]
    assert second_night[0] == utc(2026, 3, 9, 5)  # 01:00 EDT: an hour earlier in UTC
    # mid-afternoon: the New York job waits for its window (its next opening)
    afternoon = utc(2026, 3, 9, 15)
    info = status(loaded, rid, maintenance=worker.maintenance, at=afternoon)
    wave = info.waves[0]
    assert wave.counts.get("done") == 2 and wave.waiting == 1
    assert wave.finishes_by == utc(2026, 3, 10, 5)
    assert info.as_dict()["waves"][0]["waiting_for_window"] == 1
    with loaded.connect() as conn:
        attempts = conn.execute(select(JOBS.c.attempts).where(JOBS.c.serial == serials[0])).scalar()
    assert attempts == len(ny)  # a deferral is not an attempt


def test_windows_per_merchant_and_group_win_over_the_default(loaded: Engine) -> None:
    a, b, c = _three_zones(loaded)
    with loaded.begin() as conn:
        merchants = dict(
            conn.execute(
                select(TERMINALS.c.serial, TERMINALS.c.merchant_id).where(
                    TERMINALS.c.serial.in_([a, b, c])
                )
            ).all()
        )
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchants[b]).values(region="north"))
    policy = MaintenancePolicy(
        default=(60, 300),
        groups=(("region=north", (120, 180)),),
        merchants=((merchants[a], (22 * 60, 2 * 60)),),
    )
    with loaded.connect() as conn:
        found = windows_for(conn, [a, b, c], policy)
    assert (found[a].window, found[a].source) == (Window(1320, 120), f"merchant {merchants[a]}")
    assert (found[b].window, found[b].source) == (Window(120, 180), "group region=north")
    assert (found[c].window, found[c].source, found[c].zone) == (NIGHT, "default", ZONES[2])


def test_push_outside_the_window_is_refused_unless_now_with_a_reason(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    (serial, *_) = _three_zones(loaded)
    with loaded.begin() as conn:
        merchant = conn.execute(
            select(TERMINALS.c.merchant_id).where(TERMINALS.c.serial == serial)
        ).scalar_one()
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant).values(timezone="UTC"))
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == serial)
            .values(link="socket://127.0.0.1:9")
        )
    hour = (datetime.now(UTC).hour + 3) % 24  # a window that is surely closed now
    policy = tmp_path / "posfleet.toml"
    policy.write_text(f'[maintenance]\ndefault = "{hour:02d}:00-{(hour + 1) % 24:02d}:00"\n')
    table = tmp_path / "t.toml"
    table.write_text(TABLE)
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    runner = CliRunner()
    base = ["--db", db_url, "--policy", str(policy), "--actor", "ops-1"]
    res = runner.invoke(app, [*base, "fees", "publish", str(table)])
    assert res.exit_code == 0, res.output
    push = [*base, "push", "--table", "1", "-t", serial, "--key-file", str(key), "--timeout", "1"]
    res = runner.invoke(app, [*push, "--retries", "0"])
    assert res.exit_code == 1
    assert "outside its maintenance window" in " ".join(res.output.split())
    res = runner.invoke(app, [*push, "--now"])
    assert res.exit_code == 2 and "--now needs --reason" in res.output
    res = runner.invoke(app, [*push, "--retries", "0", "--now", "--reason", "card scheme deadline"])
    assert "outside its maintenance window" not in res.output  # tried (the link is dead)
    entries = list(query(loaded, AuditFilter(action="override", target=f"terminal:{serial}")))
    assert len(entries) == 1 and entries[0].reason == "card scheme deadline"
    assert entries[0].actor == "ops-1" and entries[0].details["push"] == 1
