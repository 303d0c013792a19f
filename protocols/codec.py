"""ISO 8583 message codec (wire page §2), built on ``construct``.

A message is an MTI and a mapping of field number → value: ``str`` for ASCII fields,
``bytes`` for binary ones (52, 55, 62, 63, 64, 65, 96, 128). Bitmaps (field 1 and the
primary bitmap) are derived from the fields present and never given by hand.

>>> msg = Message("0800", {11: "000001", 41: "TERM0001", 60: "00000000001"})
>>> data = encode(msg)
>>> data.hex(" ")[:38]
'30 38 30 30 00 20 00 00 00 80 00 10 30'
>>> decode(data) == msg
True

Every failure is typed and says where it happened:

>>> decode(data[:-3])
Traceback (most recent call last):
...
protocols.errors.DecodeError: field 60 at byte 29: LLLVAR data needs 11 bytes, only 8 left
>>> encode(Message("0200", {4: "12.50"}))
Traceback (most recent call last):
...
protocols.errors.EncodeError: field 4: numeric field needs digits, got '12.50'
>>> encode(Message("0200", {4: "1250"}))
Traceback (most recent call last):
...
protocols.errors.EncodeError: field 4: expected exactly 12 characters, got 4

How it is built: each field of :data:`protocols.spec.SPEC` is a small construct
(:class:`AsciiField`, :class:`BinaryField`) that parses, builds and sizes on its own
and can also *emit* specialised Python source for ``construct``'s compiler. The message
is ``Struct("mti" / Mti, "fields" / FieldSet(SPEC))``; :class:`FieldSet` handles the
bitmap in one step and dispatches only the fields whose bit is set, so the compiled
codec does no work for absent fields. The compiled and the interpreted codecs are
checked against each other in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Final

import construct as cs

from protocols.errors import DecodeError, EncodeError, ProtocolError
from protocols.spec import SPEC, FieldSpec

__all__ = [
    "Message",
    "Value",
    "decode",
    "encode",
    "mac_input",
]

Value = str | bytes
"""A field's value: ``str`` for ASCII fields, ``bytes`` for binary ones."""

_MAX_FIELD: Final = 128


@dataclass(slots=True)
class Message:
    """One ISO 8583 message: a 4-digit MTI and its fields (number → value).

    >>> m = Message("0810", {11: "000007", 39: "00", 41: "TERM0001"})
    >>> m[39], m.get(62), 39 in m
    ('00', None, True)
    """

    mti: str
    fields: dict[int, Value] = field(default_factory=dict)

    def __getitem__(self, number: int) -> Value:
        return self.fields[number]

    def __contains__(self, number: object) -> bool:
        return number in self.fields

    def get(self, number: int, default: Value | None = None) -> Value | None:
        return self.fields.get(number, default)

    def text(self, number: int) -> str:
        """The value of an ASCII field (``KeyError`` when absent)."""
        value = self.fields[number]
        if not isinstance(value, str):
            raise TypeError(f"field {number} is binary, not text")
        return value

    def binary(self, number: int) -> bytes:
        """The value of a binary field (``KeyError`` when absent)."""
        value = self.fields[number]
        if not isinstance(value, bytes):
            raise TypeError(f"field {number} is text, not binary")
        return value


# --------------------------------------------------------------------------------------
# Generated code. Every field gets a parser ``_p<N>(data, pos, n, base) -> (value, end)``
# and a builder ``_b<N>(value) -> bytes``, specialised for its length type, length and
# content. The same source serves the compiled construct and the interpreted one, so
# both raise the very same errors at the very same offsets.
# --------------------------------------------------------------------------------------


# Bit 65 announces a tertiary bitmap in the default layout (pyiso8583 reads it so):
# no catalog message uses it, and we refuse it both ways rather than disagree.
_UNSUPPORTED: Final = {65: "bit 65 (tertiary bitmap) is not supported"}


