"""The batch side of engine-driven pushes: many terminals resolved in one query, earlier
failures found for a batch (the failures since each terminal's last finished attempt), and
a batch of results recorded (attempts, terminal versions, audit)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, insert, select, update

from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import ATTEMPTS, AUDIT, TERMINALS, now
from fleet.device.attempts import Attempt
from fleet.device.push import PushOutcome
from fleet.device.recording import Pushed, _earlier_failures_of, record_pushes
from fleet.device.session import TerminalRef, resolve, resolve_many


def _serials(engine: Engine, n: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.tid.is_not(None), TERMINALS.c.merchant_id.is_not(None))
                .order_by(TERMINALS.c.serial)
                .limit(n)
            ).scalars()
        )


def test_resolve_many_agrees_with_resolve(loaded: Engine) -> None:
    a, b, c = _serials(loaded, 3)
    with loaded.begin() as conn:
        conn.execute(update(TERMINALS).values(link="socket://127.0.0.1:9100"))
        conn.execute(update(TERMINALS).where(TERMINALS.c.serial == b).values(link=None))
        conn.execute(update(TERMINALS).where(TERMINALS.c.serial == c).values(link="loop://"))
    with loaded.connect() as conn:
        found = resolve_many(conn, [a, b, c, "NOPE0001", a])
        single = resolve(conn, a)
    assert isinstance(found[a], TerminalRef) and found[a] == single
    assert found[a].mcc is not None
    assert isinstance(found[b], InputError) and "no link URL" in str(found[b])
    assert isinstance(found[c], InputError)
    assert isinstance(found["NOPE0001"], NotFoundError)


def test_earlier_failures_for_a_batch(loaded: Engine) -> None:
    serials = _serials(loaded, 3)
    t0 = now()
    history = {  # per serial: outcomes in order (blocks sent each)
        serials[0]: [("error", 3), ("error", 2)],
        serials[1]: [("error", 4), ("pushed", 10), ("error", 1)],
        serials[2]: [("error", 5), ("pushed", 10)],
    }
    with loaded.begin() as conn:
        for serial, steps in history.items():
            for i, (outcome, sent) in enumerate(steps):
                at = t0 + timedelta(seconds=i)
                conn.execute(
                    insert(ATTEMPTS).values(
                        serial=serial, kind="fees", version=7, worker="w", started_at=at,
                        finished_at=at, outcome=outcome, blocks_sent=sent, resumed_from=0,
                    )
                )  # fmt: skip
            # another version's failure does not count
            conn.execute(
                insert(ATTEMPTS).values(
                    serial=serial, kind="fees", version=8, worker="w", started_at=t0,
                    finished_at=t0, outcome="error", blocks_sent=9, resumed_from=0,
                )
            )  # fmt: skip
    attempts = [Attempt(loaded, s, 7) for s in serials]
    with loaded.connect() as conn:
        batch = _earlier_failures_of(conn, attempts)
    assert batch == {(serials[0], "fees", 7): (2, 5), (serials[1], "fees", 7): (1, 1)}


def test_record_pushes_keeps_attempts_versions_and_audit(loaded: Engine) -> None:
    ok, bad = _serials(loaded, 2)
    with loaded.begin() as conn:
        conn.execute(update(TERMINALS).values(link="socket://127.0.0.1:9100"))
    with loaded.connect() as conn:
        refs = resolve_many(conn, [ok, bad])
    good = Pushed(
        Attempt(loaded, ok, 5, "w/b1", None),
        refs[ok],  # type: ignore[arg-type]
        outcome=PushOutcome(ok, 5, "pushed", 10, 0, 10, 42, 4, 5),
    )
    failed_attempt = Attempt(loaded, bad, 5, "w/b1", None)
    failed_attempt.resumed_from, failed_attempt.sent = 3, 2
    failed = Pushed(failed_attempt, refs[bad], error="link broke", retryable=True)  # type: ignore[arg-type]
    with loaded.begin() as conn:
        record_pushes(conn, [good, failed], actor="t", at=now())
    with loaded.connect() as conn:
        rows = {r.serial: r for r in conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.version == 5))}
        term = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == ok)).one()
        audits = conn.execute(select(AUDIT).where(AUDIT.c.target == f"terminal:{ok}")).all()
    assert rows[ok].outcome == "pushed" and rows[ok].test_fee == 42 and rows[ok].blocks_sent == 10
    assert rows[bad].outcome == "error" and rows[bad].error == "link broke"
    assert (rows[bad].resumed_from, rows[bad].blocks_sent) == (3, 2)
    assert (term.active_version, term.pending_version) == (4, 5)
    assert len(audits) == 1 and audits[0].details["outcome"] == "pushed"
    assert good.whole is not None and good.whole.attempts == 1
