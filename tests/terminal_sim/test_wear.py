"""Hardware wear of the emulated terminal (terminal_sim.wear): counters against
hand-computed values, battery ageing, per-model profiles, seeded fleet profiles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleet.sample.seed import CATALOG_TOML  # the sample fleet's catalog (read, not edited)
from protocols.health import PaperState, RebootReason
from protocols.messages import EntryMode
from protocols.values import Capability
from terminal_sim.wear import (
    GENERIC,
    PROFILES,
    Wear,
    WearProfile,
    after_sale,
    battery_health,
    health_info,
    initial_wear,
    profile_for,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ALL = Capability.CHIP | Capability.CONTACTLESS | Capability.MAGSTRIPE


def _sales(model: str, entries: list[EntryMode], approved: bool = True) -> Wear:
    profile = PROFILES[model]
    wear = Wear.fresh(profile)
    for entry in entries:
        wear = after_sale(wear, profile, entry, approved=approved)
    return wear


def test_counters_grow_with_sales_by_interface() -> None:
    entries = [EntryMode.CHIP] * 3 + [EntryMode.CONTACTLESS] * 5 + [EntryMode.MAGSTRIPE] * 2
    wear = _sales("PF-200", [*entries, EntryMode.QR])
    assert (wear.chip, wear.contactless, wear.magstripe) == (3, 5, 2)  # QR reads no card
    assert wear.printer_lines == 11 * 40  # two copies of 20 lines per approved sale
    assert wear.paper_left == 12_500 - 440
    assert wear.logs_bytes == 11 * 256


def test_a_declined_sale_prints_a_slip() -> None:
    wear = _sales("PF-200", [EntryMode.CHIP] * 4, approved=False)
    assert (wear.chip, wear.printer_lines) == (4, 4 * 8)


def test_paper_runs_out_and_printing_stops() -> None:
    profile = PROFILES["VX-680"]  # 3,750 lines a roll, 36 a receipt
    wear = Wear.fresh(profile)
    states = []
    for _ in range(110):
        wear = after_sale(wear, profile, EntryMode.CHIP, approved=True)
        states.append(health_info(wear, profile, uptime=0, tampered_at=None).printer)
    assert states[0] is not None and states[0].paper is PaperState.OK
    # 104 receipts = 3,744 lines, then 6 lines of the 105th: the roll is empty
    assert states[103] is not None and states[103].lines == 3_744
    assert states[103].paper is PaperState.LOW
    assert states[104] is not None and (states[104].lines, states[104].paper) == (
        3_750,
        PaperState.OUT,
    )
    assert states[-1] is not None and states[-1].lines == 3_750  # nothing more printed
    # low under a tenth of a roll: 3,750 - 36 n < 375 from n = 94
    assert states[92] is not None and states[92].paper is PaperState.OK
    assert states[93] is not None and states[93].paper is PaperState.LOW


def test_battery_recharges_at_20_percent_and_counts_cycles() -> None:
    profile = PROFILES["VX-680"]  # 40 basis points a sale
    wear = Wear.fresh(profile)
    for _ in range(199):  # 199 × 0.40 % = 79.6 %: level 20.4 %
        wear = after_sale(wear, profile, EntryMode.CHIP, approved=True)
    assert wear.battery_level_bp == 2_040
    wear = after_sale(wear, profile, EntryMode.CHIP, approved=True)  # 20.0 %: recharged
    assert wear.battery_level_bp == 10_000
    assert wear.battery_used_bp == 200 * 40 and wear.battery_cycles == 0
    for _ in range(50):  # 250 sales × 0.40 % = 100 % used: one full cycle
        wear = after_sale(wear, profile, EntryMode.CHIP, approved=True)
    assert wear.battery_cycles == 1
    battery = health_info(wear, profile, uptime=0, tampered_at=None).battery
    assert battery is not None and (battery.level, battery.cycles) == (80, 1)


@pytest.mark.parametrize(
    ("cycles", "health"), [(0, 100), (250, 90), (500, 80), (1000, 60), (2500, 0), (9999, 0)]
)
def test_battery_capacity_fades_with_cycles(cycles: int, health: int) -> None:
    assert battery_health(PROFILES["VX-680"], cycles) == health  # 80 % at 500 rated cycles


def test_models_differ() -> None:
    countertop = health_info(Wear.fresh(PROFILES["PF-200"]), PROFILES["PF-200"], uptime=5,
                             tampered_at=None)  # fmt: skip
    assert countertop.battery is None and countertop.printer is not None
    assert countertop.free_storage == (256 - 120) * 2**20
    portable = health_info(Wear.fresh(PROFILES["VX-680"]), PROFILES["VX-680"], uptime=5,
                           tampered_at=None)  # fmt: skip
    assert portable.battery is not None and portable.battery.level == 100
    assert PROFILES["QR-10"].magstripe_rated is None
    assert PROFILES["VX-680"].battery_rated_cycles != PROFILES["PF-300"].battery_rated_cycles
    assert profile_for("NO-SUCH-MODEL") is GENERIC
    assert set(PROFILES) == {"PF-100", "PF-200", "PF-300", "VX-520", "VX-680", "QR-10"}


def test_every_catalog_model_has_a_profile() -> None:
    models = {
        line.split('"')[1] for line in CATALOG_TOML.splitlines() if line.startswith("code = ")
    }
    assert models == set(PROFILES)


def test_tamper_is_reported() -> None:
    at = datetime(2026, 11, 30, 8, tzinfo=UTC)
    info = health_info(Wear.fresh(GENERIC), GENERIC, uptime=9, tampered_at=at)
    assert info.tampered and info.tampered_at == at


def test_initial_wear_is_deterministic_per_seed_and_serial() -> None:
    p = PROFILES["PF-300"]
    a = initial_wear(WearProfile.MIXED, 1, "PS00000001", p, ALL, NOW)
    assert a == initial_wear(WearProfile.MIXED, 1, "PS00000001", p, ALL, NOW)
    assert a != initial_wear(WearProfile.MIXED, 2, "PS00000001", p, ALL, NOW)
    assert a != initial_wear(WearProfile.MIXED, 1, "PS00000002", p, ALL, NOW)


def _fleet(kind: WearProfile, model: str, n: int = 2000) -> list[tuple[Wear, bool]]:
    p = PROFILES[model]
    out = []
    for i in range(n):
        iw = initial_wear(kind, 11, f"PS{i:08d}", p, ALL, NOW)
        out.append((iw.wear, iw.tampered_at is not None))
    return out


def _past_rated(model: str, w: Wear) -> bool:
    p = PROFILES[model]
    return (
        w.chip > p.chip_rated
        or (p.printer_rated_lines is not None and w.printer_lines > p.printer_rated_lines)
        or (p.battery_rated_cycles is not None and w.battery_cycles > p.battery_rated_cycles)
    )


def test_profiles_give_a_realistic_spread() -> None:
    shares = {}
    for kind in WearProfile:
        fleet = _fleet(kind, "VX-680")
        worn = sum(_past_rated("VX-680", w) for w, _ in fleet) / len(fleet)
        tampered = sum(t for _, t in fleet) / len(fleet)
        shares[kind] = (worn, tampered)
    assert shares[WearProfile.NEW] == (0.0, 0.0)
    worn, tampered = shares[WearProfile.MIXED]
    assert 0.05 < worn < 0.6 and 0.005 < tampered < 0.04  # some worn out, a few tampered
    worn, tampered = shares[WearProfile.WORN]
    assert worn > 0.8 and 0.02 < tampered < 0.1


def test_initial_wear_respects_the_hardware() -> None:
    for wear, _ in _fleet(WearProfile.WORN, "QR-10", 300):
        assert wear.magstripe == 0  # no magstripe reader
    p = PROFILES["PF-200"]
    for i in range(300):
        w = initial_wear(WearProfile.MIXED, 3, f"PS{i:08d}", p, Capability.CHIP, NOW).wear
        assert w.contactless == 0 and w.magstripe == 0
        assert w.battery_used_bp == 0  # mains powered
        assert 0 <= w.paper_left <= p.roll_lines
        assert w.last_reboot in set(RebootReason)
