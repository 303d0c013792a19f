"""Verification codes: what a merchant reads out to the call centre. Pure.

A code is 50 random bits from :mod:`secrets` in Crockford's base 32 (no I, L, O or U),
so a code read out on the phone is unambiguous; :func:`normalise_code` reads it back as
stored whatever the case, spaces, dashes or O/I/L a caller uses.
"""

from __future__ import annotations

import secrets

__all__ = ["ALPHABET", "new_code", "normalise_code"]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32: no I, L, O or U, so a code read out on the phone is unambiguous."""
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def new_code() -> str:
    """A verification code: 50 random bits from :mod:`secrets`, e.g. ``7KQ2M-9XD4T``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_code(text: str) -> str:
    """What a caller reads out, as stored: case, spaces and dashes don't matter, and
    O/I/L read as 0/1.

    >>> normalise_code(" 7kq2m 9xd4t "), normalise_code("7KQ2M-9XD4T")
    ('7KQ2M-9XD4T', '7KQ2M-9XD4T')
    >>> normalise_code("o1l2i-34567")
    '01121-34567'
    """
    raw = "".join(c for c in text.upper() if c.isalnum()).translate(_READ_AS)
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == 10 else raw
