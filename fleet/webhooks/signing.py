"""Webhook signatures: what posfleet sends and what a receiver checks. Pure.

Every delivery is an HTTP POST of a JSON body with these headers:

=========================  ==============================================================
``Posfleet-Event``         the event kind (``swap.done``…)
``Posfleet-Delivery``      the idempotency key (``whd_<n>``): one per event and
                           subscription, the same on every retry — dedupe on it
``Posfleet-Timestamp``     when this attempt was signed: Unix seconds
``Posfleet-Signature``     ``v1=`` + hex HMAC-SHA256, keyed with the subscription's
                           secret, over ``timestamp + "." + body`` (the raw bytes)
=========================  ==============================================================

A receiver recomputes the HMAC over the bytes it received, compares in constant time,
and refuses a timestamp more than :data:`TOLERANCE_S` away from its own clock (a
captured request replayed later fails). The body repeats the delivery id, so the
idempotency key is covered by the signature too.

>>> sig = sign("whsec_x", 1700000000, b'{"a":1}')
>>> sig
'v1=b3438763ab46d9634b9844c8722818eaf523f803db1327484c6067462a5fd6d1'
>>> check("whsec_x", {"Posfleet-Timestamp": "1700000000", "Posfleet-Signature": sig},
...       b'{"a":1}', now=1700000100)
>>> check("whsec_x", {"Posfleet-Timestamp": "1700000000", "Posfleet-Signature": sig},
...       b'{"a":1}', now=1700000400)
Traceback (most recent call last):
...
fleet.webhooks.signing.SignatureError: timestamp 1700000000 is 400 s from now (tolerance 300 s)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = [
    "DELIVERY",
    "EVENT",
    "SIGNATURE",
    "TIMESTAMP",
    "TOLERANCE_S",
    "SignatureError",
    "check",
    "headers",
    "sign",
]

EVENT = "Posfleet-Event"
DELIVERY = "Posfleet-Delivery"
TIMESTAMP = "Posfleet-Timestamp"
SIGNATURE = "Posfleet-Signature"
TOLERANCE_S = 300
"""Receivers refuse a timestamp further than five minutes from their clock."""


class SignatureError(Exception):
    """A request whose signature or timestamp does not hold."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def headers(
    secret: str, *, kind: str, delivery: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT: kind,
        DELIVERY: delivery,
        TIMESTAMP: str(timestamp),
        SIGNATURE: sign(secret, timestamp, body),
    }


def _header(got: Mapping[str, str], name: str) -> str:
    for key, value in got.items():
        if key.lower() == name.lower():
            return value
    raise SignatureError(f"no {name} header")


def check(
    secret: str,
    got: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Raise :class:`SignatureError` unless ``body`` with headers ``got`` was signed with
    ``secret`` within ``tolerance_s`` of ``now`` (what a receiver runs)."""
    stamp = _header(got, TIMESTAMP)
    if not stamp.isdigit():
        raise SignatureError(f"timestamp {stamp[:20]!r} is not Unix seconds")
    skew = abs(int(now) - int(stamp))
    if skew > tolerance_s:
        raise SignatureError(f"timestamp {stamp} is {skew} s from now (tolerance {tolerance_s} s)")
    wanted = sign(secret, int(stamp), body)
    offered = [s.strip() for s in _header(got, SIGNATURE).split(",")]
    if not any(hmac.compare_digest(wanted, s) for s in offered):
        raise SignatureError("signature does not match")
