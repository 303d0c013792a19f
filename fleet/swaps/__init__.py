"""Terminal swaps: the visit (:mod:`.visit`: plan, swap in one transaction), provisioning
the new terminal over one device session (:mod:`.provision`), day sheets
(:mod:`.daysheet`)."""

from __future__ import annotations

from fleet.swaps.changes import cancel, reprovision, reschedule
from fleet.swaps.daysheet import DAY_SHEET, day_sheet
from fleet.swaps.provision import provision
from fleet.swaps.visit import SWAP_STATES, SwapError, SwapResult, list_swaps, plan, swap, swap_in

__all__ = [
    "DAY_SHEET",
    "SWAP_STATES",
    "SwapError",
    "SwapResult",
    "cancel",
    "day_sheet",
    "list_swaps",
    "plan",
    "provision",
    "reprovision",
    "reschedule",
    "swap",
    "swap_in",
]
