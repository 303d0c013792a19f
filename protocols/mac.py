"""MAC primitives of the wire protocol (wire page §5), on ``cryptography``.

* :func:`cmac8` - the first 8 bytes of AES-128-CMAC (NIST SP 800-38B): what field 64
  carries; :func:`verify_cmac8` checks one in constant time.
* :func:`derive_terminal_key` - a terminal's 16-byte key from the fleet master key:
  NIST SP 800-108 counter-mode KDF over AES-CMAC, one iteration, i.e.
  ``AES-CMAC(master, 00000001 ‖ "POS-MAC" ‖ 00 ‖ serial ‖ 00000080)``.
* :func:`load_master_key` / :func:`generate_master_key_file` - the master key file: the
  16 bytes as 32 hex digits.

What the MAC covers (the message from the MTI up to the field before 64, with bit 64 set)
is the codec's business: see ``protocols.codec.mac_input`` and ``protocols.messages.sign``.

Every failure is a :class:`~protocols.errors.MacError`.

>>> key = derive_terminal_key(bytes(range(16)), "PF00000001")
>>> key.hex()
'9c0270b65627d24e0cc8b2e1b112f7e9'
>>> mac = cmac8(key, b"0800...")
>>> len(mac), verify_cmac8(key, b"0800...", mac)
(8, None)
>>> verify_cmac8(key, b"0800..!", mac)
Traceback (most recent call last):
...
protocols.errors.MacError: field 64: MAC check failed
"""

from __future__ import annotations

import hmac
import os
import secrets
import string
from pathlib import Path
from typing import Final, TypeAlias

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from protocols.errors import MacError

__all__ = [
    "KDF_LABEL",
    "KEY_SIZE",
    "MAC_SIZE",
    "cmac8",
    "derive_terminal_key",
    "generate_master_key_file",
    "load_master_key",
    "verify_cmac8",
]

KEY_SIZE: Final = 16
"""Bytes of an AES-128 key: the master key and every terminal key."""
MAC_SIZE: Final = 8
"""Bytes of the MAC in field 64: the first 8 bytes of the AES-CMAC."""
KDF_LABEL: Final = b"POS-MAC"
"""The SP 800-108 label of the terminal-key derivation."""

_Bytes: TypeAlias = bytes | bytearray | memoryview
_MAC_FIELD: Final = 64
_HEX_DIGITS: Final = frozenset(string.hexdigits)


def _check_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise MacError(f"{what} must be bytes, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) != KEY_SIZE:
        raise MacError(f"{what} must be {KEY_SIZE} bytes (AES-128), got {len(raw)}")
    return raw


def cmac8(key: _Bytes, data: _Bytes) -> bytes:
    """The first 8 bytes of AES-128-CMAC of ``data`` under the 16-byte ``key``.

    NIST SP 800-38B, example 2 (AES-128, 16-byte message):

    >>> key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    >>> cmac8(key, bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")).hex()
    '070a16b46b4d4144'
    >>> cmac8(b"short", b"")
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: key must be 16 bytes (AES-128), got 5
    """
    c = cmac.CMAC(algorithms.AES(_check_key(key, "key")))
    c.update(bytes(data))
    return c.finalize()[:MAC_SIZE]


def verify_cmac8(key: _Bytes, data: _Bytes, mac: _Bytes) -> None:
    """Return if ``mac`` is :func:`cmac8` of ``data`` under ``key``, else raise MacError.

    The comparison is constant-time (:func:`hmac.compare_digest`).

    >>> key = bytes(16)
    >>> verify_cmac8(key, b"abc", cmac8(key, b"abc"))
    >>> verify_cmac8(key, b"abc", b"\\x00" * 4)
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: field 64: MAC must be 8 bytes, got 4
    """
    if not isinstance(mac, bytes | bytearray | memoryview):
        raise MacError(f"MAC must be bytes, not {type(mac).__name__}", field=_MAC_FIELD)
    if len(mac) != MAC_SIZE:
        raise MacError(f"MAC must be {MAC_SIZE} bytes, got {len(mac)}", field=_MAC_FIELD)
    if not hmac.compare_digest(cmac8(key, data), bytes(mac)):
        raise MacError("MAC check failed", field=_MAC_FIELD)


def derive_terminal_key(master: _Bytes, serial: str) -> bytes:
    """The 16-byte MAC key of the terminal with serial number ``serial``.

    SP 800-108 counter mode over AES-CMAC (``cryptography``'s ``KBKDFCMAC``): counter
    32-bit before the fixed data, label ``POS-MAC``, context the serial in ASCII, length
    128 bits as 32-bit big-endian. ``serial`` must be non-empty ASCII.

    >>> derive_terminal_key(bytes(range(16)), "PF00000001").hex()
    '9c0270b65627d24e0cc8b2e1b112f7e9'
    >>> derive_terminal_key(bytes(16), "PF-é")
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: serial number 'PF-é' is not ASCII
    """
    key = _check_key(master, "master key")
    if not isinstance(serial, str):
        raise MacError(f"serial number must be str, not {type(serial).__name__}")
    if not serial:
        raise MacError("serial number is empty")
    if not serial.isascii():
        raise MacError(f"serial number {serial!r} is not ASCII")
    kdf = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=KEY_SIZE,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=KDF_LABEL,
        context=serial.encode("ascii"),
        fixed=None,
    )
    return kdf.derive(key)


def load_master_key(path: str | os.PathLike[str]) -> bytes:
    """Read a master key file: 32 hex digits (either case); whitespace anywhere is ignored.

    Anything else (missing or unreadable file, wrong digit count, a non-hex character)
    raises MacError naming the file and the problem.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master.key"
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0f\\n")
    >>> load_master_key(p).hex()
    '000102030405060708090a0b0c0d0e0f'
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0\\n")
    >>> load_master_key(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: master key file .../master.key: expected 32 hex digits, got 31
    """
    where = f"master key file {os.fspath(path)}"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MacError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MacError(
            f"{where}: not ASCII text (byte {exc.start} is {raw[exc.start]:#04x})"
        ) from exc
    digits = "".join(text.split())
    for pos, char in enumerate(digits):
        if char not in _HEX_DIGITS:
            raise MacError(f"{where}: {char!r} is not a hex digit (digit {pos + 1})")
    if len(digits) != 2 * KEY_SIZE:
        raise MacError(f"{where}: expected {2 * KEY_SIZE} hex digits, got {len(digits)}")
    return bytes.fromhex(digits)


def generate_master_key_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> bytes:
    """Write a new random master key (:mod:`secrets`) to ``path``; return the key.

    The file is written atomically with mode 0600: a temporary file in the same
    directory, fsynced, then linked into place. An existing file is never replaced unless
    ``overwrite`` is true (``FileExistsError`` otherwise): losing a fleet's master key
    changes every terminal key. Other I/O failures raise ``OSError`` as usual.

    >>> import tempfile, pathlib, stat
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master.key"
    >>> key = generate_master_key_file(p)
    >>> load_master_key(p) == key, stat.S_IMODE(p.stat().st_mode) == 0o600
    (True, True)
    """
    target = Path(path)
    key = secrets.token_bytes(KEY_SIZE)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask did
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # atomic, and fails if the target exists
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return key


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse to fsync a directory
        pass
    finally:
        os.close(fd)
