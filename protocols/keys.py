"""Key versions and the key change on the wire (additions to v1, docs/protocol.md).

=====  ================  =======  ===================================================
tag    name              value    in
=====  ================  =======  ===================================================
0x20   KEY_VERSIONS      u32 u32  0810/001 sign-on, 0810/161, 0810/162: the version of
                                  the key in use and of the next key awaiting
                                  confirmation (0 = none)
0x21   NEW_KEY_VERSION   u32      0800/161 key change, 0800/162 key confirmation
0x22   WRAPPED_KEY       24 B     0800/161: the new key, AES key wrap (RFC 3394) under
                                  the current key
0x23   KEY_CHECK_VALUE   3 B      0800/161: :func:`~protocols.mac.key_check_value` of
                                  the new key
=====  ================  =======  ===================================================

:class:`KeyVersions`, :class:`KeyChange` and :class:`KeyConfirm` are their typed values;
decoding is strict (:class:`~protocols.errors.TLVError` with tag and offset).
:class:`TerminalKeyRing` holds one terminal's keys by version, for a host that signs with
the key of whatever version the terminal reports.

>>> from protocols.mac import TerminalKey
>>> current, new = TerminalKey(1, bytes(16)), TerminalKey(2, bytes(range(16)))
>>> change = KeyChange.build(current, new)
>>> change
KeyChange(version=2, check_value='C6A13B')
>>> KeyChange.from_tlv(change.to_tlv()) == change
True
>>> change.unwrap(current.key) == new.key
True
>>> KeyVersions(current=1, next=2).to_tlv().hex(" ")
'20 08 00 00 00 01 00 00 00 02'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Self, TypeAlias

from protocols.errors import EncodeError, KeyVersionError, MacError
from protocols.mac import (
    KCV_SIZE,
    MAX_KEY_VERSION,
    WRAPPED_SIZE,
    MasterKey,
    TerminalKey,
    key_check_value,
    unwrap_key,
    wrap_key,
)
from protocols.tlv import Tag, TLVReader, build_value, check_uint, encode_tlv, tag_field

__all__ = ["KeyChange", "KeyConfirm", "KeyLookup", "KeySource", "KeyVersions", "TerminalKeyRing"]


def _version(tag: Tag, value: int, *, zero: bool = False) -> int:
    check_uint(tag, value, 32)
    if value == 0 and not zero:
        raise EncodeError(f"key version 0 is not 1..{MAX_KEY_VERSION}", field=tag_field(tag))
    return value


def _new_version(r: TLVReader) -> int:
    version = r.uint(Tag.NEW_KEY_VERSION)
    if version == 0:
        raise r.error(Tag.NEW_KEY_VERSION, "NEW_KEY_VERSION is 0")
    return version


@dataclass(frozen=True, slots=True)
class KeyVersions:
    """Tag 0x20: the key version in use and the next one awaiting confirmation (0: none).

    ``next`` is 0 or greater than ``current``.

    >>> KeyVersions.from_tlv(bytes.fromhex("2008 00000003 00000002"))
    Traceback (most recent call last):
    ...
    protocols.errors.TLVError: field 62 tag 0x20 at byte 0: KEY_VERSIONS next 2 is not above \
current 3
    """

    current: int
    next: int = 0

    def __post_init__(self) -> None:
        _version(Tag.KEY_VERSIONS, self.current)
        _version(Tag.KEY_VERSIONS, self.next, zero=True)
        if self.next and self.next <= self.current:
            raise EncodeError(
                f"next key version {self.next} is not above current {self.current}",
                field=tag_field(Tag.KEY_VERSIONS),
            )

    @property
    def pending(self) -> bool:
        """A next key awaits confirmation."""
        return self.next != 0

    def to_tlv(self) -> bytes:
        value = {"current": self.current, "next": self.next}
        return encode_tlv([(Tag.KEY_VERSIONS, build_value(Tag.KEY_VERSIONS, value))])

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read tag 0x20 of a field 62 (other tags skipped); TLVError if missing or bad."""
        return cls._read(TLVReader(data))

    @classmethod
    def from_tlv_optional(cls, data: bytes) -> Self | None:
        """Like :meth:`from_tlv`, but None when tag 0x20 is absent (a v1 terminal)."""
        reader = TLVReader(data)
        return cls._read(reader) if reader.has(Tag.KEY_VERSIONS) else None

    @classmethod
    def _read(cls, r: TLVReader) -> Self:
        v = r.value(Tag.KEY_VERSIONS)
        if v.current == 0:
            raise r.error(Tag.KEY_VERSIONS, "KEY_VERSIONS current version is 0")
        if v.next and v.next <= v.current:
            raise r.error(
                Tag.KEY_VERSIONS, f"KEY_VERSIONS next {v.next} is not above current {v.current}"
            )
        return cls(current=v.current, next=v.next)


