"""Merchant notices: the outbox from event to verified message.

=========================  ==============================================================
module                     owns
=========================  ==============================================================
:mod:`.payloads`           what each kind carries (typed; stored as JSON)
:mod:`.queue`              a notice written in the transaction of its event
:mod:`.compose`            due notices → messages under the contact rules, with codes
:mod:`.dispatch`           ready messages sent exactly once, under leases
:mod:`.verify`             is a code one we sent (the call centre)
:mod:`.preferences`        opt-outs, opt-ins, complaints
:mod:`.contact`            the contact rules (pure): channel, quiet hours, rate limit
:mod:`.text`, :mod:`.sms`  what a notice says (templates) and what an SMS costs (pure)
:mod:`.codes`              verification codes (pure)
:mod:`.channels`           the transports (files, SMTP, Apprise, call lists)
=========================  ==============================================================

Importing this package imports neither Jinja2 nor a transport: they load with the
modules that use them.
"""

from __future__ import annotations

from fleet.notices.payloads import KINDS, FeeChange, NoticePayload, SwapNotice, payload_of
from fleet.notices.queue import queue, queue_many

__all__ = [
    "KINDS",
    "FeeChange",
    "NoticePayload",
    "SwapNotice",
    "payload_of",
    "queue",
    "queue_many",
]
