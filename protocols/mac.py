"""MAC primitives of the wire protocol (wire page §5), on ``cryptography``.

* :func:`cmac8` - the first 8 bytes of AES-128-CMAC (NIST SP 800-38B): what field 64
  carries; :func:`verify_cmac8` checks one in constant time.
* :func:`derive_terminal_key` - a terminal's 16-byte key from the fleet master key:
  NIST SP 800-108 counter-mode KDF over AES-CMAC, one iteration, i.e.
  ``AES-CMAC(master, 00000001 ‖ "POS-MAC" ‖ 00 ‖ serial ‖ 00000080)``.
* :func:`load_master_key` / :func:`generate_master_key_file` - the master key file: the
  16 bytes as 32 hex digits, readable by its owner only (mode 0600): a file that grants
  its group or others any permission is refused, as ssh refuses such a private key
  (:class:`~protocols.errors.KeyFileModeError`), unless the reader passes
  ``allow_open=True`` (the command lines' ``--allow-open-key-file``).
* Key versions (an addition to v1, docs/protocol.md): :class:`MasterKey` and
  :class:`TerminalKey` pair a key with its version; :func:`read_master_key` reads a
  master key file with its version (a file without a ``version`` line, i.e. every v1
  file, is version 1) and :func:`write_master_key_file` writes one. A terminal key's
  version is the version of the master key it was derived from.
* :func:`wrap_key` / :func:`unwrap_key` - AES key wrap (RFC 3394) of a new terminal key
  under the current one; :func:`key_check_value` - the first 3 bytes of AES-ECB of a zero
  block, the usual check value of a payment key.

Keys never appear in a repr, an error message or a log line: :class:`MasterKey` and
:class:`TerminalKey` print their version only, and errors name sizes and files, not bytes.
(Over 400 lines so that every primitive that touches key bytes lives in this one module.)

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
import stat
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeAlias

from cryptography.hazmat.primitives import cmac, keywrap
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from protocols.errors import KeyFileModeError, MacError

__all__ = [
    "KCV_SIZE",
    "KDF_LABEL",
    "KEY_SIZE",
    "MAC_SIZE",
    "MAX_KEY_VERSION",
    "WRAPPED_SIZE",
    "MasterKey",
    "TerminalKey",
    "cmac8",
    "derive_terminal_key",
    "generate_master_key_file",
    "key_check_value",
    "load_master_key",
    "read_master_key",
    "unwrap_key",
    "verify_cmac8",
    "wrap_key",
    "write_master_key_file",
]

KEY_SIZE: Final = 16
"""Bytes of an AES-128 key: the master key and every terminal key."""
MAC_SIZE: Final = 8
"""Bytes of the MAC in field 64: the first 8 bytes of the AES-CMAC."""
KDF_LABEL: Final = b"POS-MAC"
"""The SP 800-108 label of the terminal-key derivation."""
MAX_KEY_VERSION: Final = 2**32 - 1
"""Key versions are 1..2**32-1 (u32 on the wire; 0 means "none")."""
WRAPPED_SIZE: Final = KEY_SIZE + 8
"""Bytes of a 16-byte key wrapped with RFC 3394 (the key plus the 8-byte integrity block)."""
KCV_SIZE: Final = 3
"""Bytes of a key check value."""

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


# --- versioned keys (an addition to v1) ------------------------------------------------------


def _check_version(version: object, what: str) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise MacError(f"{what} version must be an int, not {type(version).__name__}")
    if not 1 <= version <= MAX_KEY_VERSION:
        raise MacError(f"{what} version {version} is not 1..{MAX_KEY_VERSION}")
    return version


@dataclass(frozen=True, slots=True)
class TerminalKey:
    """A terminal's 16-byte MAC key and its version (that of the master key it comes from).

    >>> TerminalKey(2, bytes(16))
    TerminalKey(version=2)
    """

    version: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_version(self.version, "key")
        object.__setattr__(self, "key", _check_key(self.key, "terminal key"))

    @property
    def check_value(self) -> str:
        """The key check value in hex (:func:`key_check_value`): safe to show."""
        return key_check_value(self.key).hex().upper()


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A fleet master key and its version.

    >>> master = MasterKey(2, bytes(range(16)))
    >>> master, str(master)
    (MasterKey(version=2), 'MasterKey(version=2)')
    >>> master.terminal_key("PF00000001")
    TerminalKey(version=2)
    """

    version: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_version(self.version, "master key")
        object.__setattr__(self, "key", _check_key(self.key, "master key"))

    def terminal_key(self, serial: str) -> TerminalKey:
        """The key of terminal ``serial`` (:func:`derive_terminal_key`), with this version."""
        return TerminalKey(self.version, derive_terminal_key(self.key, serial))

    @property
    def check_value(self) -> str:
        """The key check value in hex (:func:`key_check_value`): safe to show."""
        return key_check_value(self.key).hex().upper()


