"""Day sheets: a field engineer's CSV of swaps, all or none.

Every row is checked first, a bad row rejects the file (``file:line: column: reason``),
and the swaps are one transaction; the published tables are read once for the sheet
and each merchant's target is one indexed query (:func:`fleet.fees.targets.target_of`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from fleet.core.db import writer
from fleet.core.errors import FleetError
from fleet.core.models import now
from fleet.core.policy import Policy
from fleet.core.records import Column, RejectedFileError, RowError, Schema, read_rows, shape_error
from fleet.core.values import parse_link, parse_serial
from fleet.fees.tables import load_tables
from fleet.swaps.visit import SwapResult, swap_in

__all__ = ["DAY_SHEET", "day_sheet"]

DAY_SHEET = Schema(
    "swaps",
    (
        Column("old_serial", parse_serial),
        Column("new_serial", parse_serial),
        Column("reason", lambda t: t.strip(), required=False, default=""),
        Column("reason_code", lambda t: t.strip(), required=False, default=""),
        Column("engineer", lambda t: t.strip()[:80], required=False, default=""),
        Column("port", parse_link, required=False),
    ),
)

_NO_KEY = "provisioning on a port needs the fleet master key, and none was given"


def day_sheet(
    engine: Engine,
    path: Path,
    *,
    actor: str,
    policy: Policy,
    engineer: str = "",
    ports: bool = True,
) -> list[tuple[SwapResult, str | None]]:
    """Every swap of a day sheet, in one transaction; returns each with its port (to
    provision after). Raises :class:`RejectedFileError` listing every bad row.

    ``ports=False``: the caller cannot provision (it has no master key), so a row that
    gives a port is a bad row rather than a swap left unprovisioned."""
    _fmt, header, rows = read_rows(path, "swaps")
    errors: list[RowError] = list(DAY_SHEET.check_header(str(path), header))
    if errors:
        raise RejectedFileError(errors)
    parsed: list[tuple[Any, dict[str, Any]]] = []
    for row in _rows(rows, errors):
        values = DAY_SHEET.parse(row, errors)
        if values is not None and values.get("port") and not ports:
            errors.append(RowError(row.path, row.line, "port", _NO_KEY))
        elif values is not None:
            parsed.append((row, values))
    seen: dict[str, Any] = {}
    for row, v in parsed:
        for col in ("old_serial", "new_serial"):
            if v[col] in seen:
                errors.append(
                    RowError(row.path, row.line, col, f"{v[col]} is already on line {seen[v[col]]}")
                )
            seen[v[col]] = row.line
    at = now()
    done: list[tuple[SwapResult, str | None]] = []
    with writer(engine).begin() as conn:
        tables = load_tables(conn)
        for row, v in parsed:
            try:
                result = swap_in(
                    conn, v["old_serial"], v["new_serial"], reason=v["reason"], actor=actor,
                    policy=policy, engineer=v.get("engineer") or engineer, at=at, tables=tables,
                    reason_code=v.get("reason_code") or None,
                )  # fmt: skip
            except FleetError as exc:
                errors.append(RowError(row.path, row.line, "", str(exc)))
                continue
            done.append((result, v.get("port")))
        if errors:  # raising rolls back every swap of the sheet
            raise RejectedFileError(errors, len(parsed))
    return done


def _rows(rows: Iterator[Any], errors: list[RowError]) -> Iterator[Any]:
    for row in rows:
        shaped = shape_error(row)
        if shaped is not None:
            errors.append(shaped)
            continue
        yield row
