"""Push one published fee table to one terminal, verify it, and record the result.

Sign on (the serial must be the inventory's), skip a terminal that already has the
version, send the blocks (resuming from the block the terminal reports), commit, then
**verify**: a status query must show the version active or pending, and a test sale's
fee must equal the fleet's own computation with the table the terminal says it priced
with. Every attempt is kept (``push_attempt``); a success updates the terminal's versions
and ``last_seen`` and writes an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import ATTEMPTS, TERMINALS, now
from fleet.core.policy import FeePolicy
from fleet.core.values import parse_money
from fleet.fees.publishing import Published, load_tables
from fleet.fees.tablefile import currency_alpha
from fleet.inventory.service import NotFoundError, get_terminal
from protocols.errors import LinkError, ProtocolError
from protocols.feetable import NoFeeRuleError, compute_fee
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.messages import ResponseCode
from protocols.session import HostSession, SaleOutcome
from protocols.values import CardType

__all__ = ["PushFailedError", "PushOutcome", "PushTarget", "load_target", "push_terminal"]


class PushFailedError(Exception):
    """The push or its verification failed; the message says where (kept in the attempt).

    ``retryable``: the link broke (a new attempt resumes); otherwise the terminal refused
    or disagreed, and trying again at once would not change the answer.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class PushOutcome:
    serial: str
    version: int
    outcome: str
    """``pushed`` or ``already``."""
    blocks: int
    resumed_from: int
    sent: int
    test_fee: int | None
    active_version: int
    pending_version: int

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
        }


@dataclass(frozen=True, slots=True)
class PushTarget:
    serial: str
    tid: str
    url: str
    version: int
    tables: dict[int, Published]


def load_target(
    engine: Engine,
    serial: str,
    version: int,
    port: str | None = None,
    *,
    tables: dict[int, Published] | None = None,
) -> PushTarget:
    """What a push needs; ``tables`` (published tables are immutable) saves reloading them."""
    with engine.connect() as conn:
        row = get_terminal(conn, serial)
        if row is None:
            raise NotFoundError(f"unknown terminal {serial}")
        if tables is None or version not in tables:
            tables = load_tables(conn)
    if version not in tables:
        raise NotFoundError(f"fee table {version} is not published")
    url = port or row["link"]
    if not url:
        raise NotFoundError(f"terminal {serial} has no link URL: give --port")
    if not row["tid"]:
        raise PushFailedError(f"terminal {serial} has no TID")
    return PushTarget(serial, row["tid"], url, version, tables)


def _test_sale(policy: FeePolicy, currency: int) -> tuple[int, CardType]:
    """The verification sale, in the table's currency (``test_amount`` in its units)."""
    return parse_money(policy.test_amount, currency_alpha(currency)), CardType[
        policy.test_card.upper()
    ]


def push_terminal(
    engine: Engine,
    target: PushTarget,
    *,
    master_key: bytes,
    policy: FeePolicy,
    actor: str,
    baud: int = 115200,
    t2: float = 5.0,
    t1_margin: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    worker: str = "",
    job_id: int | None = None,
) -> PushOutcome:
    """Push, verify and record (see the module's notes). Raises :class:`PushFailedError`."""
    started = now()
    table = target.tables[target.version].table
    try:
        with Link(target.url, baud, t2=t2, t1_margin=t1_margin) as link:
            session = HostSession(link, target.tid, derive_terminal_key(master_key, target.serial))
            signed = session.sign_on()
            if signed.info.serial != target.serial:
                raise PushFailedError(
                    f"{target.url} answers as serial {signed.info.serial}, not {target.serial}"
                )
            result = session.push(table, progress, signed_on=signed)
            status = session.status()
            if target.version not in (status.active_version, status.pending_version):
                raise PushFailedError(
                    f"after commit the terminal reports active {status.active_version}, "
                    f"pending {status.pending_version}, not {target.version}"
                )
            amount, card = _test_sale(policy, table.currency)
            sale = session.sale(amount, card, currency=table.currency)
            _verify_sale(sale, status.active_version, target, amount, card, signed.info.mcc)
    except PushFailedError as exc:
        _record_failure(engine, target, started, str(exc), worker, job_id)
        raise
    except (ProtocolError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        _record_failure(engine, target, started, message, worker, job_id)
        retry = isinstance(exc, OSError | LinkError)
        raise PushFailedError(message, retryable=retry) from exc
    outcome = PushOutcome(
        target.serial,
        target.version,
        "already" if result.already else "pushed",
        result.blocks,
        result.resumed_from,
        result.sent,
        sale.fee,
        status.active_version,
        status.pending_version,
    )
    finished = now()
    with writer(engine).begin() as conn:
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == target.serial)
            .values(
                active_version=status.active_version,
                pending_version=status.pending_version,
                last_seen=finished,
            )
        )
        conn.execute(
            insert(ATTEMPTS).values(
                job_id=job_id,
                serial=target.serial,
                version=target.version,
                worker=worker,
                started_at=started,
                finished_at=finished,
                outcome=outcome.outcome,
                resumed_from=result.resumed_from,
                blocks_sent=result.sent,
                test_fee=sale.fee,
            )
        )
        audit.record(
            conn,
            actor=actor,
            action="push",
            target=f"terminal:{target.serial}",
            details=outcome.as_dict() | {"url": target.url, "worker": worker},
            at=finished,
        )
    return outcome


def _verify_sale(
    sale: SaleOutcome, active: int, target: PushTarget, amount: int, card: CardType, mcc: int
) -> None:
    """The test sale must come out as the fleet computes it with the terminal's active table:
    approved with the same fee, or refused with 57 when that table has no rule for it (or
    the terminal has no active table yet, e.g. the pushed one is pending)."""
    version = sale.table_version if sale.approved and sale.table_version else active
    if version == 0:
        expected: int | None = None
    else:
        priced = target.tables.get(version)
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


def _record_failure(
    engine: Engine,
    target: PushTarget,
    started: datetime,
    error: str,
    worker: str,
    job_id: int | None,
) -> None:
    with writer(engine).begin() as conn:
        conn.execute(
            insert(ATTEMPTS).values(
                job_id=job_id,
                serial=target.serial,
                version=target.version,
                worker=worker,
                started_at=started,
                finished_at=now(),
                outcome="error",
                error=error[:500],
            )
        )
