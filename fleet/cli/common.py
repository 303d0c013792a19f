"""What every `posfleet` command shares: the root options (:class:`State`), the options
many commands take (declared once here), output as a table, CSV or JSON, and the one place
that turns an error into a line on stderr and an exit code.

Exit codes: 2 for bad usage or bad input (a Typer usage error, an
:class:`~fleet.core.errors.InputError`), 1 for a job that ran and failed (any other
:class:`~fleet.core.errors.FleetError`, a :class:`~protocols.errors.ProtocolError`). The
root command (:mod:`fleet.cli`) applies :func:`exit_code_for` to whatever a command raises.

This module is imported by every command, so it imports only the standard library, Typer,
the light parts of Rich and the light face of :mod:`fleet.core`: the database (SQLAlchemy,
Alembic) is imported when a command first asks :meth:`State.engine` for it.
"""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fleet.core.errors import FleetError
from fleet.core.records import RejectedFileError
from protocols.errors import ProtocolError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fleet.core.policy import Policy
    from fleet.inventory import ImportResult

__all__ = [
    "CsvJson",
    "FileFormat",
    "Format",
    "ImportOutput",
    "KeyFileOpt",
    "OptionalKeyFileOpt",
    "OutOpt",
    "State",
    "TableJson",
    "check_format",
    "emit",
    "emit_json",
    "err_console",
    "exit_code_for",
    "fail",
    "handled",
    "load_key",
    "option_date",
    "option_days",
    "out",
    "print_import",
    "show_record",
    "state",
]

err_console = Console(stderr=True)
out = Console()

FORMATS = ("table", "csv", "json")
MAX_ROW_ERRORS = 200
"""How many bad rows of a rejected file are printed (all are counted)."""


# --- options many commands take --------------------------------------------------------


class Format(enum.StrEnum):
    """``--format`` of a listing: a Rich table, CSV or JSON."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class TableJson(enum.StrEnum):
    """``--format`` of one record or a job's summary."""

    TABLE = "table"
    JSON = "json"


class CsvJson(enum.StrEnum):
    """``--format`` of an export (what an import reads back)."""

    CSV = "csv"
    JSON = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format")]
TableJsonOpt = Annotated[TableJson, typer.Option("--format", "-f", help="Output format")]
CsvJsonOpt = Annotated[CsvJson, typer.Option("--format", "-f", help="Output format")]


class FileFormat(enum.StrEnum):
    """``--format`` of a file to import (default: from its suffix)."""

    CSV = "csv"
    JSON = "json"
    TOML = "toml"


class ImportOutput(enum.StrEnum):
    """``--output`` of an import: one line, or its result as JSON."""

    TEXT = "text"
    JSON = "json"


FileFormatOpt = Annotated[
    FileFormat | None,
    typer.Option("--format", help="File format (default: from the suffix)"),
]
ImportOutputOpt = Annotated[
    ImportOutput, typer.Option("--output", help="What to print: a line or JSON")
]


def _writable(path: Path | None) -> Path | None:
    if path is not None and not path.parent.is_dir():
        raise typer.BadParameter(f"directory {path.parent} does not exist")
    return path


OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write to this file (default: stdout)", callback=_writable),
]
KeyFileOpt = Annotated[
    Path,
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help="Fleet master key file"),
]
OptionalKeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help="Fleet master key file"),
]


def load_key(path: Path) -> bytes:
    """The fleet master key in ``path`` (``--key-file``); a bad file fails the command."""
    from protocols.mac import load_master_key  # noqa: PLC0415 - cryptography when needed

    try:
        return load_master_key(path)
    except (OSError, ProtocolError) as exc:
        raise fail(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


# --- the root options ------------------------------------------------------------------


@dataclass
class State:
    """The root options (``posfleet --db … --actor … --policy …``)."""

    db: str | None = None
    actor: str = ""
    policy_path: Path | None = None
    _engine: Engine | None = field(default=None, repr=False)

    def engine(self, *, current: bool = True) -> Engine:
        """The database's engine (made once), its schema checked to be current."""
        from fleet.core import db  # noqa: PLC0415 - SQLAlchemy only for commands that use it

        if self._engine is None:
            self._engine = db.connect(self.db)
        if current:
            db.require_current(self._engine)
        return self._engine

    def policy(self) -> Policy:
        from fleet.core.policy import Policy  # noqa: PLC0415

        return Policy.load(self.policy_path)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


# --- errors → one line, exit code ------------------------------------------------------


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable error line and return the Exit to raise."""
    err_console.print(
        f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True
    )
    return typer.Exit(code)


def _hint(exc: FleetError) -> str:
    """What a person at the command line does about it (the domain's message says what)."""
    db = sys.modules.get("fleet.core.db")
    if db is not None and isinstance(exc, db.SchemaNotCurrentError):
        return ": run `posfleet db upgrade`"
    return ""


def exit_code_for(exc: FleetError | ProtocolError) -> int:
    """Print ``exc`` as one line on stderr (a rejected file: each bad row first) and return
    the exit code: the error class's :attr:`~fleet.core.errors.FleetError.exit_code`, 1 for
    a protocol error."""
    if isinstance(exc, RejectedFileError):
        for error in exc.errors[:MAX_ROW_ERRORS]:
            err_console.print(str(error), highlight=False, soft_wrap=True, markup=False)
        if len(exc.errors) > MAX_ROW_ERRORS:
            more = len(exc.errors) - MAX_ROW_ERRORS
            err_console.print(f"… and {more} more", highlight=False)
    if isinstance(exc, FleetError):
        fail(f"{exc}{_hint(exc)}")
        return exc.exit_code
    fail(str(exc))
    return 1


@contextmanager
def handled() -> Iterator[None]:
    """Typed errors → one line on stderr and their exit code. The root command does this
    for every command; a command uses it to stop a typed error where it wants to."""
    try:
        yield
    except (FleetError, ProtocolError) as exc:
        raise typer.Exit(exit_code_for(exc)) from None


# --- option values ---------------------------------------------------------------------


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    if fmt not in allowed:
        raise fail(f"--format must be one of {', '.join(allowed)}, not {fmt!r}", 2)
    return fmt


def option_date(text: str | None, name: str) -> date | None:
    from fleet.core.values import parse_date  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


def option_days(text: str | None, name: str) -> int | None:
    from fleet.core.values import parse_duration_days  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_duration_days(text)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


# --- output ----------------------------------------------------------------------------


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
    json_doc: Callable[[list[dict[str, Any]]], Any] | None = None,
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
            doc = json_doc(listed) if json_doc is not None else listed
            json.dump(doc, stream, indent=2, ensure_ascii=False, default=_text)
            stream.write("\n")
    finally:
        if sink:
            sink.close()
    return count


def emit_json(doc: Any) -> None:
    """One JSON document on stdout, as Rich prints it (indented, dates as ISO 8601)."""
    out.print_json(json.dumps(doc, default=_text))


def print_import(result: ImportResult, output: ImportOutput) -> None:
    """What an import did: one line, or its result as JSON."""
    if output == ImportOutput.JSON:
        emit_json(result.as_dict())
        return
    out.print(
        f"{result.kind}: {result.rows} rows from {result.path}: "
        f"{result.inserted} new, {result.updated} updated or unchanged",
        highlight=False,
    )


def show_record(title: str, record: dict[str, Any]) -> None:
    """One record as a two-column table: field, value."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        table.add_row(key, "" if text is None else str(text))
    out.print(table)
