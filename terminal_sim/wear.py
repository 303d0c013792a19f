"""Hardware wear of an emulated terminal: per-model profiles, counters that grow with
sales, batteries that age with cycles, and seeded wear profiles for whole fleets.

Pure: no I/O. :class:`Wear` is the terminal's physical state (what
:mod:`terminal_sim.state` stores); :func:`after_sale` is what one sale does to it;
:func:`health_info` turns it into the wire's :class:`~protocols.health.HealthInfo`;
:func:`initial_wear` gives a terminal of a fleet its starting wear from a profile
(``new``, ``mixed``, ``worn``) and a seed — the same seed and serial, the same wear.

Models are those of the sample catalog (``fleet/sample/seed.py``); any other model gets
the generic countertop profile. The rated lives below are what possim emulates; see
docs/terminal.md for the table.

>>> pf300 = profile_for("PF-300")
>>> w = after_sale(Wear.fresh(pf300), pf300, EntryMode.CONTACTLESS, approved=True)
>>> (w.chip, w.contactless, w.magstripe, w.printer_lines, w.battery_level_bp)
(0, 1, 0, 36, 9970)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from protocols.health import Battery, CardReads, HealthInfo, PaperState, Printer, RebootReason
from protocols.messages import EntryMode
from protocols.values import Capability
from terminal_sim.wear_profile import WearProfile

__all__ = [
    "GENERIC",
    "PROFILES",
    "InitialWear",
    "ModelProfile",
    "Wear",
    "WearProfile",
    "after_sale",
    "health_info",
    "initial_wear",
    "profile_for",
]

FULL_BP = 10_000
"""A full battery, in basis points of its capacity."""
RECHARGE_AT_BP = 2_000
"""The merchant puts a portable on its cradle at 20 % (it is back at 100 % by the next sale)."""
LOW_PAPER = 0.10
"""Paper is low under a tenth of a roll."""
DECLINE_SLIP_LINES = 8
LOG_BYTES_PER_SALE = 256


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model is made of, and how long its parts are rated to last."""

    model: str
    chip_rated: int
    """Chip card insertions the reader's contacts are rated for."""
    magstripe_rated: int | None
    """Swipes the magnetic head is rated for (None: no magstripe reader)."""
    printer_rated_lines: int | None
    """Lines the thermal print head is rated for (None: no printer)."""
    roll_lines: int
    """Lines one paper roll holds."""
    receipt_lines: int
    """Lines an approved sale prints (both copies)."""
    battery_rated_cycles: int | None
    """Full charge cycles to 80 % capacity (None: mains powered, no battery)."""
    battery_bp_per_sale: int
    """Charge one sale uses, basis points of capacity."""
    storage: int
    """Bytes of storage."""
    firmware_bytes: int
    """Bytes the firmware and applications take."""
    log_cap: int
    """Most bytes the logs take before they rotate."""


MIB = 1 << 20
PROFILES: dict[str, ModelProfile] = {
    p.model: p
    for p in (
        ModelProfile("PF-100", 300_000, 500_000, 8_000_000, 12_500, 40, None, 0,
                     64 * MIB, 40 * MIB, 8 * MIB),
        ModelProfile("PF-200", 500_000, 1_000_000, 10_000_000, 12_500, 40, None, 0,
                     256 * MIB, 120 * MIB, 32 * MIB),
        ModelProfile("PF-300", 500_000, 1_000_000, 6_000_000, 3_750, 36, 800, 30,
                     8192 * MIB, 3072 * MIB, 256 * MIB),
        ModelProfile("VX-520", 500_000, 1_000_000, 10_000_000, 12_500, 40, None, 0,
                     160 * MIB, 96 * MIB, 16 * MIB),
        ModelProfile("VX-680", 300_000, 500_000, 5_000_000, 3_750, 36, 500, 40,
                     512 * MIB, 256 * MIB, 64 * MIB),
        ModelProfile("QR-10", 300_000, None, 6_000_000, 3_750, 36, 600, 30,
                     4096 * MIB, 2048 * MIB, 256 * MIB),
    )
}  # fmt: skip
"""possim's model profiles, by catalog model code."""
GENERIC = replace(PROFILES["PF-200"], model="generic")
"""The profile of a model possim does not know: a mains-powered countertop with printer."""


def profile_for(model: str) -> ModelProfile:
    return PROFILES.get(model, GENERIC)


