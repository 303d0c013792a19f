"""Webhooks: the fleet's events, signed and delivered to other systems.

=====================  ===============================================================
module                 owns
=====================  ===============================================================
:mod:`.subscriptions`  add, list, disable a subscription; its deliveries and attempts
:mod:`.sender`         outbox → deliveries → signed POSTs, once, under leases
:mod:`.signing`        the signature headers and the receiver's check (pure)
:mod:`.urls`           which URLs may be called (scheme, credentials, addresses)
:mod:`.keybox`         the key that seals signing secrets (AES-256-GCM)
:mod:`.models`         the tables
=====================  ===============================================================

Events come from :func:`fleet.core.events.emit`, written by the domains in their own
transactions. This package sits just above :mod:`fleet.core` and imports no domain.
"""

from __future__ import annotations

from fleet.webhooks.keybox import KeyBox, generate_key_file, load_keybox
from fleet.webhooks.sender import RoundResult, Sender, fan_out
from fleet.webhooks.signing import SignatureError, check, sign
from fleet.webhooks.subscriptions import (
    Subscription,
    add_subscription,
    disable_subscription,
    get_subscription,
    list_subscriptions,
    parse_kinds,
)
from fleet.webhooks.urls import check_url

__all__ = [
    "KeyBox",
    "RoundResult",
    "Sender",
    "SignatureError",
    "Subscription",
    "add_subscription",
    "check",
    "check_url",
    "disable_subscription",
    "fan_out",
    "generate_key_file",
    "get_subscription",
    "list_subscriptions",
    "load_keybox",
    "parse_kinds",
    "sign",
]
