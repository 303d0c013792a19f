"""The keys a device session signs with: a **key ring** of master keys by version, and the
versions the fleet issued.

Every sign-on tells which key version the terminal uses, and the next one while a key
change awaits its confirmation (tag 0x20, docs/protocol.md). A session signs with the
ring's key of that version, so pushes, syncs and sales keep working in the middle of a
rotation. A version the ring has no key for is either

* **issued** (the fleet registered it, :mod:`fleet.device.issued`): :class:`MissingKeyError`,
  give its key file; or
* **never issued**: :class:`UnissuedKeyError`. The terminal holds a key that did not come
  from the fleet (a leaked master key was used to re-key it): it is flagged, and the docs
  say to replace it.

The ring is read from key files (:meth:`KeyRing.read`): each ``--key-file`` is a master
key file or a directory, whose ``*.key`` files are all read; two files of one version must
hold the same key. A ring never shows a key: its repr, its errors and its logs name
versions, files and check values (KCV) only.

>>> from protocols.mac import MasterKey
>>> ring = KeyRing.of(MasterKey(1, bytes(16)), MasterKey(2, bytes(range(16))))
>>> ring, ring.versions
(KeyRing(versions=[1, 2]), (1, 2))
>>> [k.version for k in ring.terminal_keys("PS00000001")]
[1, 2]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleet.core.errors import InputError
from fleet.device.session import DeviceError
from protocols.errors import KeyFileModeError, MacError
from protocols.keys import KeyVersions
from protocols.mac import MasterKey, TerminalKey, read_master_key

__all__ = ["KEY_SUFFIX", "KeyFileError", "KeyRing", "MissingKeyError", "UnissuedKeyError"]

KEY_SUFFIX = ".key"
"""The master key files a directory given as ``--key-file`` contributes."""


class KeyFileError(InputError):
    """A key file that can't be read, or key files that disagree (names files, versions and
    check values, never a key)."""


class MissingKeyError(DeviceError):
    """The terminal uses a key version the fleet issued but this ring has no file for."""

    reason = "missing_key"


class UnissuedKeyError(DeviceError):
    """The terminal reports a key version the fleet never issued: it may be compromised.

    ``held``: what it reported. The terminal must be replaced (docs/protocol.md).
    """

    reason = "unissued_key"

    def __init__(self, serial: str, held: KeyVersions, versions: Iterable[int]) -> None:
        reported = f"key version {held.current}" + (f" (next {held.next})" if held.next else "")
        issued = ", ".join(map(str, sorted(versions))) or "none"
        super().__init__(
            f"reports {reported}, which the fleet never issued (issued: {issued}): "
            "it may hold a key from a leaked master key; take it out of service and replace it",
            where=serial,
        )
        self.held = held


@dataclass(frozen=True)
class KeyRing:
    """Master keys by version (see the module's notes); ``issued``: the versions the fleet
    registered, once :func:`fleet.device.issued.attach` looked them up (None before)."""

    masters: Mapping[int, MasterKey] = field(default_factory=dict)
    files: Mapping[int, str] = field(default_factory=dict)
    """Where each version was read from (for messages)."""
    issued: frozenset[int] | None = None

    def __repr__(self) -> str:
        return f"KeyRing(versions={list(self.versions)})"

    __str__ = __repr__

    @classmethod
    def of(cls, *masters: MasterKey) -> KeyRing:
        """A ring of these keys (versions must differ)."""
        by_version: dict[int, MasterKey] = {}
        for master in masters:
            if by_version.setdefault(master.version, master) != master:
                raise KeyFileError(f"two different master keys of version {master.version}")
        return cls(by_version, {v: f"key v{v}" for v in by_version})

    @classmethod
    def read(cls, paths: Iterable[str | os.PathLike[str]], *, allow_open: bool = False) -> KeyRing:
        """The keys in ``paths``: master key files, or directories of ``*.key`` files. A
        file others can read raises :class:`~protocols.errors.KeyFileModeError` unless
        ``allow_open``."""
        masters: dict[int, MasterKey] = {}
        files: dict[int, str] = {}
        for given in paths:
            path = Path(given)
            for file in _key_files(path):
                try:
                    master = read_master_key(file, allow_open=allow_open)
                except KeyFileModeError:
                    raise
                except MacError as exc:
                    raise KeyFileError(str(exc), where=str(file)) from None
                seen = masters.get(master.version)
                if seen is not None and seen != master:
                    raise KeyFileError(
                        f"{files[master.version]} and {file} are both master key version "
                        f"{master.version}, with different keys (check values "
                        f"{seen.check_value} and {master.check_value})"
                    )
                masters.setdefault(master.version, master)
                files.setdefault(master.version, str(file))
        return cls(masters, files)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self.masters))

    @property
    def known(self) -> frozenset[int]:
        """Versions the fleet knows: those it holds and those it registered."""
        return frozenset(self.masters) | (self.issued or frozenset())

    def with_issued(self, versions: Iterable[int]) -> KeyRing:
        return replace(self, issued=frozenset(versions))

    def master(self, version: int, serial: str = "") -> MasterKey:
        """The master key of ``version``; :class:`MissingKeyError` without its file."""
        master = self.masters.get(version)
        if master is None:
            raise MissingKeyError(
                f"needs master key version {version}, and no key file of that version was "
                f"given (they hold {_listed(self.versions)})",
                where=serial or None,
            )
        return master

    def terminal_key(self, version: int, serial: str) -> TerminalKey:
        return self.master(version, serial).terminal_key(serial)

    def terminal_keys(self, serial: str) -> list[TerminalKey]:
        """The terminal's key of every version in the ring."""
        return [self.masters[v].terminal_key(serial) for v in self.versions]

    def check_issued(self, serial: str, held: KeyVersions) -> None:
        """:class:`UnissuedKeyError` when the terminal reports a version (current, or next)
        the fleet neither holds nor registered. Without any known version (no key file, no
        registry) nothing can be told, and nothing is raised."""
        known = self.known
        if not known:
            return
        if held.current not in known or (held.next and held.next not in known):
            raise UnissuedKeyError(serial, held, known)

    def check_signing(self, serial: str, held: KeyVersions) -> None:
        """The ring can sign for a terminal holding ``held`` (its current key, or its next
        one): :class:`UnissuedKeyError` or :class:`MissingKeyError` otherwise."""
        self.check_issued(serial, held)
        if held.current in self.masters or (held.next and held.next in self.masters):
            return
        self.master(held.current, serial)


def _listed(versions: Iterable[int]) -> str:
    text = ", ".join(map(str, versions))
    return f"versions {text}" if text else "none"


def _key_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix == KEY_SUFFIX and p.is_file())
        if not found:
            raise KeyFileError(f"no *{KEY_SUFFIX} file in directory {path}", where=str(path))
        return found
    return [path]
