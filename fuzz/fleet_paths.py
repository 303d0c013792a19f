"""Where the fleet's text parsers live, for the fuzz targets: the one place to fix when
fleet/ modules move. Each name is a parser and the typed error it may raise."""

from __future__ import annotations

from fleet.core.policy import Policy, PolicyError
from fleet.core.records import (
    RejectedFileError,
    Row,
    RowError,
    read_rows,
    read_sections,
    shape_error,
)
from fleet.fees.tablefile import FeeFileError, parse_fee_toml
from fleet.inventory import MERCHANT, TERMINAL

__all__ = [
    "MERCHANT",
    "TERMINAL",
    "FeeFileError",
    "Policy",
    "PolicyError",
    "RejectedFileError",
    "Row",
    "RowError",
    "parse_fee_toml",
    "read_rows",
    "read_sections",
    "shape_error",
]