@dataclass(frozen=True, slots=True)
class KeyChange:
    """Field 62 of a 0800/161 key change: tags 0x21, 0x22, 0x23.

    ``wrapped`` is the new key wrapped under the terminal's current key (RFC 3394);
    ``check_value`` is the new key's check value, in hex in the repr (the wrapped bytes
    are not shown).
    """

    version: int
    wrapped: bytes = field(repr=False)
    kcv: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _version(Tag.NEW_KEY_VERSION, self.version)
        for tag, value, size in (
            (Tag.WRAPPED_KEY, self.wrapped, WRAPPED_SIZE),
            (Tag.KEY_CHECK_VALUE, self.kcv, KCV_SIZE),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise EncodeError(f"{tag.name} must be {size} bytes", field=tag_field(tag))

    def __repr__(self) -> str:
        return f"KeyChange(version={self.version}, check_value={self.check_value!r})"

    @property
    def check_value(self) -> str:
        return self.kcv.hex().upper()

    @classmethod
    def build(cls, current: TerminalKey | bytes, new: TerminalKey) -> Self:
        """The change to ``new``, wrapped under ``current`` (a key or its bytes)."""
        kek = current.key if isinstance(current, TerminalKey) else current
        return cls(new.version, wrap_key(kek, new.key), key_check_value(new.key))

    def unwrap(self, current: bytes) -> bytes:
        """The new key, unwrapped with ``current`` and checked against the check value.

        MacError when the unwrap's integrity check fails (wrapped under another key, or
        damaged) or the check value differs.
        """
        key = unwrap_key(current, self.wrapped)
        if key_check_value(key) != self.kcv:
            raise MacError(
                f"check value {self.check_value} does not match the unwrapped key's "
                f"({key_check_value(key).hex().upper()})"
            )
        return key

    def to_tlv(self) -> bytes:
        return encode_tlv(
            [
                (Tag.NEW_KEY_VERSION, build_value(Tag.NEW_KEY_VERSION, self.version)),
                (Tag.WRAPPED_KEY, self.wrapped),
                (Tag.KEY_CHECK_VALUE, self.kcv),
            ]
        )

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62 of a 0800/161; TLVError if a tag is missing or malformed."""
        r = TLVReader(data)
        return cls(_new_version(r), r.raw(Tag.WRAPPED_KEY)[1], r.raw(Tag.KEY_CHECK_VALUE)[1])


@dataclass(frozen=True, slots=True)
class KeyConfirm:
    """Field 62 of a 0800/162 key confirmation: tag 0x21, the version being confirmed.

    >>> KeyConfirm(2).to_tlv().hex(" ")
    '21 04 00 00 00 02'
    """

    version: int

    def __post_init__(self) -> None:
        _version(Tag.NEW_KEY_VERSION, self.version)

    def to_tlv(self) -> bytes:
        return encode_tlv([(Tag.NEW_KEY_VERSION, build_value(Tag.NEW_KEY_VERSION, self.version))])

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62 of a 0800/162; TLVError if tag 0x21 is missing or 0."""
        return cls(_new_version(TLVReader(data)))


KeyLookup: TypeAlias = Callable[[int], TerminalKey | None]
"""A terminal's key of a version, or None when the host has none (e.g. derived on demand
from the fleet's master key of that version)."""

KeySource: TypeAlias = "TerminalKeyRing | Iterable[TerminalKey] | KeyLookup"
"""What a host can be given for a terminal's versioned keys."""


class TerminalKeyRing:
    """One terminal's MAC keys by version: those given, and those ``lookup`` gives on
    demand (each looked up once). :meth:`pick` chooses the key for the versions a
    terminal reports: its current key, else its next one (a terminal accepts both until
    it confirms the next).

    >>> k1, k2 = TerminalKey(1, bytes(16)), TerminalKey(2, bytes(range(16)))
    >>> ring = TerminalKeyRing([k1, k2])
    >>> ring, ring.pick(KeyVersions(1, 2)), TerminalKeyRing([k2]).pick(KeyVersions(1, 2))
    (TerminalKeyRing(versions=[1, 2]), TerminalKey(version=1), TerminalKey(version=2))
    >>> print(ring.pick(KeyVersions(3)))
    None
    >>> masters = {2: MasterKey(2, bytes(range(16)))}
    >>> lazy = TerminalKeyRing.derived(masters.values(), "PF00000001")
    >>> lazy.get(2), lazy.get(1), lazy
    (TerminalKey(version=2), None, TerminalKeyRing(versions=[2], lookup))

    A ring never shows a key (its repr names versions).
    """

    __slots__ = ("_keys", "_lookup", "_missing")

    def __init__(self, keys: Iterable[TerminalKey] = (), lookup: KeyLookup | None = None) -> None:
        self._keys: dict[int, TerminalKey] = {}
        self._lookup = lookup
        self._missing: set[int] = set()
        for key in keys:
            self.add(key)

    @classmethod
    def of(cls, source: KeySource) -> TerminalKeyRing:
        """A ring from a ring (itself), terminal keys, or a per-version lookup."""
        if isinstance(source, TerminalKeyRing):
            return source
        if callable(source):
            return cls(lookup=source)
        return cls(source)

    @classmethod
    def derived(cls, masters: Iterable[MasterKey], serial: str) -> TerminalKeyRing:
        """Terminal ``serial``'s keys, derived from these master keys when first needed."""
        by_version = {master.version: master for master in masters}

        def lookup(version: int) -> TerminalKey | None:
            master = by_version.get(version)
            return None if master is None else master.terminal_key(serial)

        return cls(lookup=lookup)

    def add(self, key: TerminalKey) -> None:
        """Hold ``key`` (replacing a key of its version)."""
        if not isinstance(key, TerminalKey):
            raise KeyVersionError(f"a key ring holds TerminalKeys, not {type(key).__name__}")
        self._keys[key.version] = key
        self._missing.discard(key.version)

    def get(self, version: int) -> TerminalKey | None:
        """The key of ``version``, or None."""
        key = self._keys.get(version)
        if key is None and self._lookup is not None and version not in self._missing:
            key = self._lookup(version)
            if key is None:
                self._missing.add(version)
                return None
            if not isinstance(key, TerminalKey) or key.version != version:
                got = getattr(key, "version", type(key).__name__)
                raise KeyVersionError(f"the key lookup gave {got} when asked for version {version}")
            self._keys[version] = key
        return key

    def pick(self, versions: KeyVersions) -> TerminalKey | None:
        """The key for a terminal holding ``versions``: current, else next; None if neither."""
        for version in (versions.current, versions.next):
            if version:
                key = self.get(version)
                if key is not None:
                    return key
        return None

    @property
    def versions(self) -> list[int]:
        """Versions held (or looked up so far)."""
        return sorted(self._keys)

    def described(self) -> str:
        """What the ring holds, for an error message (versions, never keys)."""
        held = f"key versions {self.versions}" if self._keys else "no key"
        return held + (" (and a lookup of others)" if self._lookup is not None else "")

    def __bool__(self) -> bool:
        return bool(self._keys) or self._lookup is not None

    def __repr__(self) -> str:
        lookup = ", lookup" if self._lookup is not None else ""
        return f"TerminalKeyRing(versions={self.versions}{lookup})"
