"""The names of the seeded wear profiles (``possim serve/fleet --wear-profile``).

Apart from :mod:`terminal_sim.wear` (which re-exports it) because ``possim`` needs the
option's type when it declares its commands, and :mod:`terminal_sim.wear` brings the wire's
message and health modules with it: ``possim --help`` loads this module only.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["WearProfile"]


class WearProfile(StrEnum):
    """``possim fleet --wear-profile``: how used the terminals of a fleet are."""

    NEW = "new"
    """Up to six months in service: little wear, nothing tampered."""
    MIXED = "mixed"
    """Up to eight years in service (most under four) at varied trade (median 60 sales a
    day): a realistic spread, some terminals past their rated life, about 1.5 % tampered,
    a few out of paper."""
    WORN = "worn"
    """Four to ten years of busy trade (median 150 sales a day): most parts near or past
    their rated life, about 5 % tampered."""
