"""Talking to one terminal: a session (resolve, open once, sign on once, identity check)
with sync and push on top of it.

:mod:`.session` resolves a terminal and holds its link; :mod:`.sync` records a sign-on;
:mod:`.push` downloads a table, verifies it with a test sale and records the attempt.
"""

from __future__ import annotations

from fleet.device.batch import PushReport, group_terminals, push_many
from fleet.device.push import PushFailedError, PushOutcome, push_on, push_terminal
from fleet.device.session import DeviceError, DeviceSession, IdentityError, TerminalRef, resolve
from fleet.device.sync import SyncError, SyncResult, reaching, record_sign_on, sync

__all__ = [
    "DeviceError",
    "DeviceSession",
    "IdentityError",
    "PushFailedError",
    "PushOutcome",
    "PushReport",
    "SyncError",
    "SyncResult",
    "TerminalRef",
    "group_terminals",
    "push_many",
    "push_on",
    "push_terminal",
    "reaching",
    "record_sign_on",
    "resolve",
    "sync",
]
