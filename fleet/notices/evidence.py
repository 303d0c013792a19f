"""Delivery evidence: when a message to a merchant counts as delivered. Pure; the one seam.

Everything that needs to know whether a merchant *got* a notice — the compliance gate of
fee raises (:mod:`fleet.fees.compliance`) above all — asks :func:`delivered_at` and
nothing else. Today an email the SMTP server accepted, or an SMS the provider took, counts
as delivered at its send time; a call task, a message not (yet) sent or failed, does not.
Delivery receipts make this stricter (an SMS is delivered only on a receipt) here and only
here.

>>> from datetime import UTC, datetime
>>> from types import SimpleNamespace as Row
>>> at = datetime(2026, 12, 1, 9, tzinfo=UTC)
>>> delivered_at(Row(channel="email", status="sent", sent_at=at)) == at
True
>>> delivered_at(Row(channel="sms", status="failed", sent_at=None)), \\
...     delivered_at(Row(channel="call", status="sent", sent_at=at))
(None, None)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["EVIDENCE_CHANNELS", "delivered_at"]

EVIDENCE_CHANNELS = ("sms", "email")
"""Channels whose message can prove delivery (a call task is work for an agent, not a
delivery)."""


def delivered_at(message: Any) -> datetime | None:
    """When ``message`` (a ``message`` row: ``channel``, ``status``, ``sent_at``) reached
    the merchant, or None when there is no evidence that it did."""
    if message is None or message.channel not in EVIDENCE_CHANNELS:
        return None
    if message.status != "sent" or message.sent_at is None:
        return None
    sent: datetime = message.sent_at
    return sent
