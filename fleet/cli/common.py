"""What every `posfleet` command shares: the root options (:class:`State`), the options
many commands take (declared once here), output as a table, CSV or JSON, and the one place
that turns an error into a line on stderr and an exit code.

Exit codes: 2 for bad usage or bad input (a Typer usage error, an
:class:`~fleet.core.errors.InputError`), 1 for a job that ran and failed (any other
:class:`~fleet.core.errors.FleetError`, a :class:`~protocols.errors.ProtocolError`). The
root command (:mod:`fleet.cli`) applies :func:`exit_code_for` to whatever a command raises,
so commands catch no typed error; what to do about one, in the CLI's words (the domain's
never name a flag), is declared on the command with :func:`hints`.

This module is imported by every command, so it imports only the standard library, Typer,
Rich's console (its tables when one is printed), :mod:`fleet.core.errors` and
:mod:`fleet.core.escaping`: the database (SQLAlchemy, Alembic) is imported when a command
first asks :meth:`State.engine` for it. (Over 400 lines so that everything every command
shares — options, the safe console, output, errors — is this one light module, which is
all ``posfleet --help`` loads of the CLI; writing ``--out`` files is :mod:`fleet.cli.outfile`,
loaded when a command has one.)
"""

from __future__ import annotations

import enum
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Span, Text

from fleet.core.errors import FleetError
from fleet.core.escaping import CsvWriter, terminal_text
from protocols.errors import ProtocolError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fleet.core.dbapi import QuickDatabase
    from fleet.core.policy import Policy
    from fleet.device.keyring import KeyRing
    from fleet.inventory import ImportResult

__all__ = [
    "AllowOpenKeyOpt",
    "CsvJson",
    "FileFormat",
    "ForceOpt",
    "Format",
    "ImportOutput",
    "KeyFileOpt",
    "LimitOpt",
    "OptionalKeyFileOpt",
    "OutOpt",
    "ReasonOpt",
    "SafeConsole",
    "State",
    "TableJson",
    "check_format",
    "counted_progress",
    "emit",
    "emit_json",
    "err_console",
    "exit_code_for",
    "fail",
    "fit_columns",
    "handled",
    "hints",
    "limit_option",
    "load_keys",
    "option_date",
    "option_days",
    "out",
    "print_import",
    "reason_option",
    "show_record",
    "state",
    "text_argument",
    "write_out",
]


