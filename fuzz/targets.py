"""The fuzz targets: one ``check(data)`` per parser of outside bytes or text.

A check feeds ``data`` to the parser and lets out only what is a bug: any exception but
the parser's own typed error (and, where the parser promises more, a broken promise: a
decoded message that does not encode back to itself, a frame decoder that raises). Text
parsers get ``data`` decoded as UTF-8 (invalid bytes replaced); file readers get it as a
file's bytes. ``tests/test_fuzz_targets.py`` runs each target on its corpus and a few
hundred mutations, so that none can rot.

The wire additions (docs/protocol.md) are in: the codec, TLV and terminal targets have
seeds of the health poll, the key change and the confirmation and of answers carrying
health and key tags; the ``host`` target feeds any answers to the host's own flows
(sign-on, health, status, sale, download, key change, confirmation, rotation): what a
hostile terminal or a noisy line can send back.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocols import messages as m
from protocols.codec import decode, encode
from protocols.errors import DecodeError, FeeError, MacError, ProtocolError, TLVError
from protocols.feetable import FeeRule, FeeTable, compute_fee
from protocols.flows import Conversation, Flow, PreparedTable, run
from protocols.framing import BadFrame, Control, Frame, FrameDecoder, encode_frame
from protocols.health import HealthInfo
from protocols.keys import KeyChange, KeyConfirm, KeyVersions
from protocols.linkstate import LinkMachine
from protocols.mac import MasterKey, derive_terminal_key, master_key_text, read_master_key
from protocols.tlv import DownloadStatus, SaleRequest, SaleResult, SignOnInfo, decode_tlv
from protocols.values import CardType

__all__ = ["TARGETS", "Target"]

TID = "TERM0001"
SERIAL = "PF00000001"
KEY = derive_terminal_key(bytes(range(16)), SERIAL)
CURRENT = MasterKey(1, bytes(range(16))).terminal_key(SERIAL)
NEXT = MasterKey(2, bytes(range(100, 116))).terminal_key(SERIAL)
CLOCK = 1_790_000_000.0


@dataclass(frozen=True)
class Target:
    name: str
    check: Callable[[bytes], None]
    seeds: Callable[[], dict[str, bytes]]
    doc: str


def _table(version: int = 7, rules: int = 3) -> FeeTable:
    base = [
        FeeRule(CardType.CREDIT, 5000, 5999, 6000, min_fee=10, max_fee=5000),
        FeeRule(CardType.ANY, 0, 9999, 3800, fixed=5),
    ]
    extra = [FeeRule(CardType.QR_WALLET, n, n, 1000) for n in range(rules - 2)]
    return FeeTable(version, datetime(2026, 1, 1, tzinfo=UTC), 156, tuple(base + extra))


def _requests() -> dict[str, bytes]:
    table = _table(rules=60)
    return {
        "sign-on": encode(m.sign_on(1, TID)),
        "echo": encode(m.echo(2, TID)),
        "status": encode(m.download_status(3, TID)),
        "sale": encode(m.sale(4, TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv())),
        "block": encode(m.sign(m.block(5, TID, 7, 0, 2, table.blocks()[0]), KEY)),
        "commit": encode(m.sign(m.commit(6, TID, 7, 2, table.digest()), KEY)),
        "response": encode(m.response_to(m.sign_on(1, TID), m.ResponseCode.APPROVED)),
        # additions to v1: the health poll, the key change and its confirmation
        "health": encode(m.health(7, TID)),
        "key-change": encode(
            m.sign(m.key_change(8, TID, KeyChange.build(CURRENT, NEXT).to_tlv()), KEY)
        ),
        "key-confirm": encode(m.sign(m.key_confirm(9, TID, KeyConfirm(2).to_tlv()), NEXT.key)),
        "sign-on-answer": _first_answer("sign-on"),
        "key-change-answer": _first_answer("key-change"),
    }


# -- protocols ------------------------------------------------------------------------------


def check_frame(data: bytes) -> None:
    """The frame decoder never raises, in any chunking; a good frame's body re-frames."""
    cut = data[0] % (len(data) + 1) if data else 0
    decoder = FrameDecoder()
    events = decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.flush()
    whole = FrameDecoder()
    assert whole.feed(data) + whole.flush() == events, "chunking changed the events"
    assert decoder.pending == 0
    for event in events:
        if isinstance(event, Frame):
            assert FrameDecoder().feed(encode_frame(event.body)) == [event]
        else:
            assert isinstance(event, BadFrame | Control)