@dataclass(frozen=True, slots=True)
class Wear:
    """A terminal's physical state: counters since manufacture and consumables."""

    chip: int
    contactless: int
    magstripe: int
    printer_lines: int
    paper_left: int
    """Lines left on the roll."""
    battery_level_bp: int
    battery_used_bp: int
    """Charge used since manufacture (basis points of capacity): cycles = this ÷ 10,000."""
    logs_bytes: int
    last_reboot: RebootReason = RebootReason.POWER_ON

    @classmethod
    def fresh(cls, profile: ModelProfile) -> Wear:
        """Out of the box: nothing counted, a full roll, a full battery."""
        return cls(0, 0, 0, 0, profile.roll_lines, FULL_BP, 0, 0)

    @property
    def battery_cycles(self) -> int:
        return self.battery_used_bp // FULL_BP


_READER = {
    EntryMode.CHIP: "chip",
    EntryMode.CONTACTLESS: "contactless",
    EntryMode.MAGSTRIPE: "magstripe",
}


def after_sale(wear: Wear, profile: ModelProfile, entry: EntryMode, *, approved: bool) -> Wear:
    """One sale: a card read on its interface (none for QR), a receipt (or a decline slip)
    while paper lasts, a little battery charge (recharged at 20 %), a log line."""
    changes: dict[str, Any] = {}
    reader = _READER.get(entry)
    if reader is not None:
        changes[reader] = getattr(wear, reader) + 1
    if profile.printer_rated_lines is not None:
        lines = min(wear.paper_left, profile.receipt_lines if approved else DECLINE_SLIP_LINES)
        changes["printer_lines"] = wear.printer_lines + lines
        changes["paper_left"] = wear.paper_left - lines
    if profile.battery_rated_cycles is not None:
        level = wear.battery_level_bp - profile.battery_bp_per_sale
        changes["battery_level_bp"] = FULL_BP if level <= RECHARGE_AT_BP else level
        changes["battery_used_bp"] = wear.battery_used_bp + profile.battery_bp_per_sale
    changes["logs_bytes"] = min(wear.logs_bytes + LOG_BYTES_PER_SALE, profile.log_cap)
    return replace(wear, **changes)


