"""Transitional: the names other packages imported from the inventory's old single module.

The inventory is now a package (:mod:`fleet.inventory`: catalog, merchants, terminals);
its unknown-reference error is :class:`fleet.core.errors.NotFoundError`. This module keeps
``fleet.device``, ``fleet.swaps``, ``fleet.rollout`` and ``fleet.reports`` (reshaped on
other branches of issue 12) working, unchanged, until they import from
:mod:`fleet.inventory` and :mod:`fleet.core.errors`. Delete it then
(``tests/test_architecture.py`` lists who still imports it).
"""

from __future__ import annotations

from fleet.core import errors
from fleet.inventory import (
    get_terminal,
    import_catalog,
    import_merchants,
    import_terminals,
    iter_terminals,
    set_links,
    terminal_cells,
)


class NotFoundError(errors.NotFoundError):
    """What those callers raise for an unknown serial, merchant or rollout: a
    :class:`fleet.core.errors.NotFoundError` that keeps the exit code (1) their commands
    have had; the core's own exits 2 (bad input)."""

    exit_code = 1


__all__ = [
    "NotFoundError",
    "get_terminal",
    "import_catalog",
    "import_merchants",
    "import_terminals",
    "iter_terminals",
    "set_links",
    "terminal_cells",
]
