"""Key change on the wire (an addition to v1): AES key wrap checked against RFC 3394's
published vectors and an independent implementation, the key check value against a NIST
value, and the TLV of key versions, key change and confirmation."""

from __future__ import annotations

import contextlib
import pickle

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import (
    EncodeError,
    KeyCheckError,
    KeyVersionError,
    MacError,
    RefusedError,
    ReplayedError,
    TamperedError,
    TLVError,
    refused_error,
)
from protocols.keys import KeyChange, KeyConfirm, KeyVersions, TerminalKeyRing
from protocols.mac import MasterKey, TerminalKey, key_check_value, unwrap_key, wrap_key
from tests.protocols.catalog import KEY, KEY_CHANGE_TLV, KEY_CONFIRM_TLV, KEY_VERSIONS_TLV

# RFC 3394 section 4, verbatim: (KEK, key data, ciphertext)
KEK128 = "000102030405060708090A0B0C0D0E0F"
KEK192 = KEK128 + "1011121314151617"
KEK256 = KEK192 + "18191A1B1C1D1E1F"
DATA128 = "00112233445566778899AABBCCDDEEFF"
DATA192 = DATA128 + "0001020304050607"
DATA256 = DATA128 + "000102030405060708090A0B0C0D0E0F"
RFC3394 = [
    ("4.1", KEK128, DATA128, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("4.2", KEK192, DATA128, "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"),
    ("4.3", KEK256, DATA128, "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("4.4", KEK192, DATA192, "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"),
    ("4.5", KEK256, DATA192, "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
    (
        "4.6",
        KEK256,
        DATA256,
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
    ),
]


def _aes_ecb(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(block) + op.finalize()


def independent_wrap(kek: bytes, plain: bytes) -> bytes:
    """RFC 3394 section 2.2.1, index-based form, written from the RFC for this test."""
    n = len(plain) // 8
    a = bytes.fromhex("A6A6A6A6A6A6A6A6")
    r = [plain[8 * i : 8 * i + 8] for i in range(n)]
    for j in range(6):
        for i in range(n):
            b = _aes_ecb(kek, a + r[i])
            t = n * j + i + 1
            a = (int.from_bytes(b[:8], "big") ^ t).to_bytes(8, "big")
            r[i] = b[8:]
    return a + b"".join(r)


def independent_unwrap(kek: bytes, wrapped: bytes) -> bytes | None:
    """RFC 3394 section 2.2.2; None when the integrity check (section 2.2.3) fails."""
    n = len(wrapped) // 8 - 1
    a = wrapped[:8]
    r = [wrapped[8 * (i + 1) : 8 * (i + 2)] for i in range(n)]
    for j in reversed(range(6)):
        for i in reversed(range(n)):
            t = n * j + i + 1
            b = _aes_ecb(
                kek, (int.from_bytes(a, "big") ^ t).to_bytes(8, "big") + r[i], decrypt=True
            )
            a, r[i] = b[:8], b[8:]
    return b"".join(r) if a == bytes.fromhex("A6A6A6A6A6A6A6A6") else None


@pytest.mark.parametrize(("section", "kek", "data", "wrapped"), RFC3394)
def test_independent_implementation_matches_every_rfc_vector(
    section: str, kek: str, data: str, wrapped: str
) -> None:
    assert independent_wrap(bytes.fromhex(kek), bytes.fromhex(data)).hex().upper() == wrapped
    assert independent_unwrap(bytes.fromhex(kek), bytes.fromhex(wrapped)) == bytes.fromhex(data)


def test_wrap_key_matches_rfc_section_4_1() -> None:
    """The only vector of our shape (a 128-bit key under a 128-bit KEK)."""
    _, kek, data, wrapped = RFC3394[0]
    assert wrap_key(bytes.fromhex(kek), bytes.fromhex(data)).hex().upper() == wrapped
    assert unwrap_key(bytes.fromhex(kek), bytes.fromhex(wrapped)) == bytes.fromhex(data)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_wrap_key_equals_the_independent_implementation(kek: bytes, key: bytes) -> None:
    wrapped = wrap_key(kek, key)
    assert wrapped == independent_wrap(kek, key)
    assert unwrap_key(kek, wrapped) == key


def test_unwrap_refuses_damage_and_other_keks() -> None:
    kek, key = bytes.fromhex(KEK128), bytes.fromhex(DATA128)
    wrapped = wrap_key(kek, key)
    for i in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[i] ^= 0x01
        assert independent_unwrap(kek, bytes(bad)) is None
        with pytest.raises(MacError, match="integrity check"):
            unwrap_key(kek, bytes(bad))
    with pytest.raises(MacError, match="integrity check"):
        unwrap_key(bytes(16), wrapped)
    with pytest.raises(MacError, match="must be 24 bytes, got 23"):
        unwrap_key(kek, wrapped[:-1])
    with pytest.raises(MacError, match="key must be 16 bytes"):
        wrap_key(kek, bytes(24))


def test_key_check_value_is_the_nist_cipher_of_zero() -> None:
    # SP 800-38B appendix D.1: L = CIPH_K(0^128) = 7df76b0c 1ab899b3 ... for this key
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert key_check_value(key) == bytes.fromhex("7df76b")
    assert TerminalKey(1, key).check_value == "7DF76B"


# --- TLV ------------------------------------------------------------------------------------


def test_key_versions_golden() -> None:
    assert KeyVersions(1, 2).to_tlv() == KEY_VERSIONS_TLV
    assert KeyVersions.from_tlv(KEY_VERSIONS_TLV) == KeyVersions(current=1, next=2)
    assert KeyVersions(3).pending is False and KeyVersions(1, 2).pending is True
    assert KeyVersions.from_tlv_optional(b"") is None


def test_key_change_golden_from_the_catalog() -> None:
    change = KeyChange.from_tlv(KEY_CHANGE_TLV)
    assert change.version == 2
    assert change.to_tlv() == KEY_CHANGE_TLV
    # the catalog's check value belongs to another key: the terminal's F2
    with pytest.raises(MacError, match="check value 7DF76B does not match"):
        change.unwrap(KEY)
    # wrapped under another key: the integrity check fails first
    with pytest.raises(MacError, match="integrity check"):
        change.unwrap(bytes(16))


def test_key_change_build_and_unwrap() -> None:
    current, new = TerminalKey(4, bytes(range(16))), TerminalKey(5, bytes(range(1, 17)))
    change = KeyChange.build(current, new)
    assert change.version == 5 and change.kcv == key_check_value(new.key)
    assert independent_unwrap(current.key, change.wrapped) == new.key
    assert change.unwrap(current.key) == new.key
    assert KeyChange.from_tlv(change.to_tlv()) == change


def test_nothing_secret_in_reprs() -> None:
    new = TerminalKey(5, bytes(range(1, 17)))
    change = KeyChange.build(bytes(16), new)
    for text in (repr(change), str(change), repr(new), str(new)):
        assert new.key.hex() not in text.lower()
        assert change.wrapped.hex() not in text.lower()
    assert repr(change) == f"KeyChange(version=5, check_value='{new.check_value}')"


def test_key_confirm_golden() -> None:
    assert KeyConfirm(2).to_tlv() == KEY_CONFIRM_TLV
    assert KeyConfirm.from_tlv(KEY_CONFIRM_TLV) == KeyConfirm(2)


@pytest.mark.parametrize(
    ("reader", "raw", "field", "offset", "words"),
    [
        (KeyVersions.from_tlv, "2008 00000000 00000000", "62 tag 0x20", 0, "current version is 0"),
        (KeyVersions.from_tlv, "0101 02 2008 00000002 00000002", "62 tag 0x20", 3, "not above"),
        (KeyVersions.from_tlv, "2004 00000001", "62 tag 0x20", 0, "expected 8"),
        (KeyVersions.from_tlv, "0101 02", "62 tag 0x20", None, "missing"),
        (KeyConfirm.from_tlv, "2104 00000000", "62 tag 0x21", 0, "NEW_KEY_VERSION is 0"),
        (KeyChange.from_tlv, "2104 00000002 2217" + "00" * 23, "62 tag 0x22", 6, "expected 24"),
        (KeyChange.from_tlv, "2104 00000002 2218" + "00" * 24, "62 tag 0x23", None, "missing"),
        (
            KeyChange.from_tlv,
            "2104 00000002 2218" + "00" * 24 + "2302 0000",
            "62 tag 0x23",
            32,
            "expected 3",
        ),
    ],
)
def test_strict_decoding(
    reader: object, raw: str, field: str, offset: int | None, words: str
) -> None:
    with pytest.raises(TLVError) as info:
        reader(bytes.fromhex(raw))  # type: ignore[operator]
    assert info.value.field == field
    assert info.value.offset == offset
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: KeyVersions(0), "key version 0"),
        (lambda: KeyVersions(2, 2), "not above current 2"),
        (lambda: KeyVersions(1, 2**32), "does not fit u32"),
        (lambda: KeyConfirm(0), "key version 0"),
        (lambda: KeyChange(2, bytes(23), bytes(3)), "WRAPPED_KEY must be 24 bytes"),
        (lambda: KeyChange(2, bytes(24), bytes(4)), "KEY_CHECK_VALUE must be 3 bytes"),
    ],
)
def test_encode_errors(build: object, words: str) -> None:
    with pytest.raises(EncodeError, match=words):
        build()  # type: ignore[operator]


@given(st.binary(max_size=80))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    for reader in (KeyVersions.from_tlv, KeyChange.from_tlv, KeyConfirm.from_tlv):
        with contextlib.suppress(TLVError):
            reader(data)


@given(st.integers(1, 2**32 - 2), st.integers(0, 2**32 - 1))
def test_random_key_versions_round_trip(current: int, nxt: int) -> None:
    nxt = 0 if nxt <= current else nxt
    versions = KeyVersions(current, nxt)
    assert KeyVersions.from_tlv(versions.to_tlv()) == versions


# --- the host's key ring ----------------------------------------------------------------------

KEY_V1 = TerminalKey(1, KEY)


def test_a_key_ring_picks_current_else_next_and_looks_each_version_up_once() -> None:
    masters = {v: MasterKey(v, bytes([v]) * 16) for v in (1, 3)}
    asked: list[int] = []

    def lookup(version: int) -> TerminalKey | None:
        asked.append(version)
        master = masters.get(version)
        return None if master is None else master.terminal_key("PF00000001")

    ring = TerminalKeyRing(lookup=lookup)
    assert ring and ring.versions == []
    assert ring.pick(KeyVersions(1, 3)) == masters[1].terminal_key("PF00000001")  # current
    assert ring.pick(KeyVersions(2, 3)) == masters[3].terminal_key("PF00000001")  # else next
    assert ring.pick(KeyVersions(4)) is None and ring.pick(KeyVersions(4, 5)) is None
    for _ in range(3):
        ring.pick(KeyVersions(2, 4))
    assert sorted(asked) == [1, 2, 3, 4, 5]  # each version once, a missing one too
    assert ring.versions == [1, 3]
    assert not TerminalKeyRing()
    assert TerminalKeyRing.of(ring) is ring
    assert TerminalKeyRing.of([KEY_V1]).versions == [1]
    derived = TerminalKeyRing.derived(masters.values(), "PF00000001")
    assert derived.get(3) == ring.get(3) and derived.get(5) is None
    liar = TerminalKeyRing(lookup=lambda version: KEY_V1)
    with pytest.raises(KeyVersionError, match="gave 1 when asked for version 2"):
        liar.get(2)
    with pytest.raises(KeyVersionError, match="TerminalKeys, not bytes"):
        TerminalKeyRing([KEY])  # type: ignore[list-item]
    for text in (repr(ring), str(ring), ring.described()):
        for key in (masters[1].key, masters[3].key, ring.get(1).key):  # type: ignore[union-attr]
            assert key.hex() not in text.lower()
    assert ring.described() == "key versions [1, 3] (and a lookup of others)"


def test_typed_refusals_keep_their_class_and_code_across_processes() -> None:
    for code, cls in (("66", TamperedError), ("94", ReplayedError), ("F2", KeyCheckError),
                      ("A0", RefusedError), ("76", RefusedError)):  # fmt: skip
        error = refused_error(f"block 0 of 9 refused: {code}", code=code)
        assert type(error) is cls and error.code == code and error.field == 39
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is cls and back.code == code and str(back) == str(error)
    held = KeyVersionError("no key", held=(3, 4))
    back = pickle.loads(pickle.dumps(held))
    assert type(back) is KeyVersionError and back.held == (3, 4) and str(back) == "no key"
