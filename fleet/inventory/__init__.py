"""The fleet's inventory: the catalog (models, firmware, advisories), merchants, and
terminals — their schemas, the atomic import jobs, and the reads and writes the front ends
use. Every function takes an engine (or a connection) and returns typed values; a refused
file or change raises :class:`~fleet.core.records.RejectedFileError` naming every bad
cell, an unknown reference :class:`~fleet.core.errors.NotFoundError`.

==================  ================================================================
module              owns
==================  ================================================================
``catalog``         model/firmware/advisory schemas, their import, the catalog listing
``merchants``       the merchant schema, its import, listing and one merchant's page
``terminals``       the terminal record and its rules; find, list, add, update, links
``terminal_import`` the streamed import of a whole inventory
``importing``       what every import shares: result, errors, the chunked upsert
``cells``           parsers of inventory-only cells (TID, status, amount…)
==================  ================================================================
"""

from __future__ import annotations

from fleet.inventory.catalog import (
    ADVISORY,
    FIRMWARE_SCHEMA,
    MODEL,
    AdvisoryInfo,
    FirmwareInfo,
    ModelInfo,
    import_catalog,
    list_catalog,
)
from fleet.inventory.importing import ImportResult
from fleet.inventory.merchants import (
    MERCHANT,
    MerchantDetail,
    MerchantSummary,
    TerminalBrief,
    get_merchant,
    import_merchants,
    list_merchants,
    update_merchant,
)
from fleet.inventory.terminal_import import import_terminals
from fleet.inventory.terminals import (
    TERMINAL,
    TERMINAL_COLUMNS,
    TerminalChange,
    TerminalDetail,
    add_terminal,
    get_terminal,
    iter_terminals,
    linked_serials,
    set_links,
    terminal_cells,
    terminal_detail,
    update_terminal,
)

__all__ = [
    "ADVISORY",
    "FIRMWARE_SCHEMA",
    "MERCHANT",
    "MODEL",
    "TERMINAL",
    "TERMINAL_COLUMNS",
    "AdvisoryInfo",
    "FirmwareInfo",
    "ImportResult",
    "MerchantDetail",
    "MerchantSummary",
    "ModelInfo",
    "TerminalBrief",
    "TerminalChange",
    "TerminalDetail",
    "add_terminal",
    "get_merchant",
    "get_terminal",
    "import_catalog",
    "import_merchants",
    "import_terminals",
    "iter_terminals",
    "linked_serials",
    "list_catalog",
    "list_merchants",
    "set_links",
    "terminal_cells",
    "terminal_detail",
    "update_merchant",
    "update_terminal",
]
