"""Crash-safe storage of an emulated terminal: one SQLite file in its state directory.

Everything the terminal knows lives in ``<state-dir>/terminal.db``: the active and pending
fee tables (their exact bytes), the partial download (version, block count, the blocks
stored so far), the last response to a state-changing request (so a resend after a crash
is answered, not executed again), the last sales, its MAC keys once a key change reached
it (current and next, with their versions; before that the key comes from its
configuration), the digests of the key requests it accepted (replays are refused), its
hardware wear (:mod:`terminal_sim.wear`) and its tamper switch.

Every request is handled in **one transaction** (:meth:`StateStore.transaction`): a
process killed at any instant leaves either the state before the request or the state
after it, never a mix. SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed
transaction survives the process being killed (it is in the WAL, written before commit
returns); only a power loss of the whole machine could lose the last few commits, and
even then the database stays consistent (never a half-written table).

A new store is a copy of one empty store made once per process (schema, WAL mode,
``user_version`` = :data:`SCHEMA_VERSION`), written under a scratch name and linked into
place: a fleet's first push to 10,000 fresh terminals creates 10,000 stores, and running
the schema in each cost more CPU than the rest of the store's work for a push.

Invariants the store keeps (checked by the crash test):

* at most one ``active`` and one ``pending`` table; a table row is only ever written by a
  commit that passed digest, CRC and format checks, so the active table is always one of
  the complete tables;
* blocks are stored for one version at a time, in order, without gaps;
* at most one ``current`` and one ``next`` MAC key; the current key is only ever replaced
  by promoting the next one, in the transaction that answers the key confirmation, so the
  terminal always has a working key;
* the tamper switch, once tripped, stays tripped (nothing here clears it).

(Over 400 lines: the whole schema and every statement on it stay in one module, so the
crash-safety of each step can be read in one place.)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocols.health import RebootReason
from terminal_sim.wear import InitialWear, Wear

__all__ = ["BootInfo", "Partial", "SaleRecord", "StateStore", "StoredTable"]

DB_NAME = "terminal.db"
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of a store holding the whole of :data:`_SCHEMA`."""
KEEP_SALES = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fee_tables (
    version      INTEGER PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('active', 'pending', 'previous')),
    effective    INTEGER NOT NULL,
    data         BLOB NOT NULL,
    sha256       BLOB NOT NULL,
    committed_at INTEGER NOT NULL,
    activated_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active ON fee_tables(role) WHERE role = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS one_pending ON fee_tables(role) WHERE role = 'pending';