def read_master_key(path: str | os.PathLike[str], *, allow_open: bool = False) -> MasterKey:
    """Read a master key file with its version.

    The file holds the key as 32 hex digits (either case; whitespace anywhere is ignored)
    and, optionally, one line ``version N`` (also ``version = N`` or ``version: N``), N in
    1..2**32-1; lines starting with ``#`` are comments. A file without a version line (the
    v1 format: just the digits) is version 1.

    Anything else (missing or unreadable file, wrong digit count, a non-hex character, a
    bad or repeated version line) raises MacError naming the file and the problem, never
    the key. A file its group or others may read, write or run is refused
    (:class:`~protocols.errors.KeyFileModeError`) unless ``allow_open``: the key of every
    terminal derives from it.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master.key"
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0f\\nversion 3\\n")
    >>> p.chmod(0o644); read_master_key(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocols.errors.KeyFileModeError: master key file .../master.key: permissions 0644 are \
too open: only its owner may read it (chmod 600)
    >>> read_master_key(p, allow_open=True)
    MasterKey(version=3)
    >>> p.chmod(0o600); read_master_key(p)
    MasterKey(version=3)
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0f\\nversion 0\\n")
    >>> read_master_key(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: master key file .../master.key: line 2: version is not a number \
1..4294967295
    """
    where = f"master key file {os.fspath(path)}"
    try:
        with Path(path).open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not allow_open and mode & 0o077:
                raise KeyFileModeError(
                    f"{where}: permissions {stat.S_IMODE(mode):04o} are too open: only its "
                    "owner may read it (chmod 600)"
                )
            raw = handle.read()
    except OSError as exc:
        raise MacError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MacError(
            f"{where}: not ASCII text (byte {exc.start} is {raw[exc.start]:#04x})"
        ) from exc
    version: int | None = None
    digits = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if stripped[:7].lower() == "version":
            if version is not None:
                raise MacError(f"{where}: line {number}: a second version line")
            value = stripped[7:].strip().removeprefix("=").removeprefix(":").strip()
            # (int() of a 5,000-digit string raises ValueError: look at the length first)
            number_ok = value.isascii() and value.isdigit() and len(value.lstrip("0")) <= 10
            if not number_ok or not 1 <= int(value) <= MAX_KEY_VERSION:
                raise MacError(
                    f"{where}: line {number}: version is not a number 1..{MAX_KEY_VERSION}"
                )
            version = int(value)
            continue
        digits += "".join(stripped.split())
    for pos, char in enumerate(digits):
        if char not in _HEX_DIGITS:
            raise MacError(f"{where}: {char!r} is not a hex digit (digit {pos + 1})")
    if len(digits) != 2 * KEY_SIZE:
        raise MacError(f"{where}: expected {2 * KEY_SIZE} hex digits, got {len(digits)}")
    return MasterKey(1 if version is None else version, bytes.fromhex(digits))


def load_master_key(path: str | os.PathLike[str], *, allow_open: bool = False) -> bytes:
    """The 16 bytes of a master key file, whatever its version (see :func:`read_master_key`).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master.key"
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0f\\n"); p.chmod(0o600)
    >>> load_master_key(p).hex()
    '000102030405060708090a0b0c0d0e0f'
    >>> _ = p.write_text("000102030405060708090a0b0c0d0e0\\n")
    >>> load_master_key(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: master key file .../master.key: expected 32 hex digits, got 31
    """
    return read_master_key(path, allow_open=allow_open).key


def master_key_text(master: MasterKey) -> str:
    """The file content of ``master``: the 32 digits on the first line, alone (what a v1
    tool reads), then ``version N`` unless N is 1 (a v1 file is version 1)."""
    text = master.key.hex() + "\n"
    return text if master.version == 1 else text + f"version {master.version}\n"