class SafeConsole(Console):
    """A Rich console that never lets text from data drive the terminal: every string and
    :class:`~rich.text.Text` it renders has its control characters (ESC, BEL, C1…) and bidi
    overrides shown as ``\\uXXXX`` (:func:`fleet.core.escaping.terminal_text`), and markup
    is off unless a call asks for it (``markup=True``, with data escaped) — so a merchant
    named ``[link=…]`` or ``\\x1b]0;…`` prints as those characters, in tables, one-line
    messages and errors alike. Every console of ``posfleet`` is one."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(**kwargs)
        if kwargs.get("width") is None:
            # Rich fixes the width from ``COLUMNS`` as it was at construction; these consoles
            # are made at import, so follow ``COLUMNS`` (or the terminal) as it is when
            # printing instead (a process that sets it later, a test runner's worker)
            self._width = None

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_text(text), **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        if isinstance(renderable, Text):
            renderable = _safe_text(renderable)
        return super().render(renderable, options)


def _safe_text(text: Text) -> Text:
    """``text`` with :func:`terminal_text` applied, its styled spans kept in place."""
    plain = text.plain
    if terminal_text(plain) == plain:
        return text
    moved = [0] * (len(plain) + 1)
    pieces = []
    for i, char in enumerate(plain):
        moved[i + 1] = moved[i] + len(piece := terminal_text(char))
        pieces.append(piece)
    safe = text.copy()
    safe.plain = "".join(pieces)
    safe.spans = [Span(moved[s.start], moved[s.end], s.style) for s in text.spans]
    return safe


err_console = SafeConsole(stderr=True)
out = SafeConsole()


def write_out(text: str) -> None:
    """Text a command prints as is (CSV, HTML on stdout): made safe for a terminal when
    stdout is one (a pipe or a file gets it unchanged). JSON is always escaped: inside a
    JSON string ``\\uXXXX`` is the same text."""
    sys.stdout.write(terminal_text(text) if sys.stdout.isatty() else text)


FORMATS = ("table", "csv", "json")


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


def _writable(ctx: typer.Context, path: Path | None) -> Path | None:
    """``--out``, checked before the command works: its directory exists, and it is not
    the database, a directory or (without ``--force``) an existing file."""
    if path is not None:
        from fleet.cli.outfile import check_target  # noqa: PLC0415

        try:
            check_target(path, force=bool(ctx.params.get("force")), db=state(ctx).db)
        except FleetError as exc:  # named by the option: "--out: directory … does not exist"
            raise typer.BadParameter(exc.message) from None
    return path


OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write to this file (default: stdout)", callback=_writable),
]
_KEY_FILES_HELP = (
    "Master key file, or a directory of *.key files; repeat for each key version in use "
    "(POSFLEET_KEY_FILE: ':'-separated)"
)

ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing --out file", is_eager=True),
]
KeyFileOpt = Annotated[
    list[Path],
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help=_KEY_FILES_HELP),
]
OptionalKeyFileOpt = Annotated[
    list[Path] | None,
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help=_KEY_FILES_HELP),
]
AllowOpenKeyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-open-key-file",
        help="Use a master key file others can read (refused by default, as ssh does)",
    ),
]


# --- typed option values: checked where they are declared, bad ones exit 2 --------------


def _text_given(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """An option's or argument's text, refused (a usage error, exit 2) when it is given
    but blank: ``--reason ''``, ``notices verify ''``. Not given (its default) passes."""
    source = ctx.get_parameter_source(param.name) if param.name else None
    if source is not None and source.name == "DEFAULT":
        return value
    items = value if isinstance(value, list | tuple) else [value]
    if value is not None and not "".join(str(i) for i in items).strip():
        raise typer.BadParameter("must not be empty")
    return value


def reason_option(help_text: str = "Why (audited)", *aliases: str) -> Any:
    """``--reason TEXT`` (and ``aliases``): optional or required by the parameter's
    default, never blank."""
    return typer.Option("--reason", *aliases, help=help_text, callback=_text_given)


def text_argument(help_text: str) -> Any:
    """A text argument that must not be blank."""
    return typer.Argument(help=help_text, callback=_text_given)


def limit_option(help_text: str = "At most this many") -> Any:
    """``--limit N``: a count of rows, at least 1 (``--limit -5`` is a usage error)."""
    return typer.Option("--limit", min=1, help=help_text)


ReasonOpt = Annotated[str, reason_option()]
"""An optional ``--reason`` (``""`` when not given)."""
LimitOpt = Annotated[int | None, limit_option()]
"""An optional ``--limit`` (``None``: no limit)."""


def load_keys(paths: list[Path], *, allow_open: bool = False) -> KeyRing:
    """The key ring of ``--key-file`` (files and directories); a bad file fails the command
    (naming the file, never a key), and so does one others can read, unless ``allow_open``
    (``--allow-open-key-file``)."""
    from fleet.device.keyring import KeyRing  # noqa: PLC0415 - cryptography when needed
    from protocols.errors import KeyFileModeError  # noqa: PLC0415

    try:
        return KeyRing.read(paths, allow_open=allow_open)
    except KeyFileModeError as exc:
        raise fail(f"{exc} (or pass --allow-open-key-file)", 2) from None
    except OSError as exc:
        raise fail(f"{exc.filename}: {exc.strerror}", 2) from None


# --- the root options ------------------------------------------------------------------


@dataclass
class State:
    """The root options (``posfleet --db … --actor … --policy …``)."""

    db: str | None = None
    actor: str = ""
    policy_path: Path | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _quick: QuickDatabase | None = field(default=None, repr=False)

    def engine(self, *, current: bool = True) -> Engine:
        """The database's engine (made once), its schema checked to be current."""
        from fleet.core import db  # noqa: PLC0415 - SQLAlchemy only for commands that use it

        if self._engine is None:
            self._engine = db.connect(self.db)
        if current:
            db.require_current(self._engine)
        return self._engine

    def quick_database(self) -> QuickDatabase:
        """The database on plain DB-API, no SQLAlchemy (``notices verify``: see
        :mod:`fleet.core.dbapi`), made once, its schema checked to be current."""
        from fleet.core.dbapi import QuickDatabase  # noqa: PLC0415 - only for that command

        if self._quick is None:
            self._quick = QuickDatabase.open(self.db)
        self._quick.require_current()
        return self._quick

    def policy(self) -> Policy:
        from fleet.core.policy import Policy  # noqa: PLC0415

        return Policy.load(self.policy_path)

    def close(self) -> None:
        """Close the database's connections: the root does it when a command ends."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._quick is not None:
            self._quick.close()
            self._quick = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
        root.call_on_close(root.obj.close)
    return root.obj


# --- errors → one line, exit code ------------------------------------------------------


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable error line and return the Exit to raise."""
    err_console.print(
        Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


def _hint(exc: FleetError) -> str:
    """What a person at the command line does about it (the domain's message says what)."""
    db = sys.modules.get("fleet.core.db")
    if db is not None and isinstance(exc, db.SchemaNotCurrentError):
        return ": run `posfleet db upgrade`"
    return ""


def exit_code_for(exc: FleetError | ProtocolError, hint: str = "") -> int:
    """Print ``exc`` as one line on stderr (a rejected file: each bad row first) and return
    the exit code: the error class's :attr:`~fleet.core.errors.FleetError.exit_code`, 1 for
    a protocol error. ``hint`` (a command's, see :func:`hints`) ends the line in brackets."""
    records = sys.modules.get("fleet.core.records")  # no rejected file unless it is loaded
    if records is not None and isinstance(exc, records.RejectedFileError):
        for line in exc.row_lines():
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    extra = f" ({hint})" if hint else ""
    if isinstance(exc, FleetError):
        fail(f"{exc}{_hint(exc)}{extra}")
        return exc.exit_code
    fail(f"{exc}{extra}")
    return 1


_Command = TypeVar("_Command", bound=Callable[..., Any])


def hints(**by_error: str) -> Callable[[_Command], _Command]:
    """What a person does about the domain errors a command may raise, declared on it by
    error class name (a subclass's too; naming, not importing, keeps the module light):
    ``@hints(NoticePeriodError="use --override-notice --reason TEXT")`` prints
    ``error: t.toml: raises the fee of … (use --override-notice --reason TEXT)`` with the
    error's exit code. Errors not named go to the root's mapping unchanged."""

    def declare(command: _Command) -> _Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except FleetError as exc:
                names = [c.__name__ for c in type(exc).__mro__]
                hint = next((by_error[n] for n in names if n in by_error), None)
                if hint is None:
                    raise
                raise typer.Exit(exit_code_for(exc, hint)) from None

        return run  # type: ignore[return-value]

    return declare


@contextmanager
def handled() -> Iterator[None]:
    """Typed errors → one line and their exit code: what the root does for every command.
    Kept for commands of branches written before it did (remove with its last user)."""
    try:
        yield
    except (FleetError, ProtocolError) as exc:
        raise typer.Exit(exit_code_for(exc)) from None


# --- option values ---------------------------------------------------------------------


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    """A text ``--format``, checked. Commands declare an enum (:data:`FormatOpt`…), which
    Typer checks with this message; kept for branches written before (remove with its last
    user)."""
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
    force: bool = False,
    json_doc: Callable[[list[dict[str, Any]]], Any] | None = None,
    drop_first: Sequence[str] = (),
) -> int:
    """Write rows as a Rich table, CSV or JSON (to ``out_file`` or stdout); returns the count.

    A table shows the columns that fit the screen without splitting a word
    (:func:`fit_columns`: ``drop_first`` are left out first, then from the right; a note
    on stderr names them); CSV and JSON have every column.

    ``json_doc`` replaces the plain list of rows for JSON output (e.g. rows + a summary).
    CSV cells are escaped against formula injection (:func:`fleet.core.escaping.csv_cell`:
    posfleet's one CSV writer); a file is written atomically, and replaces an existing one
    only with ``force`` (:mod:`fleet.cli.outfile`).
    """
    if out_file is None:
        return _emit(rows, columns, fmt, title, json_doc, _Stdout(), drop_first)
    from fleet.cli.outfile import atomic_text  # noqa: PLC0415

    with atomic_text(out_file, force=force, newline="" if fmt == "csv" else None) as stream:
        return _emit(rows, columns, fmt, title, json_doc, stream, drop_first)