def _parser_source(spec: FieldSpec) -> str:
    n, ml, pl = spec.number, spec.max_len, spec.prefix_len
    lines = [f"def _p{n}(data, pos, n, base):"]
    if n in _UNSUPPORTED:
        return "\n".join(
            [*lines, f"    raise DecodeError({_UNSUPPORTED[n]!r}, field={n}, offset=base + pos)"]
        )
    if spec.kind == "fixed":
        lines += [
            f"    end = pos + {ml}",
            "    if end > n:",
            f"        raise DecodeError(f'fixed field needs {ml} bytes, only {{n - pos}} left',"
            f" field={n}, offset=base + pos)",
        ]
        start = "pos"
    else:
        lines += [
            f"    start = pos + {pl}",
            "    if start > n:",
            f"        raise DecodeError('{spec.kind} length prefix needs {pl} digits, only '"
            f" + str(n - pos) + ' bytes left', field={n}, offset=base + pos)",
            "    digits = data[pos:start]",
            "    if not digits.isdigit():",
            f"        raise DecodeError(f'{spec.kind} length {{digits!r}}"
            f" is not {pl} ASCII digits', field={n}, offset=base + pos)",
            "    size = int(digits)",
            f"    if size > {ml}:",
            f"        raise DecodeError(f'{spec.kind} length {{size}} exceeds the maximum {ml}',"
            f" field={n}, offset=base + pos)",
            "    end = start + size",
            "    if end > n:",
            f"        raise DecodeError(f'{spec.kind} data needs {{size}} bytes, only {{n - start}}"
            f" left', field={n}, offset=base + start)",
        ]
        start = "start"
    if spec.binary:
        lines.append(f"    return data[{start}:end], end")
        return "\n".join(lines)
    lines.append(f"    raw = data[{start}:end]")
    if spec.content == "n":
        lines += [
            "    if not raw.isdigit() and raw:",
            f"        raise DecodeError(f'numeric field holds {{raw!r}}', field={n},"
            f" offset=base + {start})",
            "    return raw.decode('ascii'), end",
        ]
    else:
        lines += [
            "    try:",
            "        return raw.decode('ascii'), end",
            "    except UnicodeDecodeError as exc:",
            f"        raise DecodeError(f'byte 0x{{raw[exc.start]:02x}} is not ASCII', field={n},"
            f" offset=base + {start} + exc.start) from None",
        ]
    return "\n".join(lines)


def _builder_source(spec: FieldSpec) -> str:
    n, ml, pl = spec.number, spec.max_len, spec.prefix_len
    kind_msg = "binary field needs bytes" if spec.binary else "ASCII field needs str"
    lines = [f"def _b{n}(value):"]
    if n in _UNSUPPORTED:
        return "\n".join([*lines, f"    raise EncodeError({_UNSUPPORTED[n]!r}, field={n})"])
    if spec.binary:
        lines += [
            "    if value.__class__ is not bytes:",
            "        if not isinstance(value, (bytes, bytearray, memoryview)):",
            f"            raise EncodeError(f'{kind_msg}, got {{type(value).__name__}}',"
            f" field={n})",
            "        value = bytes(value)",
            "    raw = value",
        ]
    else:
        lines += [
            "    if value.__class__ is not str:",
            "        if not isinstance(value, str):",
            f"            raise EncodeError(f'{kind_msg}, got {{type(value).__name__}}',"
            f" field={n})",
            "        value = str(value)",
            "    try:",
            "        raw = value.encode('ascii')",
            "    except UnicodeEncodeError as exc:",
            f"        raise EncodeError(f'character {{value[exc.start]!r}} at index {{exc.start}}"
            f" is not ASCII', field={n}) from None",
        ]
        if spec.content == "n":
            lines += [
                "    if not raw.isdigit() and raw:",
                f"        raise EncodeError(f'numeric field needs digits, got {{value!r}}',"
                f" field={n})",
            ]
    if spec.kind == "fixed":
        unit = "bytes" if spec.binary else "characters"
        lines += [
            f"    if len(raw) != {ml}:",
            f"        raise EncodeError(f'expected exactly {ml} {unit}, got {{len(raw)}}',"
            f" field={n})",
            "    return raw",
        ]
    else:
        lines += [
            "    size = len(raw)",
            f"    if size > {ml}:",
            f"        raise EncodeError(f'{spec.kind} value is {{size}} bytes,"
            f" the maximum is {ml}', field={n})",
            f"    return b'%0{pl}d' % size + raw",
        ]
    return "\n".join(lines)


