"""Rows out of CSV, JSON and TOML files, with where each came from. Pure parsing; the only
I/O is opening the file.

Every problem becomes a :class:`RowError` that prints as ``file:line: column: reason``;
callers collect them all and reject the file (:class:`RejectedFileError`) rather than stopping at
the first. A :class:`Schema` names the columns a kind of record has, which are required,
and how each cell is parsed (:mod:`fleet.core.values`).

>>> schema = Schema("thing", (Column("code", str), Column("size", int, required=False)))
>>> rows = [Row("f.csv", 2, {"code": "A", "size": "3"}),
...         Row("f.csv", 3, {"code": "B", "size": "x"})]
>>> errors: list[RowError] = []
>>> [schema.parse(r, errors) for r in rows]
[{'code': 'A', 'size': 3}, None]
>>> print(errors[0])
f.csv:3: size: invalid literal for int() with base 10: 'x'
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.core.errors import InputError
from fleet.core.escaping import csv_uncell
from fleet.core.files import DocumentError, FileTextError, load_json, load_toml, read_text

__all__ = [
    "Column",
    "RejectedFileError",
    "Row",
    "RowError",
    "Schema",
    "read_rows",
    "read_sections",
]

MAX_REPORTED = 200
"""How many row errors a rejection prints (all are counted)."""


@dataclass(frozen=True, slots=True)
class RowError:
    path: str
    line: int | str
    """Line number in the file, or a position such as ``models[3]`` where lines are unknown;
    0 for the file as a whole (unreadable, not UTF-8); empty for a record that is not in a
    file (``path`` then names it: ``terminal PS1``). Neither 0 nor empty is printed."""
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line not in ("", 0) else self.path
        return (
            f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


class RejectedFileError(InputError):
    """A file (or a record typed in) was refused: nothing of it was written.

    ``errors`` holds every bad row (each naming file, line and column), ``where`` the file
    (by default the first error's).
    """

    def __init__(self, errors: list[RowError], rows: int = 0, *, where: str | None = None) -> None:
        self.errors = errors
        self.rows = rows
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(
            f"{len(errors)} {noun}, nothing written",
            where=where or (errors[0].path if errors else "input"),
        )

    def summary(self) -> str:
        """``terminals.csv: 4 errors, nothing written``."""
        return str(self)

    def row_lines(self, limit: int = MAX_REPORTED) -> list[str]:
        """The bad rows, one line each, at most ``limit`` (then ``… and 58 more``)."""
        lines = [str(e) for e in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"… and {len(self.errors) - limit} more")
        return lines

    def report(self) -> str:
        """The bad rows (:meth:`row_lines`), then the summary."""
        return "\n".join([*self.row_lines(), self.summary()])


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    line: int | str
    cells: Mapping[str, str]
    """Column → text (JSON scalars are turned into text; lists are joined with ``;``)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    parse: Callable[[str], Any]
    required: bool = True
    """An empty or missing cell is an error (otherwise it gives ``default``)."""
    default: Any = None


@dataclass(frozen=True)
class Schema:
    kind: str
    columns: tuple[Column, ...]
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)
    _plan: tuple[tuple[str, Callable[[str], Any], bool, Any], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        plan = tuple((c.name, c.parse, c.required, c.default) for c in self.columns)
        object.__setattr__(self, "_plan", plan)

    def check_header(self, path: str, header: list[str], line: int | str = 1) -> list[RowError]:
        """Unknown, missing required and repeated columns, once per file."""
        errors = []
        seen: set[str] = set()
        for name in header:
            if name in seen:
                errors.append(RowError(path, line, name, "column appears twice"))
            seen.add(name)
            if name not in self.by_name:
                known = ", ".join(self.by_name)
                errors.append(RowError(path, line, name, f"unknown column (known: {known})"))
        for col in self.columns:
            if col.required and col.name not in seen:
                errors.append(RowError(path, line, col.name, "required column missing"))
        return errors

    def parse(self, row: Row, errors: list[RowError]) -> dict[str, Any] | None:
        """Typed values of ``row`` for the columns it has; ``None`` (errors appended) if bad."""
        values: dict[str, Any] = {}
        ok = True
        cells = row.cells
        for name, parse, required, default in self._plan:  # the hot loop of an import
            text = cells.get(name)
            if not text or text.isspace():  # missing, empty or blank
                if required:
                    errors.append(RowError(row.path, row.line, name, "required, but empty"))
                    ok = False
                elif text is not None:
                    values[name] = default
                continue
            try:
                values[name] = parse(text)
            except ValueError as exc:
                errors.append(RowError(row.path, row.line, name, str(exc)))
                ok = False
        return values if ok else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_cell(v) for v in value)
    if isinstance(value, dict):
        raise ValueError("a nested object is not a cell")
    return str(value)