class _Stdout:
    """stdout for :func:`emit`, through :func:`write_out`."""

    def write(self, text: str) -> int:
        write_out(text)
        return len(text)


_LONGEST_WORD = 32
"""A word longer than this (a hash, a URL) may be folded; shorter ones never are."""


def fit_columns(
    columns: Sequence[str], cells: Sequence[Sequence[str]], width: int, drop_first: Sequence[str]
) -> tuple[list[int], list[int]]:
    """Which columns of a table fit ``width`` characters without splitting a word: the
    indexes shown and each column's least width (its header or longest word, at most
    :data:`_LONGEST_WORD`). Columns are left out while the least widths do not fit: first
    those named in ``drop_first`` (in that order), then from the right; the first column
    always stays. Every table of ``posfleet`` is laid out by this one rule.

    >>> fit_columns(["serial", "model", "reason"], [["PS1", "PF-200", "a b"]], 20, ["model"])
    ([0, 2], [6, 6, 6])
    """
    minimum = []
    for i, name in enumerate(columns):
        words = [len(name)] + [len(w) for line in cells for w in line[i].split()]
        minimum.append(min(max(words), max(_LONGEST_WORD, len(name))))
    shown = list(range(len(columns)))
    order = [columns.index(c) for c in drop_first if c in columns]
    order += [i for i in reversed(shown) if i not in order]
    for i in order:
        if sum(minimum[j] + 3 for j in shown) + 1 <= width or len(shown) == 1:
            break
        if i != 0:
            shown.remove(i)
    return shown, minimum