def _fieldset_parser_source() -> str:
    return """
def parse_fieldset(data, pos, base):
    # Bitmap handled in one step: one int, then only the fields whose bit is set.
    n = len(data)
    if pos + 8 > n:
        raise DecodeError(f'primary bitmap needs 8 bytes, only {n - pos} left',
                          field='bitmap', offset=base + pos)
    bits = int.from_bytes(data[pos:pos + 8], 'big')
    pos += 8
    top = 64
    if bits >> 63:
        if pos + 8 > n:
            raise DecodeError(f'secondary bitmap needs 8 bytes, only {n - pos} left',
                              field=1, offset=base + pos)
        bits = (bits << 64) | int.from_bytes(data[pos:pos + 8], 'big')
        pos += 8
        top = 128
    bits &= ~(1 << (top - 1))
    fields = {}
    parsers = PARSERS
    while bits:
        bit = bits.bit_length()
        bits ^= 1 << (bit - 1)
        number = top + 1 - bit
        fields[number], pos = parsers[number](data, pos, n, base)
    if pos != n:
        raise DecodeError(f'{n - pos} bytes left over after the last field',
                          field='end', offset=base + pos)
    return fields
"""


def _fieldset_builder_source() -> str:
    return """
def build_fieldset(fields):
    if fields.__class__ is not dict and not isinstance(fields, Mapping):
        raise EncodeError(f'fields must be a mapping, got {type(fields).__name__}', field='fields')
    bits = 0
    parts = [b'']
    builders = BUILDERS
    for number in sorted(fields):
        if number.__class__ is not int or not 2 <= number <= 128:
            raise EncodeError('no such data element (valid: 2..128; 1 is the bitmap)',
                              field=repr(number))
        bits |= 1 << (128 - number)
        parts.append(builders[number](fields[number]))
    if bits & 0xFFFFFFFFFFFFFFFF:
        parts[0] = ((bits | (1 << 127))).to_bytes(16, 'big')
    else:
        parts[0] = (bits >> 64).to_bytes(8, 'big')
    return b''.join(parts)
"""


def _load_generated() -> dict[str, Any]:
    """Compile the generated field parsers/builders once, into one namespace."""
    namespace: dict[str, Any] = {
        "DecodeError": DecodeError,
        "EncodeError": EncodeError,
        "Mapping": Mapping,
    }
    source = "\n\n".join(
        [_parser_source(s) for s in SPEC.values()]
        + [_builder_source(s) for s in SPEC.values()]
        + [_fieldset_parser_source(), _fieldset_builder_source()]
    )
    exec(compile(source, "<protocols.codec generated>", "exec"), namespace)
    parsers: list[Any] = [None] * (_MAX_FIELD + 1)
    builders: list[Any] = [None] * (_MAX_FIELD + 1)
    for number in SPEC:
        parsers[number] = namespace[f"_p{number}"]
        builders[number] = namespace[f"_b{number}"]
    namespace["PARSERS"] = tuple(parsers)
    namespace["BUILDERS"] = tuple(builders)
    namespace["SOURCE"] = source
    return namespace


_GEN: Final = _load_generated()
_parse_fieldset: Callable[[bytes, int, int], dict[int, Value]] = _GEN["parse_fieldset"]
_build_fieldset: Callable[[Mapping[int, Value]], bytes] = _GEN["build_fieldset"]


# --------------------------------------------------------------------------------------
# The constructs.
# --------------------------------------------------------------------------------------


# Emitted into construct's generated module: the helpers the emitted expressions call.
_IMPORTS: Final = """
from protocols.errors import DecodeError, EncodeError
from protocols.codec import _read_mti, _mti_bytes, _parse_fieldset_io, _build_fieldset, _parse_one
"""


