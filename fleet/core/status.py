"""A terminal's status: the words the inventory, the CLI and the database share. Stdlib
only (the CLI lists them in its help without loading the models)."""

from __future__ import annotations

import enum

__all__ = ["ACTIVE_STATUSES", "LIVE_STATUSES", "Status"]


class Status(enum.StrEnum):
    """A terminal's life: in stock → deployed ↔ faulty → swapped out / retired."""

    IN_STOCK = "in_stock"
    DEPLOYED = "deployed"
    FAULTY = "faulty"
    SWAPPED_OUT = "swapped_out"
    RETIRED = "retired"


ACTIVE_STATUSES = (Status.IN_STOCK, Status.DEPLOYED, Status.FAULTY)
"""Statuses of a device still in the fleet."""
LIVE_STATUSES = (Status.DEPLOYED, Status.FAULTY)
"""Statuses of a device at a merchant: its TID is unique among them, it needs a merchant,
a TID, a MID and a deployment date, and it counts as the merchant's terminal."""
