"""Defaults ``possim`` needs when it declares its options, apart from the modules that use
them (:mod:`terminal_sim.serve` re-exports them) so that ``possim --help`` stays light."""

from __future__ import annotations

__all__ = ["IDLE_TIMEOUT"]

IDLE_TIMEOUT = 30.0
"""Seconds a TCP host may stay silent before the terminal closes its connection (0: never)."""