def _read_rest(stream: Any) -> tuple[bytes, int]:
    base = stream.tell()
    return stream.read(), base


class _Field(cs.Construct):  # type: ignore[misc]
    """Base of one data element as a construct (standalone parse/build/sizeof + emit)."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        self.spec = spec
        self._p = _GEN[f"_p{spec.number}"]
        self._b = _GEN[f"_b{spec.number}"]

    def _parse(self, stream: Any, context: Any, path: str) -> Value:
        data, base = _read_rest(stream)
        value, end = self._p(data, 0, len(data), base)
        stream.seek(base + end)
        return value  # type: ignore[no-any-return]

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Value:
        stream.write(self._b(obj))
        return obj  # type: ignore[no-any-return]

    def _sizeof(self, context: Any, path: str) -> int:
        if self.spec.kind != "fixed":
            raise cs.SizeofError(f"field {self.spec.number} is {self.spec.kind}", path=path)
        return self.spec.max_len

    def _emitparse(self, code: Any) -> str:
        code.append(_IMPORTS)
        code.append(_parser_source(self.spec))
        return f"_parse_one(_p{self.spec.number}, io)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_IMPORTS)
        code.append(_builder_source(self.spec))
        return f"(io.write(_b{self.spec.number}(obj)), obj)[1]"


class AsciiField(_Field):
    """A data element carried as ASCII text (``n``, ``an``, ``ans``)."""


class BinaryField(_Field):
    """A data element carried as raw bytes (``b``)."""


def field_construct(spec: FieldSpec) -> _Field:
    """The construct of one data element.

    >>> c = field_construct(SPEC[41])
    >>> c.parse(b"TERM0001"), c.build("TERM0001"), c.sizeof()
    ('TERM0001', b'TERM0001', 8)
    >>> field_construct(SPEC[62]).build(b"\\x01\\x01\\x02")
    b'003\\x01\\x01\\x02'
    """
    return BinaryField(spec) if spec.binary else AsciiField(spec)


class Mti(cs.Construct):  # type: ignore[misc]
    """The message type indicator: 4 ASCII digits.

    >>> Mti().parse(b"0200"), Mti().build("0210"), Mti().sizeof()
    ('0200', b'0210', 4)
    """

    def _parse(self, stream: Any, context: Any, path: str) -> str:
        base = stream.tell()
        raw = stream.read(4)
        return _check_mti(raw, base)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> str:
        stream.write(_mti_bytes(obj))
        return obj  # type: ignore[no-any-return]

    def _sizeof(self, context: Any, path: str) -> int:
        return 4

    def _emitparse(self, code: Any) -> str:
        code.append(_IMPORTS)
        return "_read_mti(io)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_IMPORTS)
        return "(io.write(_mti_bytes(obj)), obj)[1]"


def _read_mti(io: BytesIO) -> str:
    base = io.tell()
    return _check_mti(io.read(4), base)


def _check_mti(raw: bytes, base: int) -> str:
    if len(raw) != 4 or not raw.isdigit():
        if len(raw) < 4:
            raise DecodeError(f"MTI needs 4 bytes, got {len(raw)}", field="MTI", offset=base)
        raise DecodeError(f"MTI {raw!r} is not 4 ASCII digits", field="MTI", offset=base)
    return raw.decode("ascii")


def _mti_bytes(mti: object) -> bytes:
    if not isinstance(mti, str) or len(mti) != 4 or not mti.isascii() or not mti.isdigit():
        raise EncodeError(f"MTI must be 4 ASCII digits, got {mti!r}", field="MTI")
    return mti.encode("ascii")


class FieldSet(cs.Construct):  # type: ignore[misc]
    """Bitmap(s) and every data element they announce, up to the end of the message.

    Parses to ``dict[int, Value]``; builds from any mapping, deriving the primary and
    secondary bitmaps from the field numbers present.
    """

    def __init__(self, spec: Mapping[int, FieldSpec]) -> None:
        super().__init__()
        self.fields = {n: field_construct(s) for n, s in spec.items()}

    def _parse(self, stream: Any, context: Any, path: str) -> dict[int, Value]:
        # Interpreted path: one construct per field, driven by the bitmap.
        data, base = _read_rest(stream)
        pos = 0
        if len(data) < 8:
            raise DecodeError(
                f"primary bitmap needs 8 bytes, only {len(data)} left", field="bitmap", offset=base
            )
        bits = int.from_bytes(data[:8], "big")
        top, pos = 64, 8
        if bits >> 63:
            if len(data) < 16:
                raise DecodeError(
                    f"secondary bitmap needs 8 bytes, only {len(data) - 8} left",
                    field=1,
                    offset=base + 8,
                )
            bits = (bits << 64) | int.from_bytes(data[8:16], "big")
            top, pos = 128, 16
        stream.seek(base + pos)
        out: dict[int, Value] = {}
        for number in range(2, top + 1):
            if bits >> (top - number) & 1:
                out[number] = self.fields[number]._parse(stream, context, f"{path} -> {number}")
        rest = stream.read()
        if rest:
            raise DecodeError(
                f"{len(rest)} bytes left over after the last field",
                field="end",
                offset=stream.tell() - len(rest),
            )
        return out

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        stream.write(_build_fieldset(obj))
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError("a message's size depends on its fields", path=path)

    def _emitparse(self, code: Any) -> str:
        code.append(_IMPORTS)
        return "_parse_fieldset_io(io)"

    def _emitbuild(self, code: Any) -> str:
        code.append(_IMPORTS)
        return "(io.write(_build_fieldset(obj)), obj)[1]"


def _parse_fieldset_io(io: BytesIO) -> dict[int, Value]:
    base = io.tell()
    return _parse_fieldset(io.read(), 0, base)


def _parse_one(parser: Callable[..., tuple[Value, int]], io: BytesIO) -> Value:
    base = io.tell()
    data = io.read()
    value, end = parser(data, 0, len(data), base)
    io.seek(base + end)
    return value


MESSAGE: Final = cs.Struct("mti" / Mti(), "fields" / FieldSet(SPEC))
"""The message as a (non-compiled) construct: the reference the compiled codec is tested against."""


COMPILED: Final = MESSAGE.compile()
"""``MESSAGE.compile()``: what :func:`encode` and :func:`decode` use."""


# --------------------------------------------------------------------------------------
# The public API: the compiled construct, wrapped so that only typed errors escape.
# --------------------------------------------------------------------------------------

_parse_compiled: Final = COMPILED.parse
_build_compiled: Final = COMPILED.build


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one message body (the BODY of a frame).

    Raises :class:`~protocols.errors.DecodeError` naming the field and byte offset;
    no other exception escapes.
    """
    if data.__class__ is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}", offset=0)
        data = bytes(data)
    try:
        parsed = _parse_compiled(data)
    except ProtocolError:
        raise
    except Exception as exc:  # pragma: no cover - a bug; still never escape untyped
        raise DecodeError(f"internal decoder error: {exc!r}") from exc
    return Message(parsed["mti"], parsed["fields"])


def encode(msg: Message) -> bytes:
    """Encode a message; the bitmap(s) follow from the fields present.

    Raises :class:`~protocols.errors.EncodeError` naming the field.
    """
    try:
        return _build_compiled({"mti": msg.mti, "fields": msg.fields})  # type: ignore[no-any-return]
    except ProtocolError:
        raise
    except Exception as exc:
        raise EncodeError(f"cannot encode: {exc!r}") from exc


def mac_input(msg: Message) -> bytes:
    """The bytes a MAC covers (wire page §5): the encoded message from the MTI up to the
    end of the field before 64, with bit 64 set in the bitmap.

    >>> m = Message("0800", {11: "000001", 41: "TERM0001", 64: b"\\0" * 8})
    >>> encode(m)[:-8] == mac_input(m)
    True
    """
    fields = {**msg.fields, 64: b"\0" * 8}
    encoded = encode(Message(msg.mti, fields))
    after = sum(len(_GEN["BUILDERS"][n](v)) for n, v in fields.items() if n >= 64)
    return encoded[: len(encoded) - after]
