"""Reading the files people give posfleet (inventories, fee tables, policies): the one
place that turns a file's text and its JSON or TOML into Python, so that every way a
file can be unusable is one typed error naming the file, never a traceback.

* :func:`read_text`: the text, UTF-8 (a byte-order mark allowed); a missing file, a
  directory or bytes that are not UTF-8 are :class:`FileTextError`.
* :func:`load_json`, :func:`load_toml`: the document; bad syntax, nesting too deep for
  the parser (``[[[[…`` 100,000 deep: a ``RecursionError`` inside ``json``/``tomllib``)
  and, for JSON, a top level that is not an object or an array are
  :class:`DocumentError`, with the line where it is known.

Each caller re-raises these as its own error class (a fee table's, a policy's, a
rejected import's) with the file's name, so that the CLI prints one line with exit 2.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from fleet.core.errors import InputError

__all__ = ["DocumentError", "FileTextError", "load_json", "load_toml", "read_text"]


class FileTextError(InputError):
    """A file that can't be read as text (missing, a directory, not UTF-8)."""


class DocumentError(InputError):
    """A document that can't be parsed; ``line`` where it is known (else 0)."""

    def __init__(self, message: str, *, line: int = 0, where: str | None = None) -> None:
        super().__init__(message, where=where)
        self.line = line


def read_text(path: Path) -> str:
    """``path``'s text (UTF-8, a BOM dropped), or :class:`FileTextError` naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileTextError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason}): save it as UTF-8", where=str(path)
        ) from None
    except OSError as exc:
        raise FileTextError(exc.strerror or str(exc), where=str(path)) from None


_TOO_DEEP = "nested too deeply"


def load_json(text: str, *, containers_only: bool = True) -> Any:
    """The JSON document ``text`` (an object or an array unless not ``containers_only``)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"bad JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise DocumentError(f"bad JSON: {_TOO_DEEP}") from None
    if containers_only and not isinstance(doc, dict | list):
        raise DocumentError(
            f"bad JSON: want an object or an array at the top level, not {type(doc).__name__}",
            line=1,
        )
    return doc


def load_toml(text: str) -> dict[str, Any]:
    """The TOML document ``text``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(f"not TOML: {exc}", line=getattr(exc, "lineno", 0) or 0) from None
    except RecursionError:
        raise DocumentError(f"not TOML: {_TOO_DEEP}") from None
