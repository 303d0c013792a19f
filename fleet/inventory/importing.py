"""What every inventory import shares: its result, the errors of one file, and the
one-statement upsert that writes a chunk of rows.

An import is **atomic** (every row is checked; one bad row rejects the file and nothing is
written) and an **idempotent upsert** (re-importing a file changes nothing; columns a file
does not have are left as they are).
"""

from __future__ import annotations

import hashlib
import operator
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from fleet.core import audit
from fleet.core.records import Row, RowError, Schema, shape_error

__all__ = [
    "CHUNK",
    "ChunkWriter",
    "FileErrors",
    "ImportResult",
    "bulk_load",
    "count_rows",
    "parse_row",
    "record_import",
    "schema_defaults",
    "sha256",
    "upsert",
]

CHUNK = 5000
"""Rows written per statement."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: rows read, rows new, rows updated (or unchanged), the file's hash."""

    kind: str
    path: str
    rows: int
    inserted: int
    updated: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileErrors:
    """The errors found in one file so far."""

    def __init__(self) -> None:
        self.items: list[RowError] = []

    def add(self, row: Row, column: str, reason: str) -> None:
        self.items.append(RowError(row.path, row.line, column, reason))

    def __bool__(self) -> bool:
        return bool(self.items)


def parse_row(
    schema: Schema, row: Row, errors: FileErrors, *, named: bool, section: str = ""
) -> dict[str, Any] | None:
    """A row's typed values, or ``None`` with its errors added: a malformed row (wrong
    width, not an object), fields the schema does not know (``named``: a JSON/TOML object
    names its cells; a CSV's header is checked once, not per row), cells that don't parse.
    """
    bad = shape_error(row)
    if bad:
        errors.items.append(bad)
        return None
    if named:
        for name in row.cells:
            if name not in schema.by_name:
                errors.add(row, name, f"unknown field in {section}" if section else "unknown field")
    return schema.parse(row, errors.items)


def record_import(
    conn: Connection, kind: str, path: Path, rows: int, inserted: int, *, actor: str
) -> ImportResult:
    """The import's result (every row not inserted was updated or unchanged), audited in
    the import's transaction."""
    result = ImportResult(kind, str(path), rows, inserted, rows - inserted, sha256(path))
    audit.record(
        conn, actor=actor, action="import", target=f"{kind}:{path.name}", details=result.as_dict()
    )
    return result


def sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema_defaults(schema: Schema) -> dict[str, Any]:
    """Column → default value: what a new row holds where the file has no cell."""
    return {c.name: c.default for c in schema.columns}


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: Iterable[str],
    update: Iterable[str],
    *,
    fresh: bool = False,
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update, in one executemany
    (PostgreSQL with psycopg 3: the rows are COPYed into a staging table, then upserted from
    it in one statement, :func:`_copy_upsert`).

    Every row has the same keys. On SQLite the statement is compiled once and the rows go
    to the driver as tuples (through the columns' own bind processors, so values are
    stored exactly as ``conn.execute`` would store them), without SQLAlchemy's per-row
    parameter handling, which costs as much as SQLite's own work on a 1 M-row import.
    """
    if not rows:
        return
    ins: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
    update = [c for c in update if c not in keys]
    if update:
        stmt = ins.on_conflict_do_update(
            index_elements=list(keys), set_={c: ins.excluded[c] for c in update}
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(keys))
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_upsert(conn, table, rows, list(keys), update, fresh=fresh)
        return
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup
    assert names is not None  # SQLite's parameters are positional
    dialect = conn.dialect
    processors = [
        (i, process)
        for i, name in enumerate(names)
        if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    cells = operator.itemgetter(*names)
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(cells(row)) if len(names) > 1 else [cells(row)]
        for i, process in processors:
            values[i] = process(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(compiled.string, params)


def _copy_upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
    *,
    fresh: bool = False,
) -> None:
    """PostgreSQL: ``COPY`` the rows into a temporary staging table of the same columns
    (psycopg 3 writes each value in COPY's text format: tabs, newlines, backslashes and
    quotes in values arrive as they were), then one ``INSERT … SELECT … ON CONFLICT``.

    Values go through the columns' own bind processors first, as ``conn.execute`` would
    send them; a key repeated within the rows keeps its last row (what one upsert per row
    would leave). The staging table lives until the transaction ends. ``fresh``: the table
    held no row when the load began and the caller checked the keys unique (a
    :func:`bulk_load`): the rows are ``COPY``ed straight into it, nothing to upsert.
    """
    names = list(rows[0])
    key_of = operator.itemgetter(*keys)
    by_key = {key_of(row): row for row in rows}
    if len(by_key) < len(rows):
        rows = list(by_key.values())
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    processors = [
        (i, process)
        for i, n in enumerate(names)
        if (process := table.c[n].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    cells = operator.itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    stage = quote(f"posfleet_stage_{table.name}")
    cols = ", ".join(quote(n) for n in names)
    target = quote(table.name)
    if table.schema:
        target = f"{quote(table.schema)}.{target}"
    if not fresh:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {target} WITH NO DATA"
        )
        conn.exec_driver_sql(f"TRUNCATE {stage}")
    into = target if fresh else stage
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    try:
        with dbapi.cursor() as cur, cur.copy(f"COPY {into} ({cols}) FROM STDIN") as copy:
            for row in rows:
                if processors:
                    values = list(cells(row))
                    for i, process in processors:
                        values[i] = process(values[i])
                    copy.write_row(values)
                else:
                    copy.write_row(cells(row))
    except conn.dialect.loaded_dbapi.IntegrityError as exc:  # a unique index refused a row
        raise IntegrityError(f"COPY {into}", None, exc) from None
    if fresh:
        return
    key_list = ", ".join(quote(k) for k in keys)
    if update:
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update)
        # a row already as the file has it is left alone (no new row version, no index
        # entries, no foreign-key checks): a re-import writes only what changed
        same = ", ".join(_comparable(table, c, f"{target}.{quote(c)}") for c in update)
        new = ", ".join(_comparable(table, c, f"excluded.{quote(c)}") for c in update)
        action = f"DO UPDATE SET {sets} WHERE ROW({same}) IS DISTINCT FROM ROW({new})"
    else:
        action = "DO NOTHING"
    # through SQLAlchemy: a refused row is an IntegrityError, as with executemany
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
        f"ON CONFLICT ({key_list}) {action}"
    )


def _comparable(table: Table, name: str, ref: str) -> str:
    """``ref`` as a value PostgreSQL can compare: ``json`` has no equality, its text has
    (both sides come from the same bind processor, so equal values are equal texts)."""
    return f"{ref}::text" if isinstance(table.c[name].type, JSON) else ref


@contextmanager
def bulk_load(conn: Connection, table: Table) -> Iterator[bool]:
    """PostgreSQL, a load into an empty table: its foreign keys and plain indexes (not
    unique, no expression, no predicate: made again exactly as they were) are dropped for
    the load and made again at the end of it, then the table is ``ANALYZE``d.

    Each row then costs no foreign-key trigger (a locked look-up of a parent row each) and
    no insertion into those indexes: each foreign key is checked once, in one join, and
    each index is built in one sorted pass. Unique indexes stay, so a clash is still
    refused by its chunk. DDL is transactional on PostgreSQL, so a failed or killed
    load leaves the table, its indexes and its constraints as they were. The table is
    locked (``ACCESS EXCLUSIVE``) until the transaction ends: readers of an empty table
    wait for the load instead of seeing it grow. Yields whether it did so: on SQLite, or
    when the table has rows, it changes nothing (yields ``False``).

    A constraint the rows break raises :class:`~sqlalchemy.exc.IntegrityError` when it is
    made again (the importer checks references and keys before, so this is a backstop).
    """
    if conn.dialect.name != "postgresql":
        yield False
        return
    quote = conn.dialect.identifier_preparer.quote
    target = quote(table.name) if not table.schema else f"{quote(table.schema)}.{quote(table.name)}"

    def empty() -> bool:
        return conn.execute(select(literal(1)).select_from(table).limit(1)).first() is None

    # locked only when empty (a re-import of a fleet leaves its readers alone), and looked
    # at again once locked: another load may have filled it in between
    if not empty():
        yield False
        return
    conn.exec_driver_sql(f"LOCK TABLE {target} IN ACCESS EXCLUSIVE MODE")
    if not empty():
        yield False
        return
    oid = {"t": target}
    foreign = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"
        ),
        oid,
    ).all()
    indexes = conn.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY c.relname"
        ),
        oid,
    ).all()
    schema = conn.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = CAST(:t AS regclass)"
        ),
        oid,
    ).scalar_one()
    for name, _ in foreign:
        conn.exec_driver_sql(f"ALTER TABLE {target} DROP CONSTRAINT {quote(name)}")
    for name, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {quote(schema)}.{quote(name)}")
    yield True
    for _, ddl in indexes:
        conn.exec_driver_sql(ddl)
    for name, ddl in foreign:
        conn.exec_driver_sql(f"ALTER TABLE {target} ADD CONSTRAINT {quote(name)} {ddl}")
    conn.exec_driver_sql(f"ANALYZE {target}")


class ChunkWriter:
    """Chunks of rows upserted in one transaction, each in a ``SAVEPOINT`` where the
    database aborts the transaction on an error (PostgreSQL). A chunk the database refuses
    (:class:`~sqlalchemy.exc.IntegrityError`) stops the writing and is kept in
    :attr:`refused`, so the caller can name the clash; the file is rejected anyway.

    On PostgreSQL the chunks are written by a thread of their own while the caller reads
    and checks the next one: the server's work (``COPY``, the ``INSERT … SELECT``, its
    indexes) overlaps the client's instead of taking turns with it. One chunk waits at
    most, so memory stays at three chunks. The caller hands a chunk over and does not
    touch it again; it uses the connection only once :attr:`refused` is set (nothing
    is written after that) or after the ``with`` block.
    """

    def __init__(
        self,
        conn: Connection,
        table: Table,
        keys: list[str],
        update: list[str],
        *,
        fresh: bool = False,
    ) -> None:
        self.conn, self.table, self.keys, self.update = conn, table, keys, update
        self.fresh = fresh
        self.refused: list[dict[str, Any]] | None = None
        self._savepoint = conn.dialect.name != "sqlite"
        self._failed: BaseException | None = None
        self._stop = False
        self._chunks: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        if conn.dialect.name == "postgresql":
            self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)

    def __enter__(self) -> ChunkWriter:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self._stop = True  # the caller failed: write nothing more, just end
        self._end()
        if self._failed is not None and exc is None:
            raise self._failed

    def finish(self) -> None:
        """Return once every chunk handed over is written (or :attr:`refused`)."""
        self._end()
        if self._failed is not None:
            raise self._failed

    def _end(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Upsert ``rows`` (now, or in the writer thread), unless a chunk was refused."""
        if self._thread is None:
            self._write(rows)
            return
        if self._failed is not None:
            raise self._failed
        self._chunks.put(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.refused is not None or self._stop:
            return
        try:
            with self.conn.begin_nested() if self._savepoint else nullcontext():
                upsert(self.conn, self.table, rows, self.keys, self.update, fresh=self.fresh)
        except IntegrityError:
            self.refused = rows

    def _run(self) -> None:
        while (rows := self._chunks.get()) is not None:
            if self._failed is None:
                try:
                    self._write(rows)
                except BaseException as exc:
                    self._failed = exc
