"""Pushes driven by the host's many-links engine (:mod:`protocols.engine`): the same push
as :func:`fleet.device.push.push_terminal`, as a sans-I/O flow; its results are kept in
batches by :func:`fleet.device.recording.record_pushes` (re-exported here).

:func:`push_flow` is one terminal's conversation: sign on, check identity (serial, MID,
the merchant's MCC) and that the fleet can sign for the key version it reports, download
(resuming where the terminal stopped), commit, status query, test sale checked against
the fleet's own fee computation. It does no I/O: the engine drives it over a socket, many
terminals from one thread. A fleet-side refusal (identity, key, fee) is kept in
:attr:`PushState.error` as the :class:`~fleet.device.session.DeviceError` it is.

"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleet.core.money import parse_minor
from fleet.core.policy import FeePolicy
from fleet.device.attempts import Attempt
from fleet.device.keyring import KeyRing, UnissuedKeyError
from fleet.device.push import PushFailedError, PushOutcome, _verify_sale
from fleet.device.recording import Pushed, record_pushes
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
