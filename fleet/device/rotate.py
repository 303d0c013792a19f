"""Change one terminal's MAC key to the fleet's key of a new version, verify, record.

Over a :class:`~fleet.device.session.DeviceSession` signed on with a key ring:

1. the terminal reports its key versions (tag 0x20); a version the fleet never issued
   fails the change at once (:class:`~fleet.device.keyring.UnissuedKeyError`, recorded);
2. :meth:`protocols.session.HostSession.rotate_key` changes the key (0800/161, signed with
   the terminal's current key, the new key wrapped under it) and confirms it (0800/162,
   signed with the new key), **resuming** from what the terminal reports: a change that a
   dead worker left unconfirmed is only confirmed, a terminal already on the key gets
   nothing;
3. **verify**: the terminal must report the new version alone, and a request signed with
   each old key the ring holds must be refused ``A0`` — the refusal itself signed with the
   new key, which proves the terminal holds it;
4. keep the attempt (``push_attempt``, kind ``key``), the terminal's key versions and
   ``last_seen``, and an audit entry (versions only: never a key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import TERMINALS, now
from fleet.device.attempts import Attempt, recorded
from fleet.device.keyring import KeyRing
from fleet.device.session import DeviceError, DeviceSession, TerminalRef
from protocols import messages as m
from protocols.keys import KeyConfirm, KeyVersions
from protocols.mac import TerminalKey
from protocols.session import RotationStep

__all__ = ["ROTATION_STEPS", "RotationError", "RotationOutcome", "rotate_terminal"]

ROTATION_STEPS = 3
"""Progress of one terminal's change: signed on (1), changed (2), confirmed (3)."""
_STEP = {RotationStep.SIGNED_ON: 1, RotationStep.CHANGED: 2, RotationStep.CONFIRMED: 3}


class RotationError(DeviceError):
    """The key change or its verification failed; the message says where (kept in the
    attempt). ``retryable`` when the link broke: the next attempt resumes."""


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    serial: str
    version: int
    """The key version the terminal uses now."""
    previous: int
    """The version it used when this attempt signed on."""
    outcome: str
    """``changed`` (change and confirmation sent), ``confirmed`` (a change made before,
    confirmed now) or ``already`` (nothing to send)."""
    old_refused: tuple[int, ...]
    """Old key versions the terminal was seen to refuse (``A0``)."""

    def describe(self) -> str:
        what = {
            "changed": f"key v{self.previous} → v{self.version}",
            "confirmed": f"key v{self.version} confirmed (changed before)",
            "already": f"already on key v{self.version}",
        }[self.outcome]
        refused = ", ".join(f"v{v}" for v in self.old_refused)
        return what + (f"; old key {refused} refused" if refused else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "key_version": self.version,
            "previous": self.previous,
            "outcome": self.outcome,
            "old_key_refused": list(self.old_refused),
        }


def rotate_terminal(
    engine: Engine,
    ref: TerminalRef,
    version: int,
    *,
    keys: KeyRing,
    actor: str,
    old: int | None = None,
    baud: int = 115200,
    t2: float = 5.0,
    t1_margin: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    worker: str = "",
    job_id: int | None = None,
) -> RotationOutcome:
    """Move terminal ``ref`` to key ``version`` (see the module's notes). ``old``: the
    version the rollout moves terminals from (checked refused too, besides the one the
    terminal held). ``progress(step, 3)`` after each step. Raises :class:`RotationError`."""
    attempt = Attempt(engine, ref.serial, version, worker, job_id, kind="key")
    with (
        recorded(attempt, RotationError),
        DeviceSession(ref, keys=keys, baud=baud, t2=t2, t1_margin=t1_margin) as dev,
    ):
        outcome = _rotate(dev, keys, version, old, progress)
    _record_success(attempt, outcome, actor=actor, url=ref.url)
    return outcome


def _rotate(
    dev: DeviceSession,
    ring: KeyRing,
    version: int,
    old: int | None,
    progress: Callable[[int, int], None] | None,
) -> RotationOutcome:
    serial, held = dev.ref.serial, dev.held
    ring.check_issued(serial, held)
    new = ring.terminal_key(version, serial)
    if held.current > version:
        raise RotationError(
            f"holds key version {held.current}, newer than {version}: nothing to do here",
            where=serial,
        )
    if version not in (held.current, held.next):
        ring.master(held.current, serial)  # the change is signed with the current key

    def step(done: RotationStep) -> None:
        if progress is not None:
            progress(_STEP[done], ROTATION_STEPS)

    result = dev.host.rotate_key(new, step, signed_on=dev.signed)
    if result.keys != KeyVersions(version):
        raise RotationError(
            f"after the key change it reports key version {_versions(result.keys)}, not "
            f"{version} alone",
            where=serial,
        )
    refused = []
    for v in sorted({held.current, old or 0} - {0, version}):
        if v in ring.masters:
            _refuses(dev, ring.terminal_key(v, serial), new)
            refused.append(v)
    outcome = "already" if result.already else "changed" if result.changed else "confirmed"
    return RotationOutcome(serial, version, held.current, outcome, tuple(refused))


def _versions(held: KeyVersions | None) -> str:
    if held is None:
        return "none"
    return f"{held.current}" + (f" (next {held.next})" if held.next else "")


def _refuses(dev: DeviceSession, old: TerminalKey, new: TerminalKey) -> None:
    """A confirmation of ``new`` signed with ``old`` must be refused ``A0``, the refusal
    signed with ``new``: the terminal holds the new key and no longer accepts the old."""
    host = dev.host
    request = m.key_confirm(host.stan.next(), host.tid, KeyConfirm(new.version).to_tlv())
    response = host.exchange(request, signed=True, key=old.key)
    code = response.text(39)
    if code != m.ResponseCode.MAC_FAILED:
        raise RotationError(
            f"still accepts the old key v{old.version}: a request signed with it was "
            f"answered {code}, not A0",
            where=dev.ref.serial,
        )
    m.verify(response, new.key)


def _record_success(attempt: Attempt, outcome: RotationOutcome, *, actor: str, url: str) -> None:
    finished = now()
    with writer(attempt.engine).begin() as conn:
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == attempt.serial)
            .values(key_version=outcome.version, key_next=0, last_seen=finished)
        )
        attempt.insert_success(conn, finished, outcome=outcome.outcome)
        audit.record(
            conn,
            actor=actor,
            action="key",
            target=f"terminal:{attempt.serial}",
            details=outcome.as_dict() | {"url": url, "worker": attempt.worker},
            at=finished,
        )
