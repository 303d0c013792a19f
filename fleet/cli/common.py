"""What every `posfleet` command shares: consoles, the one-line error, the database and
actor from the root options, output in table/csv/json, and the mapping of typed errors
to exit codes (2: bad usage, 1: a failed job)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from fleet.core.db import DatabaseError, connect, require_current
from fleet.core.errors import FleetError
from fleet.core.policy import Policy, PolicyError
from fleet.core.records import RejectedFileError
from fleet.core.values import parse_date, parse_duration_days
from fleet.inventory.service import NotFoundError
from protocols.errors import ProtocolError

err_console = Console(stderr=True)
out = Console()

FORMATS = ("table", "csv", "json")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable error line and return the Exit to raise."""
    err_console.print(
        f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True
    )
    return typer.Exit(code)


@dataclass
class State:
    """The root options (``posfleet --db … --actor … --policy …``)."""

    db: str | None = None
    actor: str = ""
    policy_path: Path | None = None
    _engine: Engine | None = field(default=None, repr=False)

    def engine(self, *, current: bool = True) -> Engine:
        if self._engine is None:
            self._engine = connect(self.db)
        if current:
            require_current(self._engine)
        return self._engine

    def policy(self) -> Policy:
        return Policy.load(self.policy_path)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


@contextmanager
def handled() -> Iterator[None]:
    """Typed errors → one line on stderr and exit 1, or a :class:`FleetError`'s own exit
    code (a rejected file lists every bad row)."""
    try:
        yield
    except RejectedFileError as exc:
        for error in exc.errors[:200]:
            err_console.print(str(error), highlight=False, soft_wrap=True, markup=False)
        if len(exc.errors) > 200:
            err_console.print(f"… and {len(exc.errors) - 200} more", highlight=False)
        raise fail(exc.summary()) from None
    except (DatabaseError, NotFoundError, PolicyError, ProtocolError) as exc:
        raise fail(str(exc)) from None
    except FleetError as exc:  # the fleet's own errors say which exit code they take
        raise fail(str(exc), exc.exit_code) from None


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    if fmt not in allowed:
        raise fail(f"--format must be one of {', '.join(allowed)}, not {fmt!r}", 2)
    return fmt


def option_date(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


def option_days(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration_days(text)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(_text(v) for v in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def emit(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    title: str = "",
    out_file: Path | None = None,
    json_doc: Any = None,
) -> int:
    """Write rows as a Rich table, CSV or JSON (to ``out_file`` or stdout); returns the count.

    ``json_doc`` replaces the plain list of rows for JSON output (e.g. rows + a summary).
    """
    count = 0
    if fmt == "table":
        table = Table(title=title or None, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, overflow="fold", no_wrap=i == 0)
        for row in rows:
            table.add_row(*(_text(row.get(c)) for c in columns))
            count += 1
        if out_file is not None:
            with out_file.open("w", encoding="utf-8") as fh:
                Console(file=fh, width=200).print(table)
        else:
            out.print(table)
        return count
    sink = out_file.open("w", encoding="utf-8", newline="") if out_file else None
    stream: Any = sink or sys.stdout
    try:
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_text(row.get(c)) for c in columns])
                count += 1
        else:
            listed = list(rows)
            count = len(listed)
            doc = json_doc(listed) if callable(json_doc) else listed
            json.dump(doc, stream, indent=2, ensure_ascii=False, default=_text)
            stream.write("\n")
    finally:
        if sink:
            sink.close()
    return count
