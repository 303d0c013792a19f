"""Verification codes: what a merchant reads out to the call centre. Pure.

A code is 50 random bits from :mod:`secrets` in Crockford's base 32 (no I, L, O or U),
so a code read out on the phone is unambiguous; :func:`normalise_code` reads it back as
stored whatever the case, spaces, dashes or O/I/L a caller uses.

A code goes into every message to a merchant, and every composed message must pass the
content check (:mod:`fleet.notices.content`), so :func:`new_code` re-draws a code the check
would read as something a merchant must not be sent: ``…WWW`` before the sentence's full
stop reads as ``www.`` (a link), a half starting ``CARD``, ``CVV`` or ``CVC`` after a verb
reads as asking for a card number. Only the drawing changes: every code already sent keeps
verifying.
"""

from __future__ import annotations

import secrets

__all__ = ["ALPHABET", "code_is_safe", "new_code", "normalise_code"]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32: no I, L, O or U, so a code read out on the phone is unambiguous."""
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


_PROBES = ("Tell {code}.", "Ref {code}. To check", "(ref {code})", "{code}")
"""Where a code stands in a message: after a verb, before a full stop, in brackets."""
_APART = "\n.。\n"
"""Between the probes, checked in one go: no pattern of the content check matches across
it (a request stops at either full stop, a link holds no line break), so the probes
together pass exactly when each one does."""


def code_is_safe(code: str) -> bool:
    """Whether ``code``, wherever a template puts it, passes the content check.

    >>> code_is_safe("7KQ2M-9XD4T"), code_is_safe("7KQ2M-9XWWW"), code_is_safe("CARD7-9XD4T")
    (True, False, False)
    """
    from fleet.notices.content import forbidden  # noqa: PLC0415 - not on the verify path

    return forbidden(_APART.join(probe.format(code=code) for probe in _PROBES)) is None


def new_code() -> str:
    """A verification code: 50 random bits from :mod:`secrets`, e.g. ``7KQ2M-9XD4T``,
    re-drawn (about 1 in 10,000 draws) until no content check refuses it."""
    while True:
        bits = secrets.randbits(50)  # one draw, five bits a character
        raw = "".join(ALPHABET[(bits >> shift) & 31] for shift in range(45, -5, -5))
        code = f"{raw[:5]}-{raw[5:]}"
        if code_is_safe(code):
            return code


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