def _object_row(path: str, line: int | str, obj: Any) -> Row:
    if not isinstance(obj, dict):
        raise _RowShapeError(
            RowError(path, line, "", f"expected an object, not {type(obj).__name__}")
        )
    try:
        return Row(path, line, {str(k): _cell(v) for k, v in obj.items()})
    except ValueError as exc:
        raise _RowShapeError(RowError(path, line, "", str(exc))) from None


def _reject(path: str, line: int | str, reason: str) -> RejectedFileError:
    return RejectedFileError([RowError(path, line, "", reason)])


class _RowShapeError(Exception):
    def __init__(self, error: RowError) -> None:
        self.error = error


def _csv_rows(path: Path) -> tuple[list[str], Iterator[Row]]:
    """The header, and the rows streamed from the open file (closed when exhausted)."""
    name = str(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise _reject(name, 0, exc.strerror or str(exc)) from None
    reader = csv.reader(handle)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        handle.close()
        raise _reject(name, 1, "empty file: no header row") from None
    except UnicodeDecodeError as exc:
        handle.close()
        raise _reject(
            name, 1, f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
        ) from None
    except csv.Error as exc:
        handle.close()
        raise _reject(name, 1, f"bad CSV: {exc}") from None

    def rows() -> Iterator[Row]:
        width = len(header)
        with handle:
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    yield Row(name, reader.line_num + 1, {"\0error": f"not UTF-8: {exc.reason}"})
                    return
                except csv.Error as exc:
                    yield Row(name, reader.line_num, {"\0error": f"bad CSV: {exc}"})
                    continue
                if len(cells) != width:
                    if not cells or all(not c.strip() for c in cells):
                        continue
                    msg = f"{len(cells)} cells, the header has {width}"
                    yield Row(name, reader.line_num, {"\0error": msg})
                    continue
                cells = [csv_uncell(c) for c in cells]  # what posfleet's CSV writer escaped
                yield Row(name, reader.line_num, dict(zip(header, cells, strict=True)))

    return header, rows()


class _Positions:
    """Line numbers of JSON values: ``raw_decode`` walks the top level and its arrays."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.decoder = json.JSONDecoder()

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def ws(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t\r\n":
            pos += 1
        return pos

    def array(self, pos: int) -> tuple[list[tuple[int | str, Any]], int]:
        """Elements of the array at ``pos`` with their lines, and the position after it."""
        assert self.text[pos] == "["
        items: list[tuple[int | str, Any]] = []
        pos = self.ws(pos + 1)
        if self.text[pos] == "]":
            return items, pos + 1
        while True:
            value, end = self.decoder.raw_decode(self.text, pos)
            items.append((self.line(pos), value))
            pos = self.ws(end)
            if self.text[pos] == "]":
                return items, pos + 1
            pos = self.ws(pos + 1)  # the comma

    def sections(self) -> dict[str, list[tuple[int | str, Any]]]:
        """Top-level array → ``{"": items}``; top-level object → its array members."""
        pos = self.ws(0)
        if self.text[pos] == "[":
            items, _ = self.array(pos)
            return {"": items}
        out: dict[str, list[tuple[int | str, Any]]] = {}
        pos = self.ws(pos + 1)
        while self.text[pos] != "}":
            key, end = self.decoder.raw_decode(self.text, pos)
            pos = self.ws(self.ws(end) + 1)  # past ':'
            if self.text[pos] == "[":
                out[str(key)], pos = self.array(pos)
            else:
                value, pos = self.decoder.raw_decode(self.text, pos)
                out[str(key)] = [(self.line(pos), value)]
            pos = self.ws(pos)
            if self.text[pos] == ",":
                pos = self.ws(pos + 1)
        return out


def _read_text(path: Path) -> str:
    try:
        return read_text(path)
    except FileTextError as exc:
        raise _reject(str(path), 0, exc.message) from None


def file_format(path: Path, fmt: str | None = None) -> str:
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen not in ("csv", "json", "toml"):
        raise RejectedFileError(
            [RowError(str(path), 0, "", "unknown format: name it .csv, .json or .toml")]
        )
    return chosen


def read_sections(path: Path, fmt: str | None = None) -> dict[str, tuple[list[str], list[Row]]]:
    """Every section of a file → (columns seen, rows). CSV and top-level arrays have one
    section named ``""``; JSON/TOML objects have one per array member (``models``…).

    Rows that are not objects, or CSV rows of the wrong width, carry an error cell
    (``"\\0error"``) that :func:`checked` turns into a :class:`RowError`.
    """
    fmt = file_format(path, fmt)
    name = str(path)
    if fmt == "csv":
        header, rows = _csv_rows(path)
        return {"": (header, list(rows))}
    text = _read_text(path)
    if fmt == "json":
        try:
            load_json(text)
        except DocumentError as exc:
            raise _reject(name, exc.line, exc.message) from None
        raw: dict[str, list[tuple[int | str, Any]]] = _Positions(text).sections()
    else:
        try:
            doc = load_toml(text)
        except DocumentError as exc:
            raise _reject(name, exc.line, exc.message) from None
        raw = {
            key: [(f"{key}[{i}]", v) for i, v in enumerate(value)]
            if isinstance(value, list)
            else [(key, value)]
            for key, value in doc.items()
        }
    sections: dict[str, tuple[list[str], list[Row]]] = {}
    for key, items in raw.items():
        rows_out: list[Row] = []
        columns: dict[str, None] = {}
        for line, obj in items:
            try:
                row = _object_row(name, line, obj)
            except _RowShapeError as bad:
                row = Row(name, line, {"\0error": bad.error.reason})
            else:
                columns.update(dict.fromkeys(row.cells))
            rows_out.append(row)
        sections[key] = (list(columns), rows_out)
    return sections


def read_rows(
    path: Path, kind: str, fmt: str | None = None
) -> tuple[str, list[str], Iterator[Row]]:
    """The rows of one kind of record (``terminals``, ``merchants``) from a CSV file, a JSON
    array, or a JSON/TOML object holding an array under ``kind``.

    Returns the format, the columns and the rows. CSV is streamed (a 1 M-row inventory is
    never held as rows); JSON and TOML are parsed whole.
    """
    fmt = file_format(path, fmt)
    if fmt == "csv":
        header, rows = _csv_rows(path)
        return fmt, header, rows
    sections = read_sections(path, fmt)
    if "" in sections:
        header, listed = sections[""]
    elif kind in sections:
        header, listed = sections[kind]
    else:
        found = ", ".join(sections) or "nothing"
        raise _reject(str(path), 1, f"no {kind!r} array (found {found})")
    return fmt, header, iter(listed)


def shape_error(row: Row) -> RowError | None:
    """The error a malformed row carries (wrong width, not an object), if any."""
    reason = row.cells.get("\0error")
    return RowError(row.path, row.line, "", reason) if reason is not None else None
