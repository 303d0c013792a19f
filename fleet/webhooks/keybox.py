"""The secrets key: seals webhook signing secrets so the database never holds them.

A signing secret must be usable to sign, so it cannot be hashed: it is sealed with
AES-256-GCM under a key that lives outside the database — a file named by
``POSFLEET_SECRETS_KEY_FILE`` (64 hex digits, made by ``posfleet webhooks keygen``), or
the hex itself in ``POSFLEET_SECRETS_KEY``. A database dump alone reveals no secret.
Each sealed value records the key's id (the first 16 hex digits of its SHA-256), so a
value sealed under another key is refused by name instead of decrypting to garbage.

>>> box = KeyBox(bytes(range(32)))
>>> box.open(box.seal("s3cret"), box.key_id)
's3cret'
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fleet.core.errors import InputError, JobError

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "KeyBox", "generate_key_file", "load_keybox"]

KEY_FILE_ENV = "POSFLEET_SECRETS_KEY_FILE"
KEY_ENV = "POSFLEET_SECRETS_KEY"
_AAD = b"posfleet webhook secret v1"


@dataclass(frozen=True)
class KeyBox:
    key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:16]

    def seal(self, secret: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self.key).encrypt(nonce, secret.encode(), _AAD)

    def open(self, sealed: bytes, key_id: str) -> str:
        if key_id != self.key_id:
            raise JobError(
                f"sealed under secrets key {key_id}, but the key given is {self.key_id}",
                where="webhook secret",
            )
        try:
            return AESGCM(self.key).decrypt(sealed[:12], sealed[12:], _AAD).decode()
        except InvalidTag:
            raise JobError(
                "the sealed secret does not open (altered?)", where="webhook secret"
            ) from None


def _parse(text: str, where: str) -> bytes:
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InputError("a secrets key is 64 hex digits (posfleet webhooks keygen)", where=where)
    return key


def load_keybox(path: Path | None = None) -> KeyBox:
    """The key from ``path``, else ``POSFLEET_SECRETS_KEY_FILE``, else
    ``POSFLEET_SECRETS_KEY``; :class:`InputError` naming what to set when none."""
    named = path or (Path(os.environ[KEY_FILE_ENV]) if os.environ.get(KEY_FILE_ENV) else None)
    if named is not None:
        try:
            return KeyBox(_parse(named.read_text(encoding="ascii"), str(named)))
        except OSError as exc:
            raise InputError(
                f"cannot read the secrets key: {exc.strerror}", where=str(named)
            ) from None
    if os.environ.get(KEY_ENV):
        return KeyBox(_parse(os.environ[KEY_ENV], KEY_ENV))
    raise InputError(
        f"no secrets key: set {KEY_FILE_ENV} to a key file (posfleet webhooks keygen FILE)",
        where="webhooks",
    )


def generate_key_file(path: Path, *, overwrite: bool = False) -> KeyBox:
    """Write a new random key to ``path`` (mode 0600); refuses to replace one unless told."""
    if path.exists() and not overwrite:
        raise InputError("exists; a new key would orphan every sealed secret", where=str(path))
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return KeyBox(key)