def check_codec(data: bytes) -> None:
    """decode() raises DecodeError or gives a message that encodes back to the same bytes."""
    try:
        msg = decode(data)
    except DecodeError:
        return
    again = encode(msg)
    assert decode(again) == msg, "re-encoded message decodes differently"


def check_link(data: bytes) -> None:
    """A link machine, host or terminal, takes any bytes at any time without raising."""
    host = LinkMachine(115200, name="fuzz-host")
    host.start_request(b"0800 fuzz", 0.0)
    served: list[bytes] = []
    answered = 0
    terminal = LinkMachine(115200, request_key=lambda b: b, name="fuzz-terminal")
    terminal.serve_deferred(served.append)
    now = 0.0
    for i in range(0, len(data), 7):
        chunk = data[i : i + 7]
        now += (chunk[0] % 8) * 0.1
        for machine in (host, terminal):
            machine.receive(chunk, now)
            machine.poll(now)
            machine.take_output()
        if len(served) > answered and chunk[-1] % 3 == 0:  # the handler is done
            answered += 1
            terminal.respond(b"R" + served[answered - 1][:4], now)
    assert host.response is not None or host.error is not None or host.busy


def check_tlv(data: bytes) -> None:
    """Every TLV reader raises TLVError (a DecodeError) or gives a value; a health or key
    value read writes back to TLV that reads the same."""
    for parse in (
        decode_tlv,
        SignOnInfo.from_tlv,
        DownloadStatus.from_tlv,
        SaleRequest.from_tlv,
        SaleResult.from_tlv,
        HealthInfo.from_tlv_optional,
        KeyVersions.from_tlv_optional,
        KeyChange.from_tlv,
        KeyConfirm.from_tlv,
    ):
        try:
            value: Any = parse(data)
        except (TLVError, DecodeError):
            continue
        if isinstance(value, HealthInfo | KeyVersions | KeyChange | KeyConfirm):
            again = type(value).from_tlv(value.to_tlv())
            assert again == value, f"{type(value).__name__} written back reads differently"


def check_feetable(data: bytes) -> None:
    """A fee-table file parses (and then writes back byte for byte, and prices sales) or
    raises a ProtocolError."""
    try:
        table = FeeTable.from_bytes(data)
    except ProtocolError:
        return
    assert table.to_bytes() == data, "a parsed table writes back different bytes"
    for amount, card, mcc in ((0, 1, 0), (10_000, 2, 5411), (999_999_999_999, 4, 9999)):
        try:
            fee = compute_fee(table, amount, card, mcc)
        except FeeError:
            continue
        assert 0 <= fee <= amount, f"fee {fee} of amount {amount}"


def check_master_key(data: bytes) -> None:
    """A master key file reads as a key and version (and writes back to a file that reads
    the same), or raises MacError naming the file."""
    path = _scratch() / "master.key"
    path.write_bytes(data)
    try:
        master = read_master_key(path)
    except MacError as exc:
        text = str(exc)
        assert str(path) in text, "the error does not name the file"
        return
    path.write_text(master_key_text(master))
    assert read_master_key(path) == master, "a key file written back reads differently"


@functools.cache
def _terminal() -> object:
    from terminal_sim.terminal import Terminal, TerminalConfig  # noqa: PLC0415

    state = Path(tempfile.mkdtemp(prefix="posfleet-fuzz-terminal-"))
    config = TerminalConfig("PF00000001", "PF-200", "1.0.0", TID, "MERCHANT0000001", 5411, KEY)
    return Terminal(config, state)


def check_terminal(data: bytes) -> None:
    """The emulated terminal answers any request body (or ignores it) without raising, and
    every answer decodes."""
    response = _terminal().handle(data)  # type: ignore[attr-defined]
    if response is not None:
        decode(response)


@functools.cache
def _prepared() -> PreparedTable:
    return PreparedTable(_table(rules=60), base=500)


# The host's flows: what each asks, from a conversation that has signed on to a terminal
# holding key version 1 (so that a key change or a push signs with it).
_HOST_FLOWS: tuple[tuple[str, Callable[[Conversation], Flow[Any]]], ...] = (
    ("sign-on", lambda c: c.sign_on()),
    ("health", lambda c: c.health()),
    ("status", lambda c: c.status()),
    ("sale", lambda c: c.sale(10_000, CardType.CREDIT)),
    ("push", lambda c: c.push(_prepared())),
    ("key-change", lambda c: c.change_key(NEXT)),
    ("key-confirm", lambda c: c.confirm_key(NEXT)),
    ("rotate", lambda c: c.rotate_key(NEXT)),
)


