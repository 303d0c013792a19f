"""Staged rollouts of a fee table or of a key change: pure waves and thresholds
(:mod:`.waves`), rollouts and jobs in the database (:mod:`.jobs`), key rollouts
(:mod:`.keys`), the worker that claims and works the jobs (:mod:`.worker`) and the events
it reports (:mod:`.events`)."""

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
    RolloutKind,
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
from fleet.rollout.keys import create_key_rollout
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
    "RolloutKind",
    "RolloutState",
    "RolloutStatus",
    "Started",
    "WaveOpened",
    "WaveStatus",
    "Worker",
    "cancel",
    "create",
    "create_key_rollout",
    "list_rollouts",
    "pause",
    "resume",
    "status",
]
