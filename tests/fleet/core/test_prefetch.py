"""Rows fetched ahead by a thread (:mod:`fleet.core.prefetch`), on both databases: the same
rows in the same order, an early stop that leaves the connection usable, errors raised
where the rows are read."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from fleet.core.models import TERMINALS
from fleet.core.prefetch import ahead


def _threads() -> int:
    return sum(t.name == "rows-ahead" for t in threading.enumerate())


def test_the_same_rows_in_order(loaded: Engine) -> None:
    stmt = select(TERMINALS.c.serial, TERMINALS.c.model).order_by(TERMINALS.c.serial)
    with loaded.connect() as conn:
        plain = [tuple(r) for r in conn.execute(stmt)]
        rows = [tuple(r) for r in ahead(conn.execute(stmt.execution_options(yield_per=7)))]
    assert len(plain) == 300
    assert rows == plain
    assert _threads() == 0


def test_an_early_stop_ends_the_fetch_and_frees_the_connection(loaded: Engine) -> None:
    stmt = select(TERMINALS.c.serial).order_by(TERMINALS.c.serial)
    with loaded.connect() as conn:
        rows = ahead(conn.execute(stmt.execution_options(yield_per=5)))
        first = [next(rows)[0] for _ in range(12)]
        rows.close()
        assert _threads() == 0
        # the connection is the caller's again: a new statement on it works
        count = conn.execute(select(TERMINALS.c.serial).order_by(TERMINALS.c.serial)).all()
    assert first == [r[0] for r in count[:12]]


def test_a_failing_fetch_raises_in_the_reader(engine: Engine) -> None:
    """The error comes out where the rows are read; nothing is left running."""
    bad = "SELECT 1 / (x - 3) FROM (SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3) AS t"
    if engine.dialect.name == "sqlite":
        bad = "SELECT abs(-9223372036854775807 - x) FROM (SELECT 1 AS x UNION ALL SELECT 2)"
    with engine.connect() as conn, pytest.raises(DBAPIError):
        for _ in ahead(conn.execute(text(bad).execution_options(yield_per=1))):
            pass
    assert _threads() == 0
