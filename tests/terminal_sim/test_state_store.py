"""The terminal's state store: a fresh store is a copy of one empty image, an older store
gets the schema, and creating a store never replaces one that exists."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from terminal_sim import state
from terminal_sim.state import DB_NAME, SCHEMA_VERSION, StateStore

_TABLES = {"fee_tables", "download", "blocks", "last_response", "sales", "mac_keys",
           "key_requests", "wear", "boot", "tamper"}  # fmt: skip


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}
    finally:
        conn.close()


def test_a_fresh_store_is_whole_and_in_wal_mode(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "t")
    assert not store.exists
    with store.transaction() as conn:
        StateStore.start_download(conn, 3, 10, 1_700_000_000)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()
    assert _tables(store.path) >= _TABLES
    assert not [p.name for p in (tmp_path / "t").iterdir() if p.name.startswith(".")]
    again = StateStore(tmp_path / "t")
    partial = again.partial()
    assert partial is not None and (partial.version, partial.count) == (3, 10)
    again.close()


def test_a_store_written_before_the_schema_version_is_completed(tmp_path: Path) -> None:
    path = tmp_path / "t" / DB_NAME
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tamper (id INTEGER PRIMARY KEY CHECK (id = 1), "
                 "tripped_at INTEGER NOT NULL)")  # fmt: skip
    conn.execute("INSERT INTO tamper VALUES (1, 1700000000)")
    conn.commit()
    conn.close()
    store = StateStore(tmp_path / "t")
    assert store.tampered_at() is not None  # kept
    assert store.mac_keys() == {}  # the other tables were created
    store.close()
    assert _tables(path) >= _TABLES


def test_creating_a_store_never_replaces_one_that_exists(tmp_path: Path) -> None:
    first = StateStore(tmp_path / "t")
    with first.transaction() as conn:
        StateStore.start_download(conn, 5, 2, 1_700_000_000)
    first.close()
    state._create_empty(first.path)  # another process lost the race to create it
    partial = StateStore(tmp_path / "t").partial()
    assert partial is not None and partial.version == 5
