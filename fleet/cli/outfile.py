"""The files commands write (``--out``, ``policy init``, ``keys new``): checked before any
work, written atomically. Loaded only when a command is given a file to write.

* **Never the database**: a path that is the open SQLite database, or its ``-wal``,
  ``-shm`` or ``-journal`` file (by name after resolving links, or as the same file), is
  refused whatever ``--force`` says — a report written over ``fleet.db`` would destroy it.
* **Never an existing file by surprise**: an existing file is replaced only with
  ``--force``; a directory never; a file in a folder that does not exist is refused
  before any work (never a traceback half-way).
* **Atomic**: the text goes to a temporary file in the same directory, is flushed to disk,
  then takes the target's name in one step (``link`` when the target must not exist,
  ``rename`` with ``--force``). A command that fails half-way leaves the old file (or
  none) and no temporary file behind.

Refusals are :class:`~fleet.core.errors.InputError` (exit 2), naming the file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from fleet.core.errors import InputError

__all__ = ["atomic_text", "check_target", "database_files"]

_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def database_files(db: str | None) -> list[Path]:
    """The files of the SQLite database ``db`` (``--db``; ``None``: the default), resolved;
    none for a server database."""
    from fleet.core.db import resolve_url  # noqa: PLC0415 - SQLAlchemy's URL parser

    url = resolve_url(db)
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return []
    base = os.path.realpath(name)
    return [Path(base + side) for side in _SIDE_FILES]


def _is_database(path: Path, db: str | None) -> bool:
    target = Path(os.path.realpath(path))
    for file in database_files(db):
        if target == file:
            return True
        try:
            if target.exists() and file.exists() and os.path.samefile(target, file):
                return True
        except OSError:
            continue
    return False


_UNKNOWN = "\0unknown"
"""``db`` of a writer that was not told the database (the option's check was)."""


def check_target(path: Path, *, force: bool, db: str | None) -> None:
    """Refuse to write ``path`` if it is the database, a directory, in a directory that
    does not exist, or (without ``force``) an existing file: every command that writes a
    file checks it here before any work."""
    if not path.parent.is_dir():
        raise InputError(f"directory {path.parent} does not exist", where=str(path))
    if db != _UNKNOWN and _is_database(path, db):
        raise InputError(
            "is the posfleet database (or one of its files): write the output elsewhere",
            where=str(path),
        )
    if path.is_dir():
        raise InputError("is a directory: name a file to write", where=str(path))
    if not force and (path.exists() or path.is_symlink()):
        raise InputError("exists: pass --force to replace it", where=str(path))


@contextmanager
def atomic_text(
    path: Path, *, force: bool, db: str | None = _UNKNOWN, newline: str | None = None
) -> Iterator[TextIO]:
    """A text stream whose content becomes ``path`` when the block ends without an error
    (see the module's notes); ``db``: the ``--db`` not to overwrite (by default the one the
    ``--out`` option checked already)."""
    check_target(path, force=force, db=db)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", where=str(path)) from None
    try:
        with open(fd, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        check_target(path, force=force, db=db)  # the work took a while: look again
        _place(tmp, path, force=force)
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and fails if the target appeared meanwhile
    except FileExistsError:
        raise InputError("exists: pass --force to replace it", where=str(path)) from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise InputError("exists: pass --force to replace it", where=str(path)) from None
        os.replace(tmp, path)
