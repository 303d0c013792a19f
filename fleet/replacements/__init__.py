"""Replacements: which terminals must be replaced, why, how urgently, by when, and what
it costs per quarter.

:mod:`~fleet.replacements.rules` holds the pure rules (reasons, priority, forecast);
:mod:`~fleet.replacements.query` the one SQL query that evaluates them in the database
and :func:`flag`, which streams its rows through the rules; :func:`assess` gathers one
assessment (ranked, counted, forecast).
"""

from __future__ import annotations

from fleet.replacements.assess import Assessment, assess
from fleet.replacements.query import flag
from fleet.replacements.rules import REASONS, Forecast, Reason, Replacement, priority, quarter

__all__ = [
    "REASONS",
    "Assessment",
    "Forecast",
    "Reason",
    "Replacement",
    "assess",
    "flag",
    "priority",
    "quarter",
]
