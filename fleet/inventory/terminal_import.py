"""The import of a whole inventory file: validated, then upserted in one transaction.

Every row is checked (cells, references to the catalog and to merchants, duplicate
serials, live TIDs, status rules) and every bad row is reported as ``file:line: column:
reason``; one bad row rejects the file and nothing is written. Re-importing a file changes
nothing, and columns a file does not have are left as they are (a re-imported inventory
keeps what ``sync`` learnt).

Terminals stream through in chunks inside one transaction, so a 1 M-row inventory never
sits in memory as rows, and a killed import leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from fleet.core import clock
from fleet.core.db import writer
from fleet.core.models import TERMINALS
from fleet.core.records import RejectedFileError, RowError, read_rows
from fleet.inventory.importing import (
    CHUNK,
    ChunkWriter,
    FileErrors,
    ImportResult,
    bulk_load,
    count_rows,
    parse_row,
    record_import,
    schema_defaults,
)
from fleet.inventory.terminals import LIVE, TERMINAL, TERMINAL_HEADER, CatalogRefs, check_terminal

__all__ = ["import_terminals"]


def import_terminals(
    engine: Engine,
    path: Path,
    *,
    actor: str,
    fmt: str | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    at: datetime | None = None,
) -> ImportResult:
    """Validate and upsert an inventory file in one transaction (see the module's notes);
    ``at``: the instant dates are checked against (default now, :mod:`fleet.core.clock`)."""
    chosen, header, rows = read_rows(path, "terminals", fmt)
    errors = FileErrors()
    name = str(path)
    if chosen == "csv":  # JSON objects: unknown keys and empty cells are checked per row
        errors.items.extend(TERMINAL.check_header(name, header))
        for column in TERMINAL_HEADER:
            if column not in header and TERMINAL.by_name[column].required is False:
                errors.items.append(RowError(name, 1, column, "required column missing"))
    if errors:
        raise RejectedFileError(errors.items)
    defaults = schema_defaults(TERMINAL)
    update = [c for c in header if c != "serial"]
    table = TERMINALS
    at = at or clock.now()
    serials: dict[str, int | str] = {}
    # live TID → its terminal's serial (whose first line is in ``serials``), or (line,
    # serial) when that line is not the serial's first: no tuple per TID on 1 M rows
    tids: dict[str, str | tuple[int | str, str]] = {}
    total = 0
    buffer: list[dict[str, Any]] = []
    with writer(engine).connect() as conn, conn.begin():
        catalog = CatalogRefs.load(conn)
        before = count_rows(conn, table)
        # A refused chunk only needs to leave the connection usable to name the clash (the
        # file is rejected and everything rolled back): ChunkWriter keeps it. PostgreSQL
        # aborts the whole transaction on an error, so each chunk is a SAVEPOINT there;
        # SQLite undoes just the failing statement, and a SAVEPOINT would journal every
        # page the import touches: four times slower.
        explained = False

        def flush() -> None:
            nonlocal buffer, explained
            if not errors and buffer:
                chunks.write(buffer)  # handed over: a new list for the next chunk
                buffer = []
            buffer.clear()
            if chunks.refused is not None and not explained:
                _explain_conflict(conn, chunks.refused, errors, name)
                explained = True

        try:
            # an empty table on PostgreSQL: rows COPYed straight in, foreign keys and plain
            # indexes made once, at the end
            with (
                bulk_load(conn, table) as bulk,
                ChunkWriter(conn, table, ["serial"], update, fresh=bulk) as chunks,
            ):
                for row in rows:
                    total += 1
                    if progress is not None and total % 10_000 == 0:
                        progress(total)
                    v = parse_row(TERMINAL, row, errors, named=chosen != "csv")
                    if v is None:
                        continue
                    serial = v["serial"]
                    first = serials.get(serial)
                    if first is None:  # by presence, not by line: one-line JSON holds many rows
                        serials[serial] = row.line
                    else:
                        errors.add(
                            row, "serial", f"duplicate serial {serial} (first on line {first})"
                        )
                    if v["status"] in LIVE and v.get("tid"):
                        tid = v["tid"]
                        prior = tids.get(tid)
                        if prior is None:
                            tids[tid] = serial if first is None else (row.line, serial)
                        else:
                            line, holder = (
                                (serials[prior], prior) if isinstance(prior, str) else prior
                            )
                            if holder != serial:
                                errors.add(
                                    row, "tid", f"TID {tid} is also {holder}'s (line {line})"
                                )
                    for column, reason in check_terminal(v, catalog, at):
                        errors.add(row, column, reason)
                    if not errors:
                        buffer.append(defaults | v)
                        if len(buffer) >= chunk:
                            flush()
                flush()
                chunks.finish()
                flush()  # names the clash of a chunk refused last
                if progress is not None:
                    progress(total)
                if errors:
                    raise RejectedFileError(errors.items, total)  # rolls back
        except IntegrityError as exc:  # a constraint made again at the end refused the rows
            reason = str(exc.orig).strip().splitlines()[0]
            raise RejectedFileError(
                [RowError(name, "?", "", f"the database refused the file: {reason}")], total
            ) from None
        inserted = count_rows(conn, table) - before
        result = record_import(conn, "terminals", path, total, inserted, actor=actor)
    return result


def _explain_conflict(
    conn: Connection, rows: list[dict[str, Any]], errors: FileErrors, path: str
) -> None:
    """A chunk broke the live-TID index: name which TIDs belong to which other terminals."""
    by_tid = {r["tid"]: r["serial"] for r in rows if r.get("tid") and r["status"] in LIVE}
    found = conn.execute(
        select(TERMINALS.c.serial, TERMINALS.c.tid).where(
            TERMINALS.c.tid.in_(list(by_tid)),
            TERMINALS.c.status.in_(LIVE),
        )
    ).all()
    reported = False
    for serial, tid in found:
        if tid in by_tid and by_tid[tid] != serial:
            errors.items.append(
                RowError(path, "?", "tid", f"TID {tid} of {by_tid[tid]} is in use by {serial}")
            )
            reported = True
    if not reported:
        errors.items.append(RowError(path, "?", "", "the database refused a chunk (constraint)"))
