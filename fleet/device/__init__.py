"""Talking to one terminal: a session (resolve, open once, sign on once, identity check)
with sync, push and key change on top of it.

:mod:`.session` resolves a terminal and holds its link; :mod:`.keyring` holds the master
keys it signs with (the version the terminal reports); :mod:`.issued` the key versions
the fleet issued; :mod:`.sync` records a sign-on; :mod:`.push` downloads a table, verifies
it with a test sale and records the attempt; :mod:`.rotate` changes the terminal's key,
verifies that the old one is refused and records the attempt (:mod:`.attempts`).
"""

from __future__ import annotations

from fleet.device.batch import PushReport, group_terminals, push_many
from fleet.device.issued import IssuedKey, KeyCensus, attach, census, register, registered
from fleet.device.keyring import KeyFileError, KeyRing, MissingKeyError, UnissuedKeyError
from fleet.device.push import PushFailedError, PushOutcome, push_on, push_terminal
from fleet.device.rotate import RotationError, RotationOutcome, rotate_terminal
from fleet.device.session import DeviceError, DeviceSession, IdentityError, TerminalRef, resolve
from fleet.device.sync import SyncError, SyncResult, reaching, record_sign_on, sync, sync_many

__all__ = [
    "DeviceError",
    "DeviceSession",
    "IdentityError",
    "IssuedKey",
    "KeyCensus",
    "KeyFileError",
    "KeyRing",
    "MissingKeyError",
    "PushFailedError",
    "PushOutcome",
    "PushReport",
    "RotationError",
    "RotationOutcome",
    "SyncError",
    "SyncResult",
    "TerminalRef",
    "UnissuedKeyError",
    "attach",
    "census",
    "group_terminals",
    "push_many",
    "push_on",
    "push_terminal",
    "reaching",
    "record_sign_on",
    "register",
    "registered",
    "resolve",
    "rotate_terminal",
    "sync",
    "sync_many",
]
