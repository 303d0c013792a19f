"""Push one published fee table to one terminal, verify it, and record the result.

Over a :class:`~fleet.device.session.DeviceSession` (signed on, identity checked): skip a
terminal that already has the version, send the blocks (resuming from the block the
terminal reports), commit, then **verify**: a status query must show the version active
or pending, and a test sale's fee must equal the fleet's own computation with the table
the terminal says it priced with and the MCC of its merchant in the fleet (never the MCC
the terminal reports: a mismatch is a failure). Every attempt is kept (``push_attempt``); a success
updates the terminal's versions and ``last_seen`` and writes an audit entry.

:func:`push_terminal` opens its own session; :func:`push_on` pushes over one the caller
holds (provisioning: one link, one sign-on for the sync and the push).

**The compliance gate** (:mod:`fleet.fees.compliance`): before anything is sent, a raise
is checked against the terminal's merchant's notice. Delivered in time: the table as
published. Delivered late: the same version with its effective time moved to delivery +
notice period (the terminal keeps pricing with its previous table until then). Not
delivered: refused (:class:`PushFailedError` with reason ``notice_gate``, not retryable)
and audited (``push_refused``); nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import now
from fleet.core.money import parse_minor
from fleet.core.policy import FeePolicy
from fleet.device.attempts import Attempt, recorded
from fleet.device.keyring import KeyRing
from fleet.device.recording import Pushed, record_pushes
from fleet.device.session import DeviceError, DeviceSession, TerminalRef
from fleet.fees.compliance import table_for
from fleet.fees.tables import Published, published
from protocols.feetable import FeeTable, NoFeeRuleError, compute_fee
from protocols.messages import ResponseCode
from protocols.session import SaleOutcome
from protocols.values import CardType

__all__ = ["PushFailedError", "PushOutcome", "push_on", "push_terminal"]


class PushFailedError(DeviceError):
    """The push or its verification failed; the message says where (kept in the attempt).

    ``retryable``: the link broke (a new attempt resumes); otherwise the terminal refused
    or disagreed, and trying again at once would not change the answer.
    """


@dataclass(frozen=True, slots=True)
class PushOutcome:
    serial: str
    version: int
    outcome: str
    """``pushed`` or ``already``."""
    blocks: int
    resumed_from: int
    sent: int
    """Blocks sent by this push, its failed attempts before included."""
    test_fee: int | None
    active_version: int
    pending_version: int
    attempts: int = 1
    """Attempts this push took (the failed ones before it, and this one)."""

    def describe(self) -> str:
        """What happened, in a few words (progress notes, swap provisioning)."""
        if self.outcome == "already":
            text = f"already at v{self.version}"
        elif self.test_fee is not None:
            text = f"committed, verified (test fee {self.test_fee})"
        else:
            text = "committed, pending; verified (no active table: test sale 57)"
        return text + (f", resumed at block {self.resumed_from}" if self.resumed_from else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "version": self.version,
            "outcome": self.outcome,
            "blocks": self.blocks,
            "resumed_from": self.resumed_from,
            "sent": self.sent,
            "test_fee": self.test_fee,
            "active_version": self.active_version,
            "pending_version": self.pending_version,
            "attempts": self.attempts,
        }


def push_terminal(
    engine: Engine,
    ref: TerminalRef,
    version: int,
    tables: Mapping[int, Published],
    *,
    keys: KeyRing,
    policy: FeePolicy,
    actor: str,
    baud: int = 115200,
    t2: float = 5.0,
    t1_margin: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    worker: str = "",
    job_id: int | None = None,
) -> PushOutcome:
    """Open a session to ``ref``, push ``version``, verify and record. Signs with the key of
    the version the terminal reports (``keys``). Raises :class:`PushFailedError`."""
    table = gated(engine, ref.serial, ref.row.get("merchant_id"), version, tables, policy,
                  actor=actor, worker=worker)  # fmt: skip
    attempt = Attempt(engine, ref.serial, version, worker, job_id)
    with (
        recorded(attempt, PushFailedError),
        DeviceSession(ref, keys=keys, baud=baud, t2=t2, t1_margin=t1_margin) as dev,
    ):
        outcome = _push(dev, version, table, tables, policy, attempt.progress(progress))
    return _record_success(attempt, outcome, dev, actor=actor)


def push_on(
    engine: Engine,
    dev: DeviceSession,
    version: int,
    tables: Mapping[int, Published],
    *,
    policy: FeePolicy,
    actor: str,
    progress: Callable[[int, int], None] | None = None,
    worker: str = "",
) -> PushOutcome:
    """Push ``version`` over the open session ``dev`` (just signed on), verify, record."""
    table = gated(engine, dev.ref.serial, dev.ref.row.get("merchant_id"), version, tables,
                  policy, actor=actor, worker=worker)  # fmt: skip
    attempt = Attempt(engine, dev.ref.serial, version, worker)
    with recorded(attempt, PushFailedError):
        outcome = _push(dev, version, table, tables, policy, attempt.progress(progress))
    return _record_success(attempt, outcome, dev, actor=actor)


def gated(
    engine: Engine,
    serial: str,
    merchant_id: str | None,
    version: int,
    tables: Mapping[int, Published],
    policy: FeePolicy,
    *,
    actor: str,
    worker: str = "",
) -> FeeTable:
    """The table a push of ``version`` to ``serial`` may send (the compliance gate, see the
    module notes); a raise without delivered notice is audited and refused."""
    published(tables, version)
    with engine.connect() as conn:
        table, gate = table_for(conn, version, merchant_id, tables, policy)
    if table is not None:
        return table
    assert gate is not None
    detail = (
        f"table v{version} raises merchant {merchant_id}'s fees and its fee-change notice "
        f"has no delivery evidence (notice {gate.notice}"
        + (f", {gate.channel}" if gate.channel else "")
        + "): the terminal keeps its previous table"
    )
    with writer(engine).begin() as conn:
        audit.record(
            conn,
            actor=actor,
            action="push_refused",
            target=f"terminal:{serial}",
            details={"version": version, "merchant": merchant_id, "rule": "notice_gate",
                     "notice": gate.notice, "channel": gate.channel, "worker": worker},
            reason=detail,
        )  # fmt: skip
    raise PushFailedError(detail, where=serial, reason="notice_gate")


def _push(
    dev: DeviceSession,
    version: int,
    table: FeeTable,
    tables: Mapping[int, Published],
    policy: FeePolicy,
    progress: Callable[[int, int], None] | None,
) -> PushOutcome:
    dev.check_signing()
    session = dev.host
    result = session.push(table, progress, signed_on=dev.signed)
    status = session.status()
    if version not in (status.active_version, status.pending_version):
        raise PushFailedError(
            f"after commit the terminal reports active {status.active_version}, "
            f"pending {status.pending_version}, not {version}"
        )
    amount = parse_minor(policy.test_amount, table.currency)
    card = CardType[policy.test_card.upper()]
    sale = session.sale(amount, card, currency=table.currency)
    # the fee is checked with the merchant's MCC in the fleet, never the one the terminal
    # reports (the session refuses a terminal whose MCC disagrees; without a merchant, the
    # terminal's is all there is)
    mcc = dev.ref.mcc if dev.ref.mcc is not None else dev.signed.info.mcc
    _verify_sale(sale, status.active_version, tables, amount, card, mcc)
    return PushOutcome(
        dev.ref.serial,
        version,
        "already" if result.already else "pushed",
        result.blocks,
        result.resumed_from,
        result.sent,
        sale.fee,
        status.active_version,
        status.pending_version,
    )


def _verify_sale(
    sale: SaleOutcome,
    active: int,
    tables: Mapping[int, Published],
    amount: int,
    card: CardType,
    mcc: int,
) -> None:
    """The test sale must come out as the fleet computes it with the terminal's active table:
    approved with the same fee, or refused with 57 when that table has no rule for it (or
    the terminal has no active table yet, e.g. the pushed one is pending)."""
    version = sale.table_version if sale.approved and sale.table_version else active
    if version == 0:
        expected: int | None = None
    else:
        priced = tables.get(version)
        if priced is None:
            raise PushFailedError(f"the terminal's active table v{version} was never published")
        try:
            expected = compute_fee(priced.table, amount, card, mcc)
        except NoFeeRuleError:
            expected = None
    if expected is None:
        if sale.code != ResponseCode.NO_FEE_RULE:
            raise PushFailedError(
                f"test sale answered {sale.code}; with table v{version} the fleet expects 57"
            )
        return
    if not sale.approved:
        raise PushFailedError(f"test sale refused: {sale.code} (table v{version})")
    if sale.fee != expected:
        raise PushFailedError(
            f"test sale fee {sale.fee} with table v{version}, the fleet computes {expected}"
        )


def _record_success(
    attempt: Attempt, outcome: PushOutcome, dev: DeviceSession, *, actor: str
) -> PushOutcome:
    """Keep the attempt (what it did itself) and audit the push (what all its attempts did:
        a download committed by an attempt whose link broke, then found in place by the next,
        was pushed, not "already" there: :func:`fleet.device.recording.record_pushes`, the
    engine's batches' recording, for one). Returns the push's outcome."""
    done = Pushed(attempt, dev.ref, outcome=outcome, signed=dev.signed)
    with writer(attempt.engine).begin() as conn:
        record_pushes(conn, [done], actor=actor, at=now())
    assert done.whole is not None
    return done.whole
