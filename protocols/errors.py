"""Typed errors of the protocol layer.

Every error the wire code raises is a :class:`ProtocolError`. Errors about bytes
(decoding a message, a frame, a TLV list or a fee table) say *what* failed and
*where*: the field (or structure member) and the byte offset into the input.

>>> err = DecodeError("LLLVAR length '9x9' is not digits", field=62, offset=41)
>>> str(err)
"field 62 at byte 41: LLLVAR length '9x9' is not digits"
>>> isinstance(err, ProtocolError)
True
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by :mod:`protocols`."""

    def __init__(
        self, reason: str, *, field: int | str | None = None, offset: int | None = None
    ) -> None:
        self.reason = reason
        self.field = field
        self.offset = offset
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.field is not None:
            where.append(f"field {self.field}")
        if self.offset is not None:
            where.append(f"at byte {self.offset}")
        return f"{' '.join(where)}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[object, ...]:  # keep errors picklable across processes
        return (_rebuild, (type(self), self.reason, self.field, self.offset))


def shown(value: int) -> str:
    """An integer as an error message shows it: in full up to 30 digits, else its size
    (formatting a 5,000-digit integer raises ``ValueError`` in Python ≥ 3.11).

    >>> shown(4_294_967_296), shown(10**6666)
    ('4294967296', 'a 22144-bit number')
    """
    if -(10**30) < value < 10**30:
        return str(value)
    return f"a {value.bit_length()}-bit {'negative ' if value < 0 else ''}number"


def _rebuild(
    cls: type[ProtocolError], reason: str, field: int | str | None, offset: int | None
) -> ProtocolError:
    return cls(reason, field=field, offset=offset)


class DecodeError(ProtocolError):
    """Bytes that do not decode: names the field and the byte offset."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded: names the field."""


class FrameError(DecodeError):
    """A link-layer frame is malformed (bad LRC, bad BCD length, missing ETX)."""


class TLVError(DecodeError):
    """A TLV list in field 62 is malformed or a tag value has the wrong size."""


class FeeTableError(DecodeError):
    """A fee-table file fails its magic, size, CRC or format checks."""


class FeeError(ProtocolError):
    """No fee can be computed (e.g. no rule matches: response code 57)."""


class MacError(ProtocolError):
    """A MAC is missing or wrong, or a key is malformed."""


class KeyFileModeError(MacError):
    """A master key file others can read (group or world permission bits): refused as ssh
    refuses such a private key, unless the caller allows it."""


class KeyVersionError(MacError):
    """The host has no key of the version a terminal holds, or the terminal holds a newer
    one than the host asks it to change to (key rotation, docs/protocol.md).

    ``held``: the key versions the terminal reported (current, next; ``None`` when it has
    not said), so that a caller can tell a key it lacks from a key it never issued.
    """

    def __init__(
        self,
        reason: str,
        *,
        held: tuple[int, int] | None = None,
        field: int | str | None = None,
        offset: int | None = None,
    ) -> None:
        self.held = held
        super().__init__(reason, field=field, offset=offset)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_key_version, (self.reason, self.held, self.field, self.offset))


def _rebuild_key_version(
    reason: str, held: tuple[int, int] | None, field: int | str | None, offset: int | None
) -> KeyVersionError:
    return KeyVersionError(reason, held=held, field=field, offset=offset)


class LinkError(ProtocolError):
    """The serial link failed: no ACK after all resends, no response within T2, port lost."""


class RefusedError(ProtocolError):
    """The far side answered, but not with ``00``: ``code`` is its response code (field 39)."""

    def __init__(
        self,
        reason: str,
        *,
        code: str,
        field: int | str | None = 39,
        offset: int | None = None,
    ) -> None:
        self.code = code
        super().__init__(reason, field=field, offset=offset)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_refused, (type(self), self.reason, self.code, self.field, self.offset))


class TamperedError(RefusedError):
    """``66``: the terminal's tamper switch tripped; it refuses downloads and key changes
    until it is replaced. Never worth retrying."""


class ReplayedError(RefusedError):
    """``94``: the terminal already processed these exact bytes of a key request (a
    replay). Retrying the same bytes cannot pass; a new rotation signs on and resumes."""


class KeyCheckError(RefusedError):
    """``F2``: the terminal could not unwrap the new key, or its check value differs (the
    host wrapped it under a key the terminal does not hold as current)."""


REFUSALS: dict[str, type[RefusedError]] = {
    "66": TamperedError,
    "94": ReplayedError,
    "F2": KeyCheckError,
}
"""Response codes with an error class of their own (any other code: :class:`RefusedError`)."""


def refused_error(reason: str, *, code: str, field: int | str | None = 39) -> RefusedError:
    """The typed refusal for response ``code``.

    >>> type(refused_error("block 0 of 9 refused", code="66")).__name__
    'TamperedError'
    >>> isinstance(refused_error("x", code="F2"), RefusedError)
    True
    """
    return REFUSALS.get(code, RefusedError)(reason, code=code, field=field)


def _rebuild_refused(
    cls: type[RefusedError], reason: str, code: str, field: int | str | None, offset: int | None
) -> RefusedError:
    return cls(reason, code=code, field=field, offset=offset)
