"""Fleet fixtures: every database test runs on SQLite and again on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database ``test``; override with
``POSFLEET_TEST_PG``). Each test gets a schema of its own, dropped afterwards. When the
server is unreachable the PostgreSQL half is skipped, except under CI (``CI`` or
``POSFLEET_REQUIRE_PG`` set), where that is a failure: those tests must run there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from fleet.core import db
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.sample.seed import SampleFiles, write_sample

PG_URL = os.environ.get("POSFLEET_TEST_PG", "postgresql+psycopg://127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def _pg_unreachable() -> str | None:
    if "error" not in _pg_state:
        try:
            probe = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
            probe.dispose()
            _pg_state["error"] = None
        except OperationalError as exc:
            _pg_state["error"] = str(exc.orig).strip().splitlines()[0]
    return _pg_state["error"]


def pg_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("POSFLEET_REQUIRE_PG"))


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL of a fresh schema on the test server (dropped afterwards); skip or fail when the
    server is unreachable (see the module's notes)."""
    problem = _pg_unreachable()
    if problem:
        if pg_required():
            pytest.fail(f"PostgreSQL at {PG_URL} is required here (CI) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.db'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def pg_loaded(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """PostgreSQL only (for what the issue asks on PostgreSQL): URL and the loaded sample."""
    with pg_schema() as url:
        eng = db.connect(url)
        db.upgrade(eng)
        sample = write_sample(tmp_path / "pg-sample", terminals=300)
        import_catalog(eng, sample.catalog, actor="test")
        import_merchants(eng, sample.merchants, actor="test")
        import_terminals(eng, sample.terminals, actor="test")
        try:
            yield url, eng
        finally:
            eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.connect(db_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sample(tmp_path: Path) -> SampleFiles:
    return write_sample(tmp_path / "sample", terminals=300)


@pytest.fixture
def loaded(engine: Engine, sample: SampleFiles) -> Engine:
    """The engine with the 300-terminal sample fleet imported."""
    import_catalog(engine, sample.catalog, actor="test")
    import_merchants(engine, sample.merchants, actor="test")
    import_terminals(engine, sample.terminals, actor="test")
    return engine
