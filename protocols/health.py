"""Terminal health on the wire: TLV tags 0x10-0x16 (an addition to v1, docs/protocol.md).

The terminal reports its health in the sign-on response (0810/001, after the v1 tags) and
in the response to the light health poll (0810/303). :class:`HealthInfo` is the typed
value of those tags:

=====  ==============  ==========================================================
tag    value           meaning
=====  ==============  ==========================================================
0x10   u8 u8 u32       battery: charge level %, capacity left % of new, full
                       charge cycles. Absent: the terminal has no battery.
0x11   u8 u32          printer: paper (0 ok, 1 low, 2 out) and lines printed.
                       Absent: the terminal has no printer.
0x12   u32 u32 u32     card reads since manufacture: chip, contactless, magstripe
0x13   u8 u64          tamper switch: 0 intact / 1 tripped, and when it tripped
                       (Unix seconds UTC; 0 = intact, or tripped at an unknown time)
0x14   u32             uptime, seconds since the last boot
0x15   u8              reason of the last boot (:class:`RebootReason`)
0x16   u64             free storage, bytes
=====  ==============  ==========================================================

0x12-0x16 are required whenever health is reported; 0x10 and 0x11 are optional.

>>> from datetime import UTC, datetime
>>> h = HealthInfo(card_reads=CardReads(chip=120, contactless=300, magstripe=4),
...                uptime=3600, last_reboot=RebootReason.POWER_ON, free_storage=2**20,
...                battery=Battery(level=80, health=97, cycles=41),
...                printer=Printer(PaperState.LOW, lines=12_000))
>>> raw = h.to_tlv()
>>> raw[:8].hex(" ")
'10 06 50 61 00 00 00 29'
>>> HealthInfo.from_tlv(raw) == h
True

Decoding is strict, like every TLV of :mod:`protocols.tlv`: a value out of range raises
:class:`~protocols.errors.TLVError` naming the tag and the byte offset of its item:

>>> HealthInfo.from_tlv(bytes.fromhex("10 06 65 61 00000029") + raw[8:])
Traceback (most recent call last):
...
protocols.errors.TLVError: field 62 tag 0x10 at byte 0: BATTERY charge level 101 is not 0..100
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Final, Self

from protocols.errors import EncodeError
from protocols.tlv import Tag, TLVReader, build_value, check_uint, encode_tlv, tag_field
from protocols.values import MAX_UNIX_SECONDS, unix_seconds, utc_datetime

__all__ = [
    "HEALTH_TAGS",
    "Battery",
    "CardReads",
    "HealthInfo",
    "PaperState",
    "Printer",
    "RebootReason",
]

HEALTH_TAGS: Final = (
    Tag.BATTERY,
    Tag.PRINTER,
    Tag.CARD_READS,
    Tag.TAMPER,
    Tag.UPTIME,
    Tag.REBOOT_REASON,
    Tag.FREE_STORAGE,
)
"""The health tags, in the order they are sent."""
_F: Final = {tag: tag_field(tag) for tag in HEALTH_TAGS}
_REQUIRED: Final = (Tag.CARD_READS, Tag.TAMPER, Tag.UPTIME, Tag.REBOOT_REASON, Tag.FREE_STORAGE)


class PaperState(IntEnum):
    """Tag 0x11, first byte."""

    OK = 0
    LOW = 1
    """Under a tenth of a roll left."""
    OUT = 2


class RebootReason(IntEnum):
    """Tag 0x15: why the terminal last booted."""

    UNKNOWN = 0
    POWER_ON = 1
    """First boot, or switched on by its owner."""
    RESTART = 2
    """An orderly restart (operator, scheduled, or after a clean shutdown)."""
    POWER_LOSS = 3
    """Power was cut (or the process was killed) while it ran."""
    WATCHDOG = 4
    """The watchdog reset a hung terminal."""
    FIRMWARE_UPDATE = 5
    TAMPER = 6
    """The tamper response rebooted it."""


@dataclass(frozen=True, slots=True)
class Battery:
    """Tag 0x10. ``level``: charge now, % (0..100); ``health``: capacity left, % of new
    (0..100); ``cycles``: full charge cycles since manufacture."""

    level: int
    health: int
    cycles: int

    def __post_init__(self) -> None:
        for name, value in (("charge level", self.level), ("capacity", self.health)):
            if check_uint(Tag.BATTERY, value, 8) > 100:
                raise EncodeError(f"battery {name} {value} is not 0..100", field=_F[Tag.BATTERY])
        check_uint(Tag.BATTERY, self.cycles, 32)


@dataclass(frozen=True, slots=True)
class Printer:
    """Tag 0x11: paper state and lines printed since manufacture."""

    paper: PaperState
    lines: int

    def __post_init__(self) -> None:
        if isinstance(self.paper, bool) or self.paper not in set(PaperState):
            raise EncodeError(f"paper state {self.paper!r} is not 0..2", field=_F[Tag.PRINTER])
        object.__setattr__(self, "paper", PaperState(self.paper))
        check_uint(Tag.PRINTER, self.lines, 32)


@dataclass(frozen=True, slots=True)
class CardReads:
    """Tag 0x12: card reads by interface since manufacture."""

    chip: int
    contactless: int
    magstripe: int

    def __post_init__(self) -> None:
        for value in (self.chip, self.contactless, self.magstripe):
            check_uint(Tag.CARD_READS, value, 32)


@dataclass(frozen=True, slots=True)
class HealthInfo:
    """Tags 0x10-0x16 of a sign-on or health response (see the module docstring).

    ``tampered_at`` is None when the switch is intact, or when it tripped at an unknown
    time (``tampered`` tells the two apart). ``uptime`` is in seconds.
    """

    card_reads: CardReads
    uptime: int
    last_reboot: RebootReason
    free_storage: int
    battery: Battery | None = None
    printer: Printer | None = None
    tampered: bool = False
    tampered_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.card_reads, CardReads):
            raise EncodeError("card_reads must be a CardReads", field=_F[Tag.CARD_READS])
        check_uint(Tag.UPTIME, self.uptime, 32)
        if isinstance(self.last_reboot, bool) or self.last_reboot not in set(RebootReason):
            raise EncodeError(
                f"reboot reason {self.last_reboot!r} is not 0..{max(RebootReason)}",
                field=_F[Tag.REBOOT_REASON],
            )
        object.__setattr__(self, "last_reboot", RebootReason(self.last_reboot))
        check_uint(Tag.FREE_STORAGE, self.free_storage, 64)
        if self.battery is not None and not isinstance(self.battery, Battery):
            raise EncodeError("battery must be a Battery or None", field=_F[Tag.BATTERY])
        if self.printer is not None and not isinstance(self.printer, Printer):
            raise EncodeError("printer must be a Printer or None", field=_F[Tag.PRINTER])
        if not isinstance(self.tampered, bool):
            raise EncodeError("tampered must be a bool", field=_F[Tag.TAMPER])
        if self.tampered_at is not None:
            if not self.tampered:
                raise EncodeError("tampered_at given but tampered is False", field=_F[Tag.TAMPER])
            seconds = unix_seconds(self.tampered_at, field=_F[Tag.TAMPER])
            if seconds == 0:
                raise EncodeError("tampered_at 0 means 'unknown': give None", field=_F[Tag.TAMPER])
            object.__setattr__(self, "tampered_at", utc_datetime(seconds))

    def to_tlv(self) -> bytes:
        """The health items, tags in ascending order (0x10 and 0x11 only when present)."""
        items: list[tuple[int, bytes]] = []
        if self.battery is not None:
            b = self.battery
            value = {"level": b.level, "health": b.health, "cycles": b.cycles}
            items.append((Tag.BATTERY, build_value(Tag.BATTERY, value)))
        if self.printer is not None:
            p = self.printer
            value = {"paper": int(p.paper), "lines": p.lines}
            items.append((Tag.PRINTER, build_value(Tag.PRINTER, value)))
        reads = {
            "chip": self.card_reads.chip,
            "contactless": self.card_reads.contactless,
            "magstripe": self.card_reads.magstripe,
        }
        at = 0 if self.tampered_at is None else unix_seconds(self.tampered_at)
        tamper = {"state": int(self.tampered), "at": at}
        items += [
            (Tag.CARD_READS, build_value(Tag.CARD_READS, reads)),
            (Tag.TAMPER, build_value(Tag.TAMPER, tamper)),
            (Tag.UPTIME, build_value(Tag.UPTIME, self.uptime)),
            (Tag.REBOOT_REASON, build_value(Tag.REBOOT_REASON, int(self.last_reboot))),
            (Tag.FREE_STORAGE, build_value(Tag.FREE_STORAGE, self.free_storage)),
        ]
        return encode_tlv(items)

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read the health tags of a field 62 (other tags skipped); TLVError on any fault."""
        return cls._read(TLVReader(data))

    @classmethod
    def from_tlv_optional(cls, data: bytes) -> Self | None:
        """Like :meth:`from_tlv`, but None when no health tag is present (a v1 terminal).

        >>> HealthInfo.from_tlv_optional(bytes.fromhex("0b02 1523")) is None
        True
        """
        reader = TLVReader(data)
        if not any(reader.has(tag) for tag in HEALTH_TAGS):
            return None
        return cls._read(reader)

    @classmethod
    def _read(cls, r: TLVReader) -> Self:
        for tag in _REQUIRED:
            r.raw(tag)  # TLVError naming the missing tag
        battery = printer = None
        if r.has(Tag.BATTERY):
            v = r.value(Tag.BATTERY)
            if v.level > 100:
                raise r.error(Tag.BATTERY, f"BATTERY charge level {v.level} is not 0..100")
            if v.health > 100:
                raise r.error(Tag.BATTERY, f"BATTERY capacity {v.health} is not 0..100")
            battery = Battery(level=v.level, health=v.health, cycles=v.cycles)
        if r.has(Tag.PRINTER):
            v = r.value(Tag.PRINTER)
            if v.paper not in set(PaperState):
                raise r.error(Tag.PRINTER, f"PRINTER paper state {v.paper} is not 0..2")
            printer = Printer(PaperState(v.paper), lines=v.lines)
        reads = r.value(Tag.CARD_READS)
        tamper = r.value(Tag.TAMPER)
        if tamper.state > 1:
            raise r.error(Tag.TAMPER, f"TAMPER state {tamper.state} is not 0 (intact) or 1")
        if tamper.state == 0 and tamper.at != 0:
            raise r.error(Tag.TAMPER, f"TAMPER is intact but says it tripped at {tamper.at}")
        if tamper.at > MAX_UNIX_SECONDS:
            raise r.error(Tag.TAMPER, f"TAMPER time {tamper.at} is beyond 9999")
        reason = r.uint(Tag.REBOOT_REASON)
        if reason not in set(RebootReason):
            raise r.error(
                Tag.REBOOT_REASON, f"REBOOT_REASON {reason} is not 0..{max(RebootReason)}"
            )
        return cls(
            card_reads=CardReads(reads.chip, reads.contactless, reads.magstripe),
            uptime=r.uint(Tag.UPTIME),
            last_reboot=RebootReason(reason),
            free_storage=r.uint(Tag.FREE_STORAGE),
            battery=battery,
            printer=printer,
            tampered=tamper.state == 1,
            tampered_at=utc_datetime(tamper.at) if tamper.at else None,
        )
