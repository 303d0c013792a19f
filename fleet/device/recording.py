"""Keeping the results of fee-table pushes: every attempt (``push_attempt``) and, for a
success, the terminal's versions, ``last_seen`` and key versions and an audit entry — for
a batch of pushes (the engine's, :mod:`fleet.rollout.pusher`) or for one
(:func:`fleet.device.push.push_terminal`), with a few statements whatever the number.

A success's outcome over all its attempts (:attr:`Pushed.whole`) counts the failed
attempts since the terminal's last finished attempt at the same version, and the blocks
they sent: a download committed by an attempt whose link broke, then found in place by
the next, was pushed, not "already" there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from fleet.core.clauses import AUDIT_CLAUSE
from fleet.core.models import ATTEMPTS, TERMINALS
from fleet.device.attempts import Attempt
from fleet.device.keyring import UnissuedKeyError
from fleet.device.session import TerminalRef
from protocols.flows import SignOn

if TYPE_CHECKING:
    from fleet.device.push import PushOutcome

__all__ = ["Pushed", "record_pushes"]


@dataclass(slots=True)
class Pushed:
    """One finished push: its attempt and its outcome, or its error (``retryable`` when
    the link broke)."""

    attempt: Attempt
    ref: TerminalRef
    outcome: PushOutcome | None = None
    error: str | None = None
    retryable: bool = False
    reason: str | None = None
    """:attr:`DeviceError.reason` of a fleet-side refusal (``unissued_key``...)."""
    signed: SignOn | None = None
    unissued: UnissuedKeyError | None = None
    whole: PushOutcome | None = field(default=None)
    """The outcome over all attempts, set by :func:`record_pushes`."""


def record_pushes(conn: Connection, pushes: Sequence[Pushed], *, actor: str, at: datetime) -> None:
    """Keep every push's attempt and, for a success, the terminal's versions and an audit
    entry, in the caller's transaction (see the module docstring). Sets each success's
    :attr:`Pushed.whole`."""
    attempts: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    terminals: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    """Successes without a sign-on to read key versions from."""
    unissued: list[dict[str, Any]] = []
    earlier = _earlier_failures_of(conn, [p.attempt for p in pushes if p.outcome is not None])
    for p in pushes:
        a = p.attempt
        if p.outcome is None:
            attempts.append(
                a.row(at, outcome="error", error=(p.error or "")[:500],
                      resumed_from=a.resumed_from or 0, blocks_sent=a.sent, test_fee=None)
            )  # fmt: skip
            if p.unissued is not None:
                bad = p.unissued.held
                unissued.append(
                    {"b_serial": a.serial, "key_version": bad.current, "key_next": bad.next}
                )
            continue
        outcome = p.outcome
        failed, sent_before = earlier.get((a.serial, a.kind, a.version), (0, 0))
        whole = outcome
        if failed:
            whole = replace(
                outcome,
                outcome="pushed" if outcome.outcome == "pushed" or sent_before else "already",
                sent=outcome.sent + sent_before,
                attempts=failed + 1,
            )
        p.whole = whole
        row = {
            "b_serial": a.serial,
            "active_version": outcome.active_version,
            "pending_version": outcome.pending_version,
            "last_seen": at,
        }
        if p.signed is None:
            plain.append(row)
        else:
            held = p.signed.key_versions
            terminals.append(row | {"key_version": held.current, "key_next": held.next})
        attempts.append(
            a.row(at, outcome=outcome.outcome, resumed_from=outcome.resumed_from,
                  blocks_sent=outcome.sent, test_fee=outcome.test_fee, error=None)
        )  # fmt: skip
        audits.append(
            {
                "at": at,
                "actor": actor,
                "action": "push",
                "target": f"terminal:{a.serial}",
                "details": whole.as_dict() | {"url": p.ref.url, "worker": a.worker},
                "reason": "",
            }
        )
    serial = TERMINALS.c.serial == bindparam("b_serial")
    if terminals:
        conn.execute(
            update(TERMINALS)
            .where(serial)
            .values(
                active_version=bindparam("active_version"),
                pending_version=bindparam("pending_version"),
                last_seen=bindparam("last_seen"),
                key_version=bindparam("key_version"),
                key_next=bindparam("key_next"),
            ),
            terminals,
        )
    if plain:
        conn.execute(
            update(TERMINALS)
            .where(serial)
            .values(
                active_version=bindparam("active_version"),
                pending_version=bindparam("pending_version"),
                last_seen=bindparam("last_seen"),
            ),
            plain,
        )
    if unissued:
        conn.execute(
            update(TERMINALS)
            .where(serial)
            .values(
                key_version=bindparam("key_version"), key_next=bindparam("key_next"), last_seen=at
            ),
            unissued,
        )
    if attempts:
        conn.execute(insert(ATTEMPTS), attempts)
    if audits:
        conn.execute(insert(AUDIT_CLAUSE), audits)


def _earlier_failures_of(
    conn: Connection, attempts: Sequence[Attempt]
) -> dict[tuple[str, str, int], tuple[int, int]]:
    """For each (serial, kind, version) of ``attempts``: (failed attempts, blocks they sent)
    since that terminal's last finished attempt at it, in one query per 500 serials. Pairs
    without a failure are left out."""
    wanted = {(a.serial, a.kind, a.version) for a in attempts}
    found: dict[tuple[str, str, int], tuple[int, int]] = {}
    serials = sorted({a.serial for a in attempts})
    c = ATTEMPTS.c
    for start in range(0, len(serials), 500):
        rows = conn.execute(
            select(c.serial, c.kind, c.version, c.outcome, c.blocks_sent)
            .where(
                c.serial.in_(serials[start : start + 500]),
                c.kind.in_({k for _, k, _ in wanted}),
                c.version.in_({v for _, _, v in wanted}),
            )
            .order_by(c.id)
        ).all()
        for r in rows:
            k = (r.serial, r.kind, r.version)
            if k not in wanted:
                continue
            if r.outcome != "error":
                found.pop(k, None)  # a finished attempt: the failures before it are past
                continue
            failed, sent = found.get(k, (0, 0))
            found[k] = (failed + 1, sent + int(r.blocks_sent or 0))
    return found
