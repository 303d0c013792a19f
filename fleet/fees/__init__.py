"""Fee tables: from the TOML people write to the table each merchant should have.

=====================  ==================================================================
module                 owns
=====================  ==================================================================
:mod:`.tablefile`      the table file: TOML → checked table (pure)
:mod:`.group`          which merchants a table applies to (pure)
:mod:`.basket`         the typical basket and a merchant's fee on it (pure)
:mod:`.describe`       rules in words, rule-by-rule differences (pure)
:mod:`.tables`         published tables as stored
:mod:`.targets`        each merchant's (and terminal's) target table, in SQL
:mod:`.publishing`     plan and publish: versions, the notice period, fee-change notices
:mod:`.diff`           two tables compared, per merchant on the basket
=====================  ==================================================================
"""

from __future__ import annotations

from fleet.fees.basket import BasketItem, Impact, basket_fees, parse_basket
from fleet.fees.describe import describe_rule, format_rate, rule_diff
from fleet.fees.diff import FeeDiff, MerchantChange, fee_diff
from fleet.fees.errors import FeeFileError, NoticePeriodError
from fleet.fees.group import Group, parse_group
from fleet.fees.publishing import Plan, plan, publish, read_table_file
from fleet.fees.tablefile import ParsedTable, parse_fee_toml, parse_rate, sha256
from fleet.fees.tables import Published, load_tables, published, source_of, table_doc
from fleet.fees.targets import (
    push_targets,
    target_counts,
    target_of,
    targeted_terminals,
    targets,
)

__all__ = [
    "BasketItem",
    "FeeDiff",
    "FeeFileError",
    "Group",
    "Impact",
    "MerchantChange",
    "NoticePeriodError",
    "ParsedTable",
    "Plan",
    "Published",
    "basket_fees",
    "describe_rule",
    "fee_diff",
    "format_rate",
    "load_tables",
    "parse_basket",
    "parse_fee_toml",
    "parse_group",
    "parse_rate",
    "plan",
    "publish",
    "published",
    "push_targets",
    "read_table_file",
    "rule_diff",
    "sha256",
    "source_of",
    "table_doc",
    "target_counts",
    "target_of",
    "targeted_terminals",
    "targets",
]