CREATE TABLE IF NOT EXISTS download (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    idx  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS last_response (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    request  BLOB NOT NULL,
    response BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sales (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    stan          TEXT NOT NULL,
    amount        INTEGER NOT NULL,
    card_type     INTEGER NOT NULL,
    code          TEXT NOT NULL,
    fee           INTEGER,
    net           INTEGER,
    approval      TEXT,
    table_version INTEGER
);
CREATE TABLE IF NOT EXISTS mac_keys (
    role      TEXT PRIMARY KEY CHECK (role IN ('current', 'next')),
    version   INTEGER NOT NULL CHECK (version > 0),
    key       BLOB NOT NULL CHECK (length(key) = 16),
    stored_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS key_requests (
    digest BLOB PRIMARY KEY,
    at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wear (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    chip             INTEGER NOT NULL,
    contactless      INTEGER NOT NULL,
    magstripe        INTEGER NOT NULL,
    printer_lines    INTEGER NOT NULL,
    paper_left       INTEGER NOT NULL,
    battery_level_bp INTEGER NOT NULL,
    battery_used_bp  INTEGER NOT NULL,
    logs_bytes       INTEGER NOT NULL,
    last_reboot      INTEGER NOT NULL,
    running          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS boot (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    booted_at   INTEGER NOT NULL,
    model       TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    key_kcv     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tamper (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    tripped_at INTEGER NOT NULL
);
"""
_WEAR_COLUMNS = (
    "chip, contactless, magstripe, printer_lines, paper_left, battery_level_bp, "
    "battery_used_bp, logs_bytes, last_reboot"
)


@dataclass(frozen=True, slots=True)
class StoredTable:
    version: int
    role: str
    effective: datetime
    data: bytes
    sha256: bytes
    committed_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Partial:
    """A download in progress: ``next_block`` = blocks stored so far."""

    version: int
    count: int
    next_block: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class BootInfo:
    """The last boot: when, the model, and the version and check value of the key the
    terminal was configured with (``--key-file``; a key change's keys win over it)."""

    booted_at: datetime
    model: str
    key_version: int
    key_kcv: bytes


@dataclass(frozen=True, slots=True)
class SaleRecord:
    at: datetime
    stan: str
    amount: int
    card_type: int
    code: str
    fee: int | None
    net: int | None
    approval: str | None
    table_version: int | None


def _create_schema(conn: sqlite3.Connection) -> None:
    """The schema and its :data:`SCHEMA_VERSION`, in one transaction (each statement on its
    own would be a commit of its own: 13 WAL writes)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_empty_lock = threading.Lock()
_empty: bytes | None = None


def _empty_image() -> bytes:
    """The bytes of an empty store (schema, WAL mode, :data:`SCHEMA_VERSION`), made once
    per process in a scratch directory."""
    global _empty  # noqa: PLW0603 - built once, read by every terminal of a fleet
    with _empty_lock:
        if _empty is None:
            with tempfile.TemporaryDirectory(prefix="possim-store-") as scratch:
                path = Path(scratch) / DB_NAME
                conn = sqlite3.connect(path, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    _create_schema(conn)
                finally:
                    conn.close()  # checkpointed: the file alone is the whole store
                _empty = path.read_bytes()
        return _empty


def _create_empty(path: Path) -> None:
    """Create ``path`` as an empty store unless it exists: the image written under a
    scratch name, then linked into place (atomic, and never over a store that another
    process created meanwhile), so a kill leaves either no store or a whole empty one.
    A fleet creates thousands of stores: copying one image costs a fraction of running
    the schema in each."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        scratch.write_bytes(_empty_image())
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _dt(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class StateStore:
    """The terminal's state in ``state_dir`` (created on first use).

    Opened lazily: a terminal that was never talked to has no file yet (a fleet of 1,000
    idle terminals costs no file descriptors). One connection, used by one thread at a
    time (the serving thread); a lock guards against misuse.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    # -- connection and transactions -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists():
                self.state_dir.mkdir(parents=True, exist_ok=True)
                _create_empty(self.path)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    _create_schema(conn)  # a store written before user_version was kept
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @property
    def exists(self) -> bool:
        return self._conn is not None or self.path.exists()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: everything inside commits together or not at all."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None and not self.path.exists():
                return []
            return self._connect().execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- reads -------------------------------------------------------------------------------

    def table(self, role: str) -> StoredTable | None:
        rows = self._query(
            "SELECT version, role, effective, data, sha256, committed_at, activated_at "
            "FROM fee_tables WHERE role = ?",
            (role,),
        )
        if not rows:
            return None
        v, r, eff, data, sha, committed, activated = rows[0]
        effective, committed_dt = _dt(eff), _dt(committed)
        assert effective is not None and committed_dt is not None
        return StoredTable(v, r, effective, data, sha, committed_dt, _dt(activated))

    def versions(self) -> dict[str, tuple[int, datetime]]:
        """Role (``active``/``pending``) → (version, effective time), without the table bytes:
        what every request needs to know, cheaply."""
        rows = self._query(
            "SELECT role, version, effective FROM fee_tables WHERE role IN ('active', 'pending')"
        )
        return {role: (version, datetime.fromtimestamp(eff, UTC)) for role, version, eff in rows}

    def table_data(self, version: int) -> bytes | None:
        rows = self._query("SELECT data FROM fee_tables WHERE version = ?", (version,))
        return bytes(rows[0][0]) if rows else None

    def tables(self) -> list[StoredTable]:
        out = []
        for role in ("active", "pending"):
            table = self.table(role)
            if table is not None:
                out.append(table)
        return out

    def partial(self) -> Partial | None:
        rows = self._query(
            "SELECT version, count, started_at, (SELECT count(*) FROM blocks) FROM download "
            "WHERE id = 1"
        )
        if not rows:
            return None
        version, count, started, stored = rows[0]
        started_dt = _dt(started)
        assert started_dt is not None
        return Partial(version, count, stored, started_dt)

    def blocks_data(self) -> bytes:
        return b"".join(r[0] for r in self._query("SELECT data FROM blocks ORDER BY idx"))

    def last_response(self, request: bytes) -> bytes | None:
        rows = self._query("SELECT request, response FROM last_response WHERE id = 1")
        if rows and rows[0][0] == request:
            return bytes(rows[0][1])
        return None

    def mac_keys(self) -> dict[str, tuple[int, bytes]]:
        """Role (``current``/``next``) → (version, key) of the keys a key change stored."""
        rows = self._query("SELECT role, version, key FROM mac_keys")
        return {role: (version, bytes(key)) for role, version, key in rows}

    def key_request_seen(self, digest: bytes) -> bool:
        return bool(self._query("SELECT 1 FROM key_requests WHERE digest = ?", (digest,)))

    def wear(self) -> Wear | None:
        rows = self._query(f"SELECT {_WEAR_COLUMNS} FROM wear WHERE id = 1")
        if not rows:
            return None
        chip, tap, mag, lines, paper, level, used, logs, reason = rows[0]
        return Wear(chip, tap, mag, lines, paper, level, used, logs, RebootReason(reason))

    def boot_info(self) -> BootInfo | None:
        rows = self._query("SELECT booted_at, model, key_version, key_kcv FROM boot WHERE id = 1")
        if not rows:
            return None
        at, model, version, kcv = rows[0]
        when = _dt(at)
        assert when is not None
        return BootInfo(when, model, version, bytes(kcv))

    def running(self) -> bool:
        """The terminal runs (or was killed: it never shut down)."""
        rows = self._query("SELECT running FROM wear WHERE id = 1")
        return bool(rows and rows[0][0])

    def tampered_at(self) -> datetime | None:
        rows = self._query("SELECT tripped_at FROM tamper WHERE id = 1")
        return _dt(rows[0][0]) if rows else None

    def sales(self, limit: int = 10) -> list[SaleRecord]:
        rows = self._query(
            "SELECT at, stan, amount, card_type, code, fee, net, approval, table_version "
            "FROM sales ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        out = []
        for at, *rest in rows:
            when = _dt(at)
            assert when is not None
            out.append(SaleRecord(when, *rest))
        return out

    # -- writes (call inside transaction()) ----------------------------------------------------

    @staticmethod
    def start_download(conn: sqlite3.Connection, version: int, count: int, now: int) -> None:
        conn.execute("DELETE FROM blocks")
        conn.execute(
            "INSERT OR REPLACE INTO download (id, version, count, started_at) VALUES (1, ?, ?, ?)",
            (version, count, now),
        )

    @staticmethod
    def add_block(conn: sqlite3.Connection, index: int, data: bytes) -> None:
        conn.execute("INSERT INTO blocks (idx, data) VALUES (?, ?)", (index, data))

    @staticmethod
    def clear_download(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM blocks")
        conn.execute("DELETE FROM download")

    @staticmethod
    def store_pending(
        conn: sqlite3.Connection, version: int, effective: int, data: bytes, sha: bytes, now: int
    ) -> None:
        """A checked table becomes pending (replacing an older pending one)."""
        conn.execute("DELETE FROM fee_tables WHERE role = 'pending'")
        conn.execute("DELETE FROM fee_tables WHERE version = ?", (version,))
        conn.execute(
            "INSERT INTO fee_tables (version, role, effective, data, sha256, committed_at) "
            "VALUES (?, 'pending', ?, ?, ?, ?)",
            (version, effective, data, sha, now),
        )

    @staticmethod
    def activate_pending(conn: sqlite3.Connection, now: int) -> bool:
        """Pending → active if its effective time has come; the old active is kept as previous."""
        row = conn.execute(
            "SELECT version FROM fee_tables WHERE role = 'pending' AND effective <= ?", (now,)
        ).fetchone()
        if row is None:
            return False
        conn.execute("DELETE FROM fee_tables WHERE role = 'previous'")
        conn.execute("UPDATE fee_tables SET role = 'previous' WHERE role = 'active'")
        conn.execute(
            "UPDATE fee_tables SET role = 'active', activated_at = ? WHERE version = ?",
            (now, row[0]),
        )
        return True

    @staticmethod
    def remember_response(conn: sqlite3.Connection, request: bytes, response: bytes) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO last_response (id, request, response) VALUES (1, ?, ?)",
            (request, response),
        )

    @staticmethod
    def set_next_key(
        conn: sqlite3.Connection,
        current: tuple[int, bytes],
        nxt: tuple[int, bytes],
        now: int,
    ) -> None:
        """Store ``nxt`` as the next key (replacing another next key), and ``current`` as
        the current one unless a key change already stored it."""
        conn.execute(
            "INSERT OR IGNORE INTO mac_keys (role, version, key, stored_at) "
            "VALUES ('current', ?, ?, ?)",
            (*current, now),
        )
        conn.execute(
            "INSERT OR REPLACE INTO mac_keys (role, version, key, stored_at) "
            "VALUES ('next', ?, ?, ?)",
            (*nxt, now),
        )

    @staticmethod
    def promote_next_key(conn: sqlite3.Connection, now: int) -> None:
        """The next key becomes the current one; the old current key is gone."""
        if conn.execute("SELECT 1 FROM mac_keys WHERE role = 'next'").fetchone() is None:
            raise sqlite3.IntegrityError("no next key to promote")
        conn.execute("DELETE FROM mac_keys WHERE role = 'current'")
        conn.execute(
            "UPDATE mac_keys SET role = 'current', stored_at = ? WHERE role = 'next'", (now,)
        )

    @staticmethod
    def remember_key_request(conn: sqlite3.Connection, digest: bytes, now: int) -> None:
        conn.execute("INSERT OR IGNORE INTO key_requests (digest, at) VALUES (?, ?)", (digest, now))

    @staticmethod
    def boot(conn: sqlite3.Connection, initial: InitialWear, info: BootInfo) -> RebootReason:
        """Mark the terminal running; return why it (re)booted.

        First boot: the ``initial`` wear (and tamper) is stored, its reboot reason kept.
        Later boots: :attr:`~RebootReason.POWER_LOSS` if the last run never shut down
        (killed, power cut), else :attr:`~RebootReason.RESTART`. ``info`` (what ``possim
        show`` tells about this run) replaces the last boot's.
        """
        conn.execute(
            "INSERT OR REPLACE INTO boot (id, booted_at, model, key_version, key_kcv) "
            "VALUES (1, ?, ?, ?, ?)",
            (int(info.booted_at.timestamp()), info.model, info.key_version, info.key_kcv),
        )
        row = conn.execute("SELECT running FROM wear WHERE id = 1").fetchone()
        if row is None:
            w = initial.wear
            conn.execute(
                f"INSERT INTO wear (id, {_WEAR_COLUMNS}, running) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (w.chip, w.contactless, w.magstripe, w.printer_lines, w.paper_left,
                 w.battery_level_bp, w.battery_used_bp, w.logs_bytes, int(w.last_reboot)),
            )  # fmt: skip
            if initial.tampered_at is not None:
                StateStore.trip_tamper(conn, int(initial.tampered_at.timestamp()))
            return w.last_reboot
        reason = RebootReason.POWER_LOSS if row[0] else RebootReason.RESTART
        conn.execute("UPDATE wear SET running = 1, last_reboot = ? WHERE id = 1", (int(reason),))
        return reason

    @staticmethod
    def shut_down(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE wear SET running = 0 WHERE id = 1")

    @staticmethod
    def save_wear(conn: sqlite3.Connection, w: Wear) -> None:
        conn.execute(
            "UPDATE wear SET chip = ?, contactless = ?, magstripe = ?, printer_lines = ?, "
            "paper_left = ?, battery_level_bp = ?, battery_used_bp = ?, logs_bytes = ? "
            "WHERE id = 1",
            (w.chip, w.contactless, w.magstripe, w.printer_lines, w.paper_left,
             w.battery_level_bp, w.battery_used_bp, w.logs_bytes),
        )  # fmt: skip

    @staticmethod
    def trip_tamper(conn: sqlite3.Connection, now: int) -> datetime:
        """Trip the tamper switch (a switch already tripped keeps its first time)."""
        conn.execute("INSERT OR IGNORE INTO tamper (id, tripped_at) VALUES (1, ?)", (now,))
        at = conn.execute("SELECT tripped_at FROM tamper WHERE id = 1").fetchone()[0]
        when = _dt(at)
        assert when is not None
        return when

    @staticmethod
    def record_sale(conn: sqlite3.Connection, sale: SaleRecord) -> None:
        conn.execute(
            "INSERT INTO sales (at, stan, amount, card_type, code, fee, net, approval, "
            "table_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(sale.at.timestamp()),
                sale.stan,
                sale.amount,
                sale.card_type,
                sale.code,
                sale.fee,
                sale.net,
                sale.approval,
                sale.table_version,
            ),
        )
        conn.execute("DELETE FROM sales WHERE id <= (SELECT max(id) FROM sales) - ?", (KEEP_SALES,))
