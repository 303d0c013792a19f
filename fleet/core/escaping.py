"""Text from data, escaped for where it goes: a spreadsheet (CSV cells) or a terminal
screen. Pure (:class:`CsvWriter` writes to the stream it is given); the one place each
rule lives.

**CSV cells** (OWASP, "CSV Injection"): a spreadsheet evaluates a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab, a carriage return (or NUL) as a formula. Every *text*
cell that does gets a leading ``'``, which spreadsheets read as "this is text" and do not
show. Numbers stay numbers: an ``int`` or ``float`` value, and a text cell that is a plain
decimal number (``-150``, ``+8613800138000``, ``-0.25``), are written as they are — a
spreadsheet reads such a cell as that number, never as a formula, and a phone number in
E.164 or a negative amount must survive the trip unchanged (a script reading the CSV gets
the same text; the inventory import reads it back). ``-1+1`` or ``+86 138 …`` are not plain
numbers and are escaped. A text that already starts with ``'`` before a trigger gets one
more, so :func:`csv_uncell` (what posfleet's CSV reader applies) gives back exactly the text:

>>> [csv_cell(v) for v in ("=HYPERLINK(1)", "@SUM(A1)", "-1+1", "\\tx", "Bakery", "-150")]
["'=HYPERLINK(1)", "'@SUM(A1)", "'-1+1", "'\\tx", 'Bakery', '-150']
>>> csv_cell("+8613800138000"), csv_cell(-150), csv_cell(None), csv_cell("'=x")
('+8613800138000', '-150', '', "''=x")
>>> all(csv_uncell(csv_cell(t)) == t for t in ("=1", "'=1", "''-2+", "'plain", "-7", "@"))
True

:class:`CsvWriter` is posfleet's one CSV writer (the CLI's output, the reports' CSV, the
call-centre work lists): cells through :func:`csv_cell`, ``\\n`` line ends, and a row with
a carriage return inside a cell quoted whole (Python's writer quotes only the line
terminator's characters, and a bare CR would end the row for any reader):

>>> import io
>>> out = io.StringIO(); w = CsvWriter(out); w.header(["name", "n"])
>>> w.row(["=1+1", -3]); w.row(["a\\rb", 2]); out.getvalue()
'name,n\\n\\'=1+1,-3\\n"a\\rb","2"\\n'

**Terminal text**: a name or reason carrying ESC sequences, BEL, C1 controls or bidi
overrides must never reach an agent's screen raw (it could retitle the window, clear the
screen, forge a "GENUINE" line or reorder what is read). :func:`terminal_text` shows each
such character as a visible ``\\uXXXX`` (also a valid JSON escape, so JSON printed through
the console keeps its meaning); newline and tab are kept.

>>> terminal_text("Bakery\\x1b]0;pwned\\x07 \\u202eevil\\u202c\\nnext")
'Bakery\\\\u001b]0;pwned\\\\u0007 \\\\u202eevil\\\\u202c\\nnext'
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["CSV_TRIGGERS", "CsvWriter", "csv_cell", "csv_uncell", "terminal_text"]

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
"""First characters a spreadsheet takes as the start of a formula."""

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline; DEL; C1 (CSI, OSC, NEL…)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u2028\u2029]"  # line and paragraph separators (a line break the eye doesn't expect)
)


def _formula_like(text: str) -> bool:
    return text.lstrip("'").startswith(CSV_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text)


def csv_cell(value: Any) -> str:
    """``value`` as a CSV cell: text escaped against formula injection (see the module)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if _formula_like(text) else text


def csv_uncell(text: str) -> str:
    """A CSV cell as posfleet wrote it → the text (the inverse of :func:`csv_cell`)."""
    if text.startswith("'") and text[1:].lstrip("'").startswith(CSV_TRIGGERS):
        return text[1:]
    return text


class CsvWriter:
    """Rows of cells to a text stream, escaped (see the module's notes)."""

    def __init__(self, stream: TextIO | Any) -> None:
        self._minimal = csv.writer(stream, lineterminator="\n")
        self._quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def header(self, names: Iterable[str]) -> None:
        """The header row (column names are ours: written as they are)."""
        self._minimal.writerow(names)

    def row(self, values: Iterable[Any]) -> None:
        cells = [csv_cell(v) for v in values]
        writer = self._quoted if any("\r" in c for c in cells) else self._minimal
        writer.writerow(cells)


def terminal_text(text: str) -> str:
    """``text`` safe on a terminal: control and bidi characters shown as ``\\uXXXX``."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
