"""Pushes driven by the host's many-links engine (:mod:`protocols.engine`): the same push
as :func:`fleet.device.push.push_terminal`, as a sans-I/O flow, and its results recorded
in batches.

:func:`push_flow` is one terminal's conversation: sign on, check identity (serial, MID,
the merchant's MCC) and that the fleet can sign for the key version it reports, download
(resuming where the terminal stopped), commit, status query, test sale checked against
the fleet's own fee computation. It does no I/O: the engine drives it over a socket, many
terminals from one thread. A fleet-side refusal (identity, key, fee) is kept in
:attr:`PushState.error` as the :class:`~fleet.device.session.DeviceError` it is.

:func:`record_pushes` keeps many results in one transaction: every attempt
(``push_attempt``), and for a success the terminal's versions, ``last_seen`` and key
versions and an audit entry — what :func:`~fleet.device.push.push_terminal` records for
one, with a few statements for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from fleet.core.clauses import AUDIT_CLAUSE
from fleet.core.models import ATTEMPTS, TERMINALS
from fleet.core.money import parse_minor
from fleet.core.policy import FeePolicy
from fleet.device.attempts import Attempt
from fleet.device.keyring import KeyRing, UnissuedKeyError
from fleet.device.push import PushFailedError, PushOutcome, _verify_sale
from fleet.device.session import DeviceError, TerminalRef, check_identity
from fleet.fees.tables import Published
from protocols.engine import CheckError, Outcome
from protocols.errors import LinkError, ProtocolError
from protocols.flows import Conversation, Flow, PreparedTable, SignOn
from protocols.keys import TerminalKeyRing
from protocols.values import CardType

__all__ = ["PushState", "Pushed", "push_flow", "record_pushes", "result_of"]


@dataclass(slots=True)
class PushState:
    """What one push learnt as it went (kept when it fails)."""

    attempt: Attempt
    signed: SignOn | None = None
    error: DeviceError | None = None
    """A fleet-side refusal (identity, key, verification), as raised."""


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


def conversation(ref: TerminalRef, keys: KeyRing) -> Conversation:
    """A conversation with ``ref`` signing with its key of the version it reports."""
    ring = TerminalKeyRing.derived(keys.masters.values(), ref.serial)
    return Conversation(ref.tid, keys=ring)


def push_flow(
    conv: Conversation,
    ref: TerminalRef,
    prepared: PreparedTable,
    tables: Mapping[int, Published],
    *,
    keys: KeyRing,
    policy: FeePolicy,
    into: PushState,
    progress: Callable[[int, int], None] | None = None,
) -> Flow[PushOutcome]:
    """One terminal's push (see the module docstring); fleet-side refusals are kept in
    ``into.error`` and raised to the engine as a :class:`~protocols.engine.CheckError`."""
    try:
        return (yield from _push(conv, ref, prepared, tables, keys, policy, into, progress))
    except DeviceError as exc:
        into.error = exc
        raise CheckError(str(exc)) from exc


def _push(
    conv: Conversation,
    ref: TerminalRef,
    prepared: PreparedTable,
    tables: Mapping[int, Published],
    keys: KeyRing,
    policy: FeePolicy,
    into: PushState,
    progress: Callable[[int, int], None] | None,
) -> Flow[PushOutcome]:
    signed = yield from conv.sign_on()
    into.signed = signed
    check_identity(ref, signed)
    keys.check_signing(ref.serial, signed.key_versions)
    attempt = into.attempt
    result = yield from conv.push(prepared, attempt.progress(progress), signed_on=signed)
    status = yield from conv.status()
    version = prepared.version
    if version not in (status.active_version, status.pending_version):
        raise PushFailedError(
            f"after commit the terminal reports active {status.active_version}, "
            f"pending {status.pending_version}, not {version}"
        )
    table = prepared.table
    amount = parse_minor(policy.test_amount, table.currency)
    card = CardType[policy.test_card.upper()]
    sale = yield from conv.sale(amount, card, currency=table.currency)
    mcc = ref.mcc if ref.mcc is not None else signed.info.mcc
    _verify_sale(sale, status.active_version, tables, amount, card, mcc)
    return PushOutcome(
        ref.serial,
        version,
        "already" if result.already else "pushed",
        result.blocks,
        result.resumed_from,
        result.sent,
        sale.fee,
        status.active_version,
        status.pending_version,
    )


def result_of(outcome: Outcome, state: PushState, ref: TerminalRef) -> Pushed:
    """The engine's :class:`~protocols.engine.Outcome` of a :func:`push_flow` job."""
    done = Pushed(state.attempt, ref, signed=state.signed)
    if outcome.ok:
        done.outcome = outcome.value
        return done
    if state.error is not None:
        done.error = str(state.error)
        done.retryable = state.error.retryable
        done.reason = state.error.reason
        if isinstance(state.error, UnissuedKeyError):
            done.unissued = state.error
        return done
    error = outcome.error
    assert error is not None
    done.error = str(error) if isinstance(error, ProtocolError) else repr(error)
    done.retryable = isinstance(error, LinkError)
    return done


def record_pushes(conn: Connection, pushes: Sequence[Pushed], *, actor: str, at: datetime) -> None:
    """Keep every push's attempt and, for a success, the terminal's versions and an audit
    entry, in the caller's transaction (see the module docstring). Sets each success's
    :attr:`Pushed.whole`."""
    attempts: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    terminals: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    """Successes without a sign-on to read key versions from (none from the engine)."""
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
    since that terminal's last finished attempt at it — what
    :func:`fleet.device.push._earlier_failures` finds for one, for a batch in one query
    per 500 serials. Pairs without a failure are left out."""
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