def _host_conversation() -> Conversation:
    conversation = Conversation(TID, keys=[CURRENT, NEXT], stan=m.StanCounter(1))
    conversation.use_key(KeyVersions(1))
    return conversation


def _answers_of(data: bytes) -> list[bytes]:
    """Answer bodies, each after a 2-byte big-endian length (the last one may be cut)."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        size = int.from_bytes(data[pos : pos + 2], "big")
        out.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return out


def _handled(terminal: Any, answers: list[bytes] | None = None) -> Callable[[bytes], bytes]:
    """``terminal.handle`` as a flow's request function (recording its answers)."""

    def handle(body: bytes) -> bytes:
        response: bytes | None = terminal.handle(body)
        assert response is not None
        if answers is not None:
            answers.append(response)
        return response

    return handle


def _first_answer(flow: str) -> bytes:
    return _answers_of(_answers()[flow][1:])[0]


def check_host(data: bytes) -> None:
    """The host's flows take any answers: a result, or a ProtocolError (DecodeError,
    MacError, RefusedError and its kinds, KeyVersionError...). ``data``: the flow
    (first byte) and the answers (:func:`_answers_of`)."""
    if not data:
        return
    _, make = _HOST_FLOWS[data[0] % len(_HOST_FLOWS)]
    flow = make(_host_conversation())
    try:
        next(flow)
        for answer in _answers_of(data[1:]):
            flow.send(answer)
    except (StopIteration, ProtocolError):
        return
    finally:
        flow.close()


@functools.cache
def _answers() -> dict[str, bytes]:
    """Seeds of the host target: each flow run against a fresh emulated terminal (fixed
    clock: the same bytes every time), its answers recorded; a sale approved by hand
    (a terminal's approval code is random)."""
    from terminal_sim.terminal import Terminal, TerminalConfig  # noqa: PLC0415

    config = TerminalConfig(SERIAL, "VX-680", "1.0.0", TID, "MERCHANT0000001", 5411, KEY)
    seeds = {}
    for index, (label, make) in enumerate(_HOST_FLOWS):
        with tempfile.TemporaryDirectory(prefix="posfleet-fuzz-seed-") as state:
            terminal = Terminal(config, Path(state), clock=lambda: CLOCK)
            answers: list[bytes] = []
            answer = _handled(terminal, answers)
            try:
                if label == "key-confirm":  # a change first, for a confirmation to confirm
                    run(_host_conversation().change_key(NEXT), _handled(terminal))
                run(make(_host_conversation()), answer)
            finally:
                terminal.close()
        seeds[label] = bytes([index]) + b"".join(len(a).to_bytes(2, "big") + a for a in answers)
    sale = m.sale(1, TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv())
    approved = m.response_to(sale, m.ResponseCode.APPROVED, {
        4: sale[4], 49: sale[49], 28: m.fee_field(60), 38: "A1B2C3",
        62: SaleResult(7, 9_940).to_tlv(),
    })  # fmt: skip
    body = encode(approved)
    seeds["sale-approved"] = bytes([3]) + len(body).to_bytes(2, "big") + body
    return seeds


# -- fleet text parsers (through fuzz.fleet_paths) ----------------------------------------


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def check_fee_toml(data: bytes) -> None:
    from fuzz import fleet_paths as fp  # noqa: PLC0415

    with contextlib.suppress(fp.FeeFileError):
        fp.parse_fee_toml(_text(data), "fuzz.toml")


def check_policy(data: bytes) -> None:
    from fuzz import fleet_paths as fp  # noqa: PLC0415

    try:
        policy = fp.Policy.from_toml(_text(data), "fuzz.toml")
    except fp.PolicyError:
        return
    again = fp.Policy.from_toml(policy.to_toml(), "fuzz.toml")
    assert again == policy, "a policy written back reads differently"


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="posfleet-fuzz-records-"))


def _records(data: bytes, suffix: str) -> None:
    from fuzz import fleet_paths as fp  # noqa: PLC0415

    path = _scratch() / f"input{suffix}"
    path.write_bytes(data)
    try:
        if suffix != ".csv":
            fp.read_sections(path)
        for kind, schema in (("terminals", fp.TERMINAL), ("merchants", fp.MERCHANT)):
            _, header, rows = fp.read_rows(path, kind)
            errors = schema.check_header(str(path), header)
            for row in rows:
                shape = fp.shape_error(row)
                if shape is None:
                    schema.parse(row, errors)
    except fp.RejectedFileError:
        pass


