"""Every message of the wire catalog (§4), request and response, as test data.

Field 62 TLV bytes are written out by hand here (tag, length, value) so these samples do
not depend on the TLV module they help to test.
"""

from __future__ import annotations

import hashlib

from protocols.codec import Message

TID = "TERM0001"
MID = "MERCHANT0000001"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def _tlv(*items: tuple[int, bytes]) -> bytes:
    return b"".join(bytes([tag, len(value)]) + value for tag, value in items)


SIGN_ON_TLV = _tlv(
    (0x02, b"VX520"),
    (0x03, b"PF00000001"),
    (0x04, b"4.2.1"),
    (0x05, (7).to_bytes(4, "big")),
    (0x06, (8).to_bytes(4, "big")),
    (0x07, (9).to_bytes(4, "big") + (3).to_bytes(2, "big")),
    (0x08, (0b11111).to_bytes(2, "big")),
    (0x0A, (1_800_000_000).to_bytes(8, "big")),
    (0x0B, (5411).to_bytes(2, "big")),
)
STATUS_TLV = _tlv(
    (0x05, (7).to_bytes(4, "big")),
    (0x06, (0).to_bytes(4, "big")),
    (0x07, (9).to_bytes(4, "big") + (3).to_bytes(2, "big")),
)
# additions to v1 (docs/protocol.md): health 0x10-0x16, key versions 0x20, key change 0x21-0x23
HEALTH_TLV = _tlv(
    (0x10, bytes([80, 97]) + (41).to_bytes(4, "big")),  # battery 80 %, 97 % of new, 41 cycles
    (0x11, bytes([1]) + (12_000).to_bytes(4, "big")),  # paper low, 12,000 lines
    (0x12, (120).to_bytes(4, "big") + (300).to_bytes(4, "big") + (4).to_bytes(4, "big")),
    (0x13, bytes([1]) + (1_790_000_000).to_bytes(8, "big")),  # tampered at 2026-09-21
    (0x14, (3600).to_bytes(4, "big")),  # up for an hour
    (0x15, bytes([3])),  # last boot: power loss
    (0x16, (2**20).to_bytes(8, "big")),  # 1 MiB free
)
KEY_VERSIONS_TLV = _tlv((0x20, (1).to_bytes(4, "big") + (2).to_bytes(4, "big")))
SIGN_ON_V2_TLV = SIGN_ON_TLV + HEALTH_TLV + KEY_VERSIONS_TLV
KEY_CHANGE_TLV = _tlv(
    (0x21, (2).to_bytes(4, "big")),
    # RFC 3394 section 4.1: 00112233445566778899AABBCCDDEEFF wrapped under 000102...0F
    (0x22, bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")),
    # the check value of SP 800-38B's key 2b7e1516..., not of the wrapped key: a terminal
    # answers this request F2 (tests/protocols/test_keys.py)
    (0x23, bytes.fromhex("7DF76B")),
)
KEY_CONFIRM_TLV = _tlv((0x21, (2).to_bytes(4, "big")))
BLOCK = bytes(range(256)) * 3 + bytes(132)  # 900 bytes
DIGEST = hashlib.sha256(b"a fee table").digest()

CATALOG: dict[str, Message] = {
    "0800/001 sign-on": Message("0800", {11: "000001", 41: TID, 60: "00000000001"}),
    "0810/001 sign-on": Message(
        "0810", {11: "000001", 39: "00", 41: TID, 42: MID, 62: SIGN_ON_TLV}
    ),
    "0800/301 echo": Message("0800", {11: "000002", 41: TID, 60: "00000000301"}),
    "0810/301 echo": Message("0810", {11: "000002", 39: "00", 41: TID}),
    "0800/360 block": Message(
        "0800",
        {
            11: "000003",
            41: TID,
            60: "00000000360",
            61: "0000000900030004",
            62: BLOCK,
            64: bytes.fromhex("0123456789abcdef"),
        },
    ),
    "0810/360 block": Message(
        "0810",
        {11: "000003", 39: "00", 41: TID, 61: "0000000900040004", 64: b"\x99" * 8},
    ),
    "0800/361 commit": Message(
        "0800",
        {
            11: "000004",
            41: TID,
            60: "00000000361",
            61: "0000000900040004",
            62: DIGEST,
            64: b"\x01" * 8,
        },
    ),
    "0810/361 commit": Message("0810", {11: "000004", 39: "F1", 41: TID, 64: b"\x02" * 8}),
    "0800/362 status": Message("0800", {11: "000005", 41: TID, 60: "00000000362"}),
    "0810/362 status": Message("0810", {11: "000005", 39: "00", 41: TID, 62: STATUS_TLV}),
    "0200 sale": Message(
        "0200",
        {
            3: "000000",
            4: "000000010000",
            11: "000006",
            22: "051",
            41: TID,
            49: "156",
            62: _tlv((0x01, b"\x02")),
        },
    ),
    "0210 sale": Message(
        "0210",
        {
            4: "000000010000",
            11: "000006",
            28: "D00000060",
            38: "A1B2C3",
            39: "00",
            41: TID,
            49: "156",
            62: _tlv((0x05, (7).to_bytes(4, "big")), (0x09, (9940).to_bytes(8, "big"))),
        },
    ),
    "0210 no rule": Message("0210", {11: "000007", 39: "57", 41: TID}),
    # additions to v1
    "0810/001 sign-on with health and keys": Message(
        "0810", {11: "000008", 39: "00", 41: TID, 42: MID, 62: SIGN_ON_V2_TLV}
    ),
    "0800/303 health": Message("0800", {11: "000009", 41: TID, 60: "00000000303"}),
    "0810/303 health": Message("0810", {11: "000009", 39: "00", 41: TID, 62: HEALTH_TLV}),
    "0800/161 key change": Message(
        "0800",
        {11: "000010", 41: TID, 60: "00000000161", 62: KEY_CHANGE_TLV, 64: b"\x03" * 8},
    ),
    "0810/161 key change": Message(
        "0810", {11: "000010", 39: "00", 41: TID, 62: KEY_VERSIONS_TLV, 64: b"\x04" * 8}
    ),
    "0800/162 key confirmation": Message(
        "0800",
        {11: "000011", 41: TID, 60: "00000000162", 62: KEY_CONFIRM_TLV, 64: b"\x05" * 8},
    ),
    "0810/162 key confirmation": Message(
        "0810",
        {
            11: "000011",
            39: "00",
            41: TID,
            62: _tlv((0x20, (2).to_bytes(4, "big") + bytes(4))),
            64: b"\x06" * 8,
        },
    ),
    "0810/360 tampered": Message(
        "0810", {11: "000012", 39: "66", 41: TID, 61: "0000000900030004", 64: b"\x07" * 8}
    ),
}