def write_master_key_file(
    path: str | os.PathLike[str], master: MasterKey, *, overwrite: bool = False
) -> None:
    """Write ``master`` to ``path`` (format: :func:`master_key_text`), atomically, mode 0600.

    A temporary file in the same directory, fsynced, then linked into place. An existing
    file is never replaced unless ``overwrite`` is true (``FileExistsError`` otherwise):
    losing a fleet's master key changes every terminal key. Other I/O failures raise
    ``OSError`` as usual.

    >>> import tempfile, pathlib, stat
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master-v2.key"
    >>> write_master_key_file(p, MasterKey(2, bytes(range(16))))
    >>> print(p.read_text(), end="")
    000102030405060708090a0b0c0d0e0f
    version 2
    >>> read_master_key(p), stat.S_IMODE(p.stat().st_mode) == 0o600
    (MasterKey(version=2), True)
    """
    if not isinstance(master, MasterKey):
        raise MacError(f"expected a MasterKey, not {type(master).__name__}")
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask did
            os.write(fd, master_key_text(master).encode("ascii"))
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


def generate_master_key_file(
    path: str | os.PathLike[str], *, overwrite: bool = False, version: int = 1
) -> bytes:
    """Write a new random master key (:mod:`secrets`) of ``version`` to ``path``; return it.

    See :func:`write_master_key_file` (atomic, mode 0600, never replaces silently).

    >>> import tempfile, pathlib, stat
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "master.key"
    >>> key = generate_master_key_file(p)
    >>> load_master_key(p) == key, stat.S_IMODE(p.stat().st_mode) == 0o600
    (True, True)
    """
    master = MasterKey(version, secrets.token_bytes(KEY_SIZE))
    write_master_key_file(path, master, overwrite=overwrite)
    return master.key


# --- key wrap and check value ------------------------------------------------------------------


def wrap_key(kek: _Bytes, key: _Bytes) -> bytes:
    """``key`` (16 bytes) wrapped under ``kek`` (16 bytes) with AES key wrap (RFC 3394,
    default initial value A6A6A6A6A6A6A6A6): 24 bytes.

    RFC 3394 section 4.1:

    >>> wrap_key(bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
    ...          bytes.fromhex("00112233445566778899AABBCCDDEEFF")).hex().upper()
    '1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5'
    """
    return keywrap.aes_key_wrap(_check_key(kek, "wrapping key"), _check_key(key, "key"))


def unwrap_key(kek: _Bytes, wrapped: _Bytes) -> bytes:
    """The 16-byte key inside ``wrapped`` (24 bytes, RFC 3394) under ``kek``.

    MacError if ``wrapped`` is not 24 bytes or its integrity check fails (a wrong ``kek``
    or damaged bytes).

    >>> kek = bytes(16)
    >>> unwrap_key(kek, wrap_key(kek, bytes(range(16)))) == bytes(range(16))
    True
    >>> unwrap_key(bytes([1]) * 16, wrap_key(kek, bytes(range(16))))
    Traceback (most recent call last):
    ...
    protocols.errors.MacError: key unwrap failed: integrity check of the wrapped key failed
    """
    kek = _check_key(kek, "wrapping key")
    if not isinstance(wrapped, bytes | bytearray | memoryview):
        raise MacError(f"wrapped key must be bytes, not {type(wrapped).__name__}")
    if len(wrapped) != WRAPPED_SIZE:
        raise MacError(f"wrapped key must be {WRAPPED_SIZE} bytes, got {len(wrapped)}")
    try:
        return keywrap.aes_key_unwrap(kek, bytes(wrapped))
    except keywrap.InvalidUnwrap:
        raise MacError("key unwrap failed: integrity check of the wrapped key failed") from None


def key_check_value(key: _Bytes) -> bytes:
    """The check value of a 16-byte key: the first 3 bytes of AES-128-ECB of a zero block.

    It identifies a key without revealing it (the usual KCV of payment keys).

    >>> key_check_value(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")).hex().upper()
    '7DF76B'
    """
    encryptor = Cipher(algorithms.AES(_check_key(key, "key")), modes.ECB()).encryptor()
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:KCV_SIZE]


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
