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


class KeyVersionError(MacError):
    """The host has no key of the version a terminal holds, or the terminal holds a newer
    one than the host asks it to change to (key rotation, docs/protocol.md)."""


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
        return (_rebuild_refused, (self.reason, self.code, self.field, self.offset))


def _rebuild_refused(
    reason: str, code: str, field: int | str | None, offset: int | None
) -> RefusedError:
    return RefusedError(reason, code=code, field=field, offset=offset)