def check_records_csv(data: bytes) -> None:
    _records(data, ".csv")


def check_records_json(data: bytes) -> None:
    _records(data, ".json")


def check_records_toml(data: bytes) -> None:
    _records(data, ".toml")


# -- seeds --------------------------------------------------------------------------------


def _frame_seeds() -> dict[str, bytes]:
    good = encode_frame(_requests()["sale"])
    bad = bytearray(good)
    bad[-1] ^= 0x55
    return {"good": good, "bad-lrc": bytes(bad), "noise-ack": b"\x06xx\x15" + good[:9]}


def _tlv_seeds() -> dict[str, bytes]:
    sign_on = decode(_first_answer("sign-on"))
    return {
        "sale": SaleResult(7, 9_940).to_tlv(),
        "card": b"\x01\x01\x02",
        "sign-on": bytes(sign_on.binary(62)),  # v1 tags, health 0x10-0x16, keys 0x20
        "key-change": KeyChange.build(CURRENT, NEXT).to_tlv(),
        "key-confirm": KeyConfirm(2).to_tlv(),
    }


def _master_key_seeds() -> dict[str, bytes]:
    return {
        "v1": bytes(range(16)).hex().encode() + b"\n",
        "v2": b"# the second master key\n"
        + bytes(range(100, 116)).hex().upper().encode()
        + b"\nversion = 2\n",
    }


def _fee_toml_seed() -> bytes:
    return b"""name = "seed"
currency = "CNY"
effective = 2027-01-01T00:00:00+08:00
[[rules]]
card = "credit"
mcc = ["5411", "5811-5814"]
rate = "0.60%"
min = "0.10"
max = "50.00"
[[rules]]
card = "any"
rate = "0.38%"
"""


def _policy_seed() -> bytes:
    from fuzz import fleet_paths as fp  # noqa: PLC0415

    return fp.Policy().to_toml().encode()


_TERMINALS_CSV = (
    b"serial,model,firmware,tid,mid,status,merchant,installed,last_seen\n"
    b"PF00000001,PF-200,1.4.2,T0000001,M00000000000001,deployed,M00000000000001,"
    b"2024-03-01,2026-11-01T10:00:00+08:00\n"
)
_MERCHANTS_JSON = (
    b'{"merchants": [{"mid": "M00000000000001", "name": "Shop", "mcc": "5411", '
    b'"phone": "+8613812345678", "language": "zh", "region": "east"}]}'
)
_TERMINALS_TOML = (
    b'[[terminals]]\nserial = "PF00000001"\nmodel = "PF-200"\nfirmware = "1.4.2"\n'
    b'tid = "T0000001"\nmid = "M00000000000001"\n'
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("frame", check_frame, _frame_seeds, "link-layer frame decoder"),
        Target("codec", check_codec, _requests, "ISO 8583 message decoder"),
        Target("link", check_link, _frame_seeds, "link state machine, host and terminal"),
        Target("tlv", check_tlv, _tlv_seeds, "TLV of field 62 (v1 tags, health, keys)"),
        Target(
            "feetable",
            check_feetable,
            lambda: {"table": _table().to_bytes()},
            "fee-table file (FEE1)",
        ),
        Target("terminal", check_terminal, _requests, "the emulated terminal's handler"),
        Target("master_key", check_master_key, _master_key_seeds, "master key file (versioned)"),
        Target("host", check_host, _answers, "the host's flows reading a terminal's answers"),
        Target("fee_toml", check_fee_toml, lambda: {"table": _fee_toml_seed()}, "fee-table TOML"),
        Target("policy", check_policy, lambda: {"default": _policy_seed()}, "policy file"),
        Target(
            "records_csv",
            check_records_csv,
            lambda: {"terminals": _TERMINALS_CSV},
            "CSV importer + inventory validation",
        ),
        Target(
            "records_json",
            check_records_json,
            lambda: {"merchants": _MERCHANTS_JSON},
            "JSON importer + inventory validation",
        ),
        Target(
            "records_toml",
            check_records_toml,
            lambda: {"terminals": _TERMINALS_TOML},
            "TOML importer + inventory validation",
        ),
    )
}