def _emit(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    title: str,
    json_doc: Callable[[list[dict[str, Any]]], Any] | None,
    stream: Any,
    drop_first: Sequence[str] = (),
) -> int:
    count = 0
    if fmt == "table":
        from rich.table import Table  # noqa: PLC0415 - a table only when one is printed

        console = out if isinstance(stream, _Stdout) else SafeConsole(file=stream, width=200)
        cells = [[_text(row.get(c)) for c in columns] for row in rows]
        count = len(cells)
        shown, minimum = fit_columns(columns, cells, console.width, drop_first)
        table = Table(title=title or None, title_justify="left")
        for i in shown:
            table.add_column(columns[i], overflow="fold", no_wrap=i == 0, min_width=minimum[i])
        for line in cells:
            table.add_row(*(line[i] for i in shown))
        console.print(table)
        left_out = [c for i, c in enumerate(columns) if i not in shown]
        if left_out and isinstance(stream, _Stdout):
            err_console.print(
                f"({len(left_out)} columns left out to fit {console.width} columns: "
                f"{', '.join(left_out)}; --format csv or json has them all)",
                highlight=False,
                soft_wrap=True,
            )
    elif fmt == "csv":
        writer = CsvWriter(stream)
        writer.header(columns)
        for row in rows:
            writer.row([_text(row.get(c)) for c in columns])
            count += 1
    else:
        listed = list(rows)
        count = len(listed)
        doc = json_doc(listed) if json_doc is not None else listed
        text = json.dumps(doc, indent=2, ensure_ascii=False, default=_text)
        stream.write(terminal_text(text) + "\n")  # in a JSON string, \uXXXX is the same text
    return count


@contextmanager
def counted_progress(label: str, total: int) -> Iterator[Callable[[bool], None]]:
    """A bar on stderr for a command working through ``total`` terminals: how many are done,
    how many failed so far, the time taken. Yields ``advance(failed)``, to call once per
    terminal as it is done."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    failed = 0
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", markup=False), TimeElapsedColumn(),
        console=err_console,
    ) as progress:  # fmt: skip
        task = progress.add_task(label, total=total, note="")

        def advance(bad: bool) -> None:
            nonlocal failed
            failed += bad
            progress.update(task, advance=1, note=f"{failed} failed" if failed else "")

        yield advance


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
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        table.add_row(key, "" if text is None else str(text))
    out.print(table)
