"""Domain errors → one line and the exit code their class names (2 bad input, 1 failed
job), around the other mappings of :func:`fleet.cli.common.handled`.

Helper B's stand-in until the lead merges the one mapping of helper A's
``fleet.cli.common``: then this module goes and its callers use that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fleet.cli.common import fail, handled
from fleet.core.errors import FleetError

__all__ = ["fleet_errors"]


@contextmanager
def fleet_errors(hint: Callable[[FleetError], str] | None = None) -> Iterator[None]:
    """``hint(error)``: what to add in the CLI's own words (a flag to use)."""
    with handled():
        try:
            yield
        except FleetError as exc:
            extra = hint(exc) if hint is not None else ""
            raise fail(f"{exc}{extra}", exc.exit_code) from None
