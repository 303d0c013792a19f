"""What a rollout worker reports as it goes: one typed event per happening (the CLI's
progress bars, the console's live view)."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.device.push import PushOutcome

__all__ = [
    "Event",
    "Finished",
    "Halted",
    "JobLost",
    "Progressed",
    "RolloutDone",
    "Started",
    "WaveOpened",
]


@dataclass(frozen=True, slots=True)
class Started:
    serial: str
    attempt: int
    owner: str
    taken_over: bool
    """The job's previous worker lost its lease (died)."""


@dataclass(frozen=True, slots=True)
class Progressed:
    serial: str
    stored: int
    count: int
    owner: str


@dataclass(frozen=True, slots=True)
class Finished:
    serial: str
    result: str
    """``done``, ``failed`` (no attempts left), ``pending`` (will retry) or ``lost``."""
    error: str | None
    outcome: PushOutcome | None
    owner: str
    attempt: int


@dataclass(frozen=True, slots=True)
class JobLost:
    serial: str
    owner: str


@dataclass(frozen=True, slots=True)
class WaveOpened:
    rollout: int
    wave: int
    """1-based."""


@dataclass(frozen=True, slots=True)
class Halted:
    rollout: int
    failed: int
    of: int


@dataclass(frozen=True, slots=True)
class RolloutDone:
    rollout: int


Event = Started | Progressed | Finished | JobLost | WaveOpened | Halted | RolloutDone
