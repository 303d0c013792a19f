"""MAC primitives (wire page §5)."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import MacError, ProtocolError
from protocols.mac import (
    KDF_LABEL,
    MasterKey,
    TerminalKey,
    cmac8,
    derive_terminal_key,
    generate_master_key_file,
    load_master_key,
    read_master_key,
    verify_cmac8,
    write_master_key_file,
)

# NIST SP 800-38B, appendix D.1 (AES-128); the same vectors as RFC 4493 section 4.
NIST_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
NIST_M = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
NIST_VECTORS = [
    (0, "bb1d6929e95937287fa37d129b756746"),  # example 1: empty message
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),  # example 2: one block
    (40, "dfa66747de9ae63030ca32611497c827"),  # example 3: 320 bits
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),  # example 4: four blocks
]

MASTER = bytes(range(16))  # 000102...0f
SERIAL = "PF00000001"
TERMINAL_KEY = bytes.fromhex("9c0270b65627d24e0cc8b2e1b112f7e9")  # frozen: see below


def aes_cmac(key: bytes, data: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def hand_built_kdf(master: bytes, serial: str) -> bytes:
    """§5 literally: AES-CMAC(master, 00000001 ‖ "POS-MAC" ‖ 00 ‖ serial ‖ 00000080)."""
    message = (
        (1).to_bytes(4, "big")  # counter i = 1, 32 bits
        + b"POS-MAC"  # label
        + b"\x00"  # separator
        + serial.encode("ascii")  # context
        + (128).to_bytes(4, "big")  # L = 128 bits, 32 bits
    )
    return aes_cmac(master, message)


# --- CMAC -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "tag"), NIST_VECTORS)
def test_nist_vectors(length: int, tag: str) -> None:
    message = NIST_M[:length]
    assert aes_cmac(NIST_KEY, message).hex() == tag
    assert cmac8(NIST_KEY, message).hex() == tag[:16]
    verify_cmac8(NIST_KEY, message, bytes.fromhex(tag[:16]))


def test_cmac8_accepts_bytes_like() -> None:
    assert cmac8(bytearray(NIST_KEY), memoryview(NIST_M[:16])).hex() == "070a16b46b4d4144"


@pytest.mark.parametrize("size", [0, 8, 15, 17, 24, 32])
def test_key_must_be_16_bytes(size: int) -> None:
    with pytest.raises(MacError, match=f"got {size}"):
        cmac8(bytes(size), b"x")


def test_key_must_be_bytes() -> None:
    with pytest.raises(MacError, match="must be bytes"):
        cmac8("2b7e151628aed2a6abf7158809cf4f3c", b"x")  # type: ignore[arg-type]


def test_verify_rejects_every_bit_flip() -> None:
    mac = cmac8(NIST_KEY, b"0800")
    for i in range(64):
        bad = (int.from_bytes(mac, "big") ^ (1 << i)).to_bytes(8, "big")
        with pytest.raises(MacError, match="MAC check failed") as info:
            verify_cmac8(NIST_KEY, b"0800", bad)
        assert info.value.field == 64
        assert isinstance(info.value, ProtocolError)


def test_verify_rejects_other_data_and_key() -> None:
    mac = cmac8(NIST_KEY, b"0800")
    with pytest.raises(MacError):
        verify_cmac8(NIST_KEY, b"0801", mac)
    with pytest.raises(MacError):
        verify_cmac8(bytes(16), b"0800", mac)


@pytest.mark.parametrize("mac", [b"", bytes(7), bytes(9), bytes(16)])
def test_verify_wrong_mac_size(mac: bytes) -> None:
    with pytest.raises(MacError, match=f"MAC must be 8 bytes, got {len(mac)}"):
        verify_cmac8(NIST_KEY, b"0800", mac)


def test_verify_full_16_byte_cmac_is_not_accepted() -> None:
    with pytest.raises(MacError):
        verify_cmac8(NIST_KEY, b"", aes_cmac(NIST_KEY, b""))


def test_verify_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr("protocols.mac.hmac.compare_digest", spy)
    mac = cmac8(NIST_KEY, b"abc")
    verify_cmac8(NIST_KEY, b"abc", mac)
    assert calls == [(mac, mac)]


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=300))
def test_cmac8_is_prefix_of_cmac(key: bytes, data: bytes) -> None:
    mac = cmac8(key, data)
    assert mac == aes_cmac(key, data)[:8]
    verify_cmac8(key, data, mac)


# --- key derivation -------------------------------------------------------------------------


def test_kdf_frozen_vector() -> None:
    assert derive_terminal_key(MASTER, SERIAL) == TERMINAL_KEY


def test_kdf_equals_hand_built_formula() -> None:
    assert KDF_LABEL == b"POS-MAC"
    assert derive_terminal_key(MASTER, SERIAL) == hand_built_kdf(MASTER, SERIAL)


@given(
    st.binary(min_size=16, max_size=16),
    st.text(st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=64),
)
def test_kdf_equals_hand_built_formula_random(master: bytes, serial: str) -> None:
    assert derive_terminal_key(master, serial) == hand_built_kdf(master, serial)


def test_kdf_separates_terminals() -> None:
    keys = {derive_terminal_key(MASTER, f"PF{n:08d}") for n in range(50)}
    assert len(keys) == 50
    assert derive_terminal_key(bytes(16), SERIAL) != TERMINAL_KEY


def test_kdf_key_is_a_mac_key() -> None:
    key = derive_terminal_key(MASTER, SERIAL)
    assert len(key) == 16
    verify_cmac8(key, b"x", cmac8(key, b"x"))


@pytest.mark.parametrize(
    ("master", "serial", "match"),
    [
        (bytes(15), SERIAL, "master key must be 16 bytes"),
        (bytes(32), SERIAL, "master key must be 16 bytes"),
        (MASTER, "", "serial number is empty"),
        (MASTER, "PF-é", "not ASCII"),
        (MASTER, b"PF00000001", "must be str"),
    ],
)
def test_kdf_bad_input(master: bytes, serial: object, match: str) -> None:
    with pytest.raises(MacError, match=match):
        derive_terminal_key(master, serial)  # type: ignore[arg-type]


# --- master key file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "000102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0f\n",
        "000102030405060708090A0B0C0D0E0F\r\n",
        "  00010203 04050607 08090a0b 0c0d0e0f \n\n",
        "0001020304050607\n08090a0b0c0d0e0f\n",
    ],
)
def test_load_master_key(tmp_path: Path, text: str) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(text.encode("ascii"))
    path.chmod(0o600)
    assert load_master_key(path) == MASTER
    assert load_master_key(str(path)) == MASTER


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"000102030405060708090a0b0c0d0e0\n", "expected 32 hex digits, got 31"),
        (b"000102030405060708090a0b0c0d0e0f0\n", "expected 32 hex digits, got 33"),
        (b"", "expected 32 hex digits, got 0"),
        (b"\n\n", "expected 32 hex digits, got 0"),
        (b"0x0102030405060708090a0b0c0d0e0f", r"'x' is not a hex digit \(digit 2\)"),
        (b"000102030405060708090a0b0c0d0e0g", r"'g' is not a hex digit \(digit 32\)"),
        (b"00010203-04050607", "'-' is not a hex digit"),
        (b"\xef\xbb\xbf000102030405060708090a0b0c0d0e0f", "not ASCII text"),
        (bytes(range(16)), "not a hex digit"),
    ],
)
def test_load_master_key_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(MacError, match=match) as info:
        load_master_key(path)
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(MacError, match="cannot read") as info:
        load_master_key(path)
    assert str(path) in str(info.value)


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(MacError, match="cannot read"):
        load_master_key(tmp_path)


def test_generate_master_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = generate_master_key_file(path)
    assert len(key) == 16
    assert load_master_key(path) == key
    assert path.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["master.key"]  # no temporary file left behind


def test_generate_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k"
        generate_master_key_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_never_replaces_silently(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = generate_master_key_file(path)
    with pytest.raises(FileExistsError):
        generate_master_key_file(path)
    assert load_master_key(path) == first
    assert os.listdir(tmp_path) == ["master.key"]
    second = generate_master_key_file(path, overwrite=True)
    assert second != first
    assert load_master_key(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["master.key"]


def test_generate_keys_differ(tmp_path: Path) -> None:
    keys = {generate_master_key_file(tmp_path / f"k{i}") for i in range(20)}
    assert len(keys) == 20


# --- versioned master keys (an addition to v1) -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("000102030405060708090a0b0c0d0e0f\n", 1),  # every v1 file is version 1
        ("000102030405060708090a0b0c0d0e0f\nversion 2\n", 2),
        ("000102030405060708090a0b0c0d0e0f\nversion = 7\n", 7),
        ("000102030405060708090a0b0c0d0e0f\r\nVersion: 4294967295\r\n", 4294967295),
        ("# fleet key, rotated 2026-12-01\nversion 3\n00010203 04050607\n08090a0b0c0d0e0f\n", 3),
    ],
)
def test_read_master_key_versions(tmp_path: Path, text: str, version: int) -> None:
    path = tmp_path / "master.key"
    path.write_text(text)
    path.chmod(0o600)
    master = read_master_key(path)
    assert master == MasterKey(version, MASTER)
    assert load_master_key(path) == MASTER


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("000102030405060708090a0b0c0d0e0f\nversion 0\n", "line 2: version is not a number"),
        ("000102030405060708090a0b0c0d0e0f\nversion two\n", "line 2: version is not a number"),
        ("000102030405060708090a0b0c0d0e0f\nversion 4294967296\n", "not a number 1..4294967295"),
        ("version 2\n000102030405060708090a0b0c0d0e0f\nversion 3\n", "line 3: a second version"),
        ("000102030405060708090a0b0c0d0e0f\nversion -1\n", "line 2"),
        ("000102030405060708090a0b0c0d0e0f\nversion " + "1" * 5000, "line 2: version is not"),
        ("version 2\n000102030405060708090a0b0c0d0e\n", "expected 32 hex digits, got 30"),
    ],
)
def test_read_master_key_errors_never_show_the_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(MacError, match=match) as info:
        read_master_key(path)
    assert str(path) in str(info.value)
    assert "0001020304" not in str(info.value)


def test_write_master_key_file_keeps_the_key_alone_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "m2.key"
    write_master_key_file(path, MasterKey(2, MASTER))
    lines = path.read_text().splitlines()
    assert lines == [MASTER.hex(), "version 2"]  # a v1 tool reading line 1 gets the key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_master_key_file(path, MasterKey(3, bytes(16)))
    write_master_key_file(path, MasterKey(3, bytes(16)), overwrite=True)
    assert read_master_key(path) == MasterKey(3, bytes(16))
    assert os.listdir(tmp_path) == ["m2.key"]


def test_version_1_is_written_in_the_v1_format(tmp_path: Path) -> None:
    write_master_key_file(tmp_path / "k", MasterKey(1, MASTER))
    assert (tmp_path / "k").read_text() == MASTER.hex() + "\n"


def test_generate_with_a_version(tmp_path: Path) -> None:
    key = generate_master_key_file(tmp_path / "k", version=9)
    assert read_master_key(tmp_path / "k") == MasterKey(9, key)


def test_versioned_keys_hide_their_bytes() -> None:
    master = MasterKey(2, MASTER)
    terminal = master.terminal_key(SERIAL)
    assert terminal == TerminalKey(2, derive_terminal_key(MASTER, SERIAL))
    for text in (repr(master), str(master), repr(terminal), f"{terminal}", repr([master])):
        assert MASTER.hex() not in text and terminal.key.hex() not in text
        assert "version=2" in text
    assert len(master.check_value) == 6


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MasterKey(0, MASTER), "version 0 is not 1..4294967295"),
        (lambda: MasterKey(2**32, MASTER), "is not 1..4294967295"),
        (lambda: MasterKey(True, MASTER), "must be an int"),
        (lambda: MasterKey(1, MASTER[:15]), "master key must be 16 bytes"),
        (lambda: TerminalKey(1, "00" * 16), "must be bytes"),
    ],
)
def test_versioned_key_errors(build: object, match: str) -> None:
    with pytest.raises(MacError, match=match) as info:
        build()  # type: ignore[operator]
    assert MASTER.hex() not in str(info.value)
