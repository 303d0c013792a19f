"""What every inventory import shares: its result, the errors of one file, and the
one-statement upsert that writes a chunk of rows.

An import is **atomic** (every row is checked; one bad row rejects the file and nothing is
written) and an **idempotent upsert** (re-importing a file changes nothing; columns a file
does not have are left as they are).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from fleet.core import audit
from fleet.core.records import Row, RowError, Schema, shape_error

__all__ = [
    "CHUNK",
    "FileErrors",
    "ImportResult",
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
        _copy_upsert(conn, table, rows, list(keys), update)
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
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> None:
    """PostgreSQL: ``COPY`` the rows into a temporary staging table of the same columns
    (psycopg 3 writes each value in COPY's text format: tabs, newlines, backslashes and
    quotes in values arrive as they were), then one ``INSERT … SELECT … ON CONFLICT``.

    Values go through the columns' own bind processors first, as ``conn.execute`` would
    send them; a key repeated within the rows keeps its last row (what one upsert per row
    would leave). The staging table lives until the transaction ends.
    """
    names = list(rows[0])
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[k] for k in keys)] = row
    if len(by_key) < len(rows):
        rows = list(by_key.values())
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    stage = quote(f"posfleet_stage_{table.name}")
    cols = ", ".join(quote(n) for n in names)
    target = quote(table.name)
    if table.schema:
        target = f"{quote(table.schema)}.{target}"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
        f"SELECT {cols} FROM {target} WITH NO DATA"
    )
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur, cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        for row in rows:
            values = []
            for name, process in zip(names, processors, strict=True):
                value = row[name]
                values.append(value if process is None else process(value))
            copy.write_row(values)
    key_list = ", ".join(quote(k) for k in keys)
    if update:
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    # through SQLAlchemy: a refused row is an IntegrityError, as with executemany
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
        f"ON CONFLICT ({key_list}) {action}"
    )
