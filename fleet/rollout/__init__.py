"""Staged rollouts of a fee table: pure waves and thresholds (:mod:`.waves`), rollouts and
jobs in the database (:mod:`.jobs`), the worker that claims and pushes (:mod:`.worker`)
and the events it reports (:mod:`.events`)."""

from __future__ import annotations

from fleet.rollout.events import (
    Event,
    Finished,
    Halted,
    JobLost,
    Progressed,
    RolloutDone,
    Started,
    WaveOpened,
)
from fleet.rollout.jobs import (
    JobProblem,
    RolloutError,
    RolloutState,
    RolloutStatus,
    WaveStatus,
    cancel,
    create,
    list_rollouts,
    pause,
    resume,
    status,
)
from fleet.rollout.worker import Worker

__all__ = [
    "Event",
    "Finished",
    "Halted",
    "JobLost",
    "JobProblem",
    "Progressed",
    "RolloutDone",
    "RolloutError",
    "RolloutState",
    "RolloutStatus",
    "Started",
    "WaveOpened",
    "WaveStatus",
    "Worker",
    "cancel",
    "create",
    "list_rollouts",
    "pause",
    "resume",
    "status",
]
