"""Phone numbers and email addresses as people other than their owner see them: in the
reports, in ``notices list`` and ``notices verify``. Pure: no I/O.

A phone number keeps its country code, the first digits of the number, ``****``, and
its last four digits; an email keeps the first character of its local part and its
domain. Nothing here ever shows a whole number: free text from outside (an error a
terminal or a gateway sent) goes through :func:`mask_phones` in case it quotes one, or
through :func:`redact_addresses`, which leaves no trace of a phone number or an email.
"""

from __future__ import annotations

import re

__all__ = ["mask_address", "mask_phone", "mask_phones", "redact_addresses"]

_HIDDEN = "****"
_MIN_HIDDEN = 4
"""At least this many digits are never shown, however short the number."""
_E164_MAX = 16
"""``+`` and at most 15 digits."""
_E164_IN_TEXT = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}(?!\d)")
_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def mask_phone(e164: str) -> str:
    """``+8613812345678`` → ``+86 138****5678``: the country code, then at most three
    leading and four trailing digits of the national number, at least four digits hidden.

    >>> mask_phone("+8613812345678")
    '+86 138****5678'
    >>> mask_phone("+4915112345678")
    '+49 151****5678'
    >>> mask_phone("+353871234567")
    '+353 8****4567'
    >>> mask_phone("+6591234567")
    '+65 ****4567'
    >>> mask_phone("+12025550123")
    '+1 20****0123'

    Anything that is not an E.164 number is hidden but for its last two characters (all of
    it when that would leave fewer than four hidden):

    >>> mask_phone("13812345678"), mask_phone("+99912"), mask_phone("+1"), mask_phone("")
    ('****78', '****12', '****', '****')
    """
    code = _country_code(e164)
    if code is None:
        return _HIDDEN + (e164[-2:] if len(e164) >= _MIN_HIDDEN + 2 else "")
    national = e164[1 + len(code) :]
    tail = min(4, max(0, len(national) - _MIN_HIDDEN))
    head = max(0, min(3, len(national) - tail - _MIN_HIDDEN))
    return f"+{code} {national[:head]}{_HIDDEN}{national[len(national) - tail :]}"


def _country_code(e164: str) -> str | None:
    """The country calling code of an E.164 number (codes are prefix-free: the first of
    one, two or three digits that is assigned is the one), or none for anything else."""
    if not (e164.startswith("+") and e164[1:].isdigit() and 3 <= len(e164) <= _E164_MAX):
        return None
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE  # noqa: PLC0415 - loaded when used

    for size in (1, 2, 3):
        if int(e164[1 : 1 + size]) in COUNTRY_CODE_TO_REGION_CODE:
            return e164[1 : 1 + size]
    return None


def mask_address(address: str) -> str:
    """Where a message goes, masked: an email keeps the first character of its local part
    and its domain; anything else is a phone number (:func:`mask_phone`).

    >>> mask_address("+8613812345678"), mask_address("ana.li@example.com")
    ('+86 138****5678', 'a***@example.com')
    """
    if "@" in address:
        user, _, domain = address.partition("@")
        return f"{user[:1]}***@{domain}"
    return mask_phone(address)


def mask_phones(text: str) -> str:
    """Every E.164 number in free text, masked.

    >>> mask_phones("SMS to +8613812345678 failed: +8613812345678 is unreachable")
    'SMS to +86 138****5678 failed: +86 138****5678 is unreachable'
    >>> mask_phones("ConnectionRefusedError: [Errno 111] Connection refused")
    'ConnectionRefusedError: [Errno 111] Connection refused'
    """
    return _E164_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)


def redact_addresses(text: str) -> str:
    """Every E.164 number and email address in free text replaced by ``[phone]`` or
    ``[email]``: errors that differ only in the recipient they quote (an SMTP server's
    answer, a gateway's refusal) read the same, and group as one.

    >>> redact_addresses("550 5.1.1 <ana.li@example.com>: no such user")
    '550 5.1.1 <[email]>: no such user'
    >>> redact_addresses("gateway rejected +4915112345678 (+86 138****5678 too)")
    'gateway rejected [phone] (+86 138****5678 too)'
    """
    return _EMAIL_IN_TEXT.sub("[email]", _E164_IN_TEXT.sub("[phone]", text))