def battery_health(profile: ModelProfile, cycles: int) -> int:
    """Capacity left, % of new: 100 % new, 80 % at the rated cycles, linear, never below 0.

    >>> battery_health(PROFILES["VX-680"], 0), battery_health(PROFILES["VX-680"], 500)
    (100, 80)
    >>> battery_health(PROFILES["VX-680"], 750), battery_health(PROFILES["VX-680"], 10**6)
    (70, 0)
    """
    rated = profile.battery_rated_cycles
    if rated is None:
        return 0
    return max(0, 100 - (cycles * 20) // rated)


def health_info(
    wear: Wear,
    profile: ModelProfile,
    *,
    uptime: int,
    tampered_at: datetime | None,
) -> HealthInfo:
    """The wire's health of a terminal in this state."""
    battery = printer = None
    if profile.battery_rated_cycles is not None:
        battery = Battery(
            level=wear.battery_level_bp * 100 // FULL_BP,
            health=battery_health(profile, wear.battery_cycles),
            cycles=min(wear.battery_cycles, 2**32 - 1),
        )
    if profile.printer_rated_lines is not None:
        if wear.paper_left <= 0:
            paper = PaperState.OUT
        elif wear.paper_left < profile.roll_lines * LOW_PAPER:
            paper = PaperState.LOW
        else:
            paper = PaperState.OK
        printer = Printer(paper, lines=min(wear.printer_lines, 2**32 - 1))
    used = profile.firmware_bytes + wear.logs_bytes
    return HealthInfo(
        card_reads=CardReads(
            chip=min(wear.chip, 2**32 - 1),
            contactless=min(wear.contactless, 2**32 - 1),
            magstripe=min(wear.magstripe, 2**32 - 1),
        ),
        uptime=max(0, min(uptime, 2**32 - 1)),
        last_reboot=wear.last_reboot,
        free_storage=max(0, profile.storage - used),
        battery=battery,
        printer=printer,
        tampered=tampered_at is not None,
        tampered_at=tampered_at,
    )


# --- wear profiles for fleets -------------------------------------------------------------
# (:class:`WearProfile` itself lives in terminal_sim/wear_profile.py, light for `possim`.)


@dataclass(frozen=True, slots=True)
class InitialWear:
    """A fleet terminal's starting state: its wear and, if tampered, when it tripped."""

    wear: Wear
    tampered_at: datetime | None = None


# (days in service lo/hi, skew of the age (beta a, b), median sales a day, share tampered,
#  share with low paper, share out of paper)
_SPREAD = {
    WearProfile.NEW: (0, 180, (1.0, 1.0), 40, 0.0, 0.03, 0.0),
    WearProfile.MIXED: (0, 8 * 365, (1.3, 2.5), 60, 0.015, 0.06, 0.02),
    WearProfile.WORN: (4 * 365, 10 * 365, (2.0, 1.5), 150, 0.05, 0.10, 0.05),
}
_REBOOTS = (
    (RebootReason.POWER_ON, 50),
    (RebootReason.RESTART, 25),
    (RebootReason.POWER_LOSS, 10),
    (RebootReason.WATCHDOG, 8),
    (RebootReason.FIRMWARE_UPDATE, 7),
)


def initial_wear(
    kind: WearProfile,
    seed: int,
    serial: str,
    profile: ModelProfile,
    capabilities: Capability,
    now: datetime,
) -> InitialWear:
    """The starting wear of terminal ``serial`` in a ``kind`` fleet (deterministic).

    >>> from datetime import UTC
    >>> now = datetime(2026, 12, 1, tzinfo=UTC)
    >>> a = initial_wear(WearProfile.MIXED, 7, "PS00000001", PROFILES["VX-680"],
    ...                  Capability.CHIP | Capability.MAGSTRIPE, now)
    >>> a == initial_wear(WearProfile.MIXED, 7, "PS00000001", PROFILES["VX-680"],
    ...                   Capability.CHIP | Capability.MAGSTRIPE, now)
    True
    >>> a.wear.contactless  # no contactless reader: no contactless reads
    0
    """
    rng = random.Random(f"{kind.value}:{seed}:{serial}")
    days_lo, days_hi, (alpha, beta), median, tamper, low, out = _SPREAD[kind]
    days = days_lo + (days_hi - days_lo) * rng.betavariate(alpha, beta)
    rate = min(max(rng.lognormvariate(math.log(median), 0.7), 3.0), 800.0)
    sales = int(days * rate)
    if Capability.CONTACTLESS in capabilities:
        chip_share, tap_share = rng.uniform(0.25, 0.5), rng.uniform(0.4, 0.65)
    else:
        chip_share, tap_share = rng.uniform(0.7, 0.9), 0.0
    mag_share = max(0.0, 1.0 - chip_share - tap_share)
    if Capability.MAGSTRIPE not in capabilities or profile.magstripe_rated is None:
        chip_share, mag_share = chip_share + mag_share, 0.0
    wear = Wear.fresh(profile)
    dice = rng.random()
    paper_left = profile.roll_lines
    if dice < out:
        paper_left = 0
    elif dice < out + low:
        paper_left = int(profile.roll_lines * rng.uniform(0.0, LOW_PAPER))
    else:
        paper_left = int(profile.roll_lines * rng.uniform(LOW_PAPER, 1.0))
    used_bp = 0
    if profile.battery_rated_cycles is not None:
        used_bp = int(days * min(1.0, rate * profile.battery_bp_per_sale / 8_000) * FULL_BP)
    reasons, weights = zip(*_REBOOTS, strict=True)
    wear = replace(
        wear,
        chip=int(sales * chip_share),
        contactless=int(sales * tap_share),
        magstripe=int(sales * mag_share),
        printer_lines=sales * (profile.receipt_lines - 6)
        if profile.printer_rated_lines is not None
        else 0,
        paper_left=paper_left if profile.printer_rated_lines is not None else 0,
        battery_level_bp=rng.randrange(RECHARGE_AT_BP, FULL_BP + 1)
        if profile.battery_rated_cycles is not None
        else FULL_BP,
        battery_used_bp=used_bp,
        logs_bytes=int(profile.log_cap * rng.uniform(0.05, 1.0)) if days else 0,
        last_reboot=RebootReason(rng.choices(reasons, weights)[0]),
    )
    tampered_at = None
    if rng.random() < tamper:
        tampered_at = (now - timedelta(seconds=rng.randrange(3600, 90 * 86400))).replace(
            microsecond=0
        )
    return InitialWear(wear, tampered_at)
