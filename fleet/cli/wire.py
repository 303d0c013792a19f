"""`posfleet wire` (decode captured frames and messages) and `posfleet keys` (master keys).

The protocol modules (construct, cryptography) are imported inside the commands (see
:mod:`fleet.cli`).
"""

from __future__ import annotations

import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fleet.cli.common import TableJson, TableJsonOpt, emit_json, fail, out
from protocols.errors import ProtocolError

if TYPE_CHECKING:
    from protocols.codec import Message

wire_app = typer.Typer(
    help="Inspect wire traffic: frames and ISO 8583 messages.", no_args_is_help=True
)
keys_app = typer.Typer(help="Fleet master keys (AES-128, 32 hex digits).", no_args_is_help=True)


def _parse_hex(text: str) -> bytes:
    cleaned = "".join(ch for ch in text if ch not in string.whitespace + ":")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise fail(f"not hex: {exc}", 2) from None


def _messages_in(data: bytes) -> list[tuple[str, bytes]]:
    """Frames in a capture (STX…LRC), or the whole input as one message body."""
    from protocols.framing import BadFrame, Control, Frame, FrameDecoder  # noqa: PLC0415

    if not data.startswith(b"\x02"):
        return [("body", data)]
    found: list[tuple[str, bytes]] = []
    dec = FrameDecoder()
    for event in [*dec.feed(data), *dec.flush()]:
        if isinstance(event, Frame):
            found.append((f"frame {len(found) + 1}", event.body))
        elif isinstance(event, BadFrame):
            raise fail(str(event.error))
        elif isinstance(event, Control):
            continue
    return found


def _fields(message: Message) -> dict[str, str]:
    return {str(n): _show(v) for n, v in message.fields.items()}


def _show(value: str | bytes) -> str:
    return value.hex(" ") if isinstance(value, bytes) else value


@wire_app.command("decode")
def wire_decode(
    hex_data: Annotated[
        str | None, typer.Argument(help="Hex of a frame (02 …) or a message body; '-' = stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Raw bytes captured from a line.")
    ] = None,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Decode captured bytes: frames are checked (LEN, ETX, LRC), bodies decoded field by field."""
    from protocols.codec import decode  # noqa: PLC0415
    from protocols.spec import SPEC  # noqa: PLC0415

    if (hex_data is None) == (file is None):
        raise fail("give either HEX or --file", 2)
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise fail(f"{file}: {exc.strerror}") from None
    else:
        data = _parse_hex(sys.stdin.read() if hex_data == "-" else str(hex_data))
    try:
        decoded: list[tuple[str, Message]] = [(w, decode(b)) for w, b in _messages_in(data)]
    except ProtocolError as exc:
        raise fail(str(exc)) from None
    if fmt == TableJson.JSON:
        emit_json(
            [
                {
                    "where": w,
                    "mti": m.mti,
                    "fields": {str(n): _show(v) for n, v in m.fields.items()},
                }
                for w, m in decoded
            ]
        )
        return
    for where, msg in decoded:
        table = Table(title=f"{where}: MTI {msg.mti}", title_justify="left")
        table.add_column("field", justify="right")
        table.add_column("name")
        table.add_column("value", overflow="fold")
        for number, value in msg.fields.items():
            table.add_row(str(number), SPEC[number].name, _show(value))
        out.print(table)


@keys_app.command("new")
def keys_new(
    path: Annotated[Path, typer.Argument(help="Where to write the key file (mode 0600).")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Generate a random fleet master key file (32 hex digits)."""
    from protocols.mac import generate_master_key_file  # noqa: PLC0415

    if path.exists() and not force:
        raise fail(f"{path} exists; pass --force to replace it", 2)
    try:
        generate_master_key_file(path, overwrite=force)
    except (OSError, ProtocolError) as exc:
        raise fail(f"{path}: {exc}") from None
    out.print(f"wrote {path}")
