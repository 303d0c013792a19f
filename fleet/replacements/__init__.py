"""Replacements: which terminals must be replaced, why, how urgently, by when, and what
it costs per quarter.

:mod:`~fleet.replacements.rules` holds the pure rules (reasons, priority, forecast);
:mod:`~fleet.replacements.query` the one SQL query that evaluates them in the database
and :func:`flag`, which streams its rows through the rules; :func:`assess` gathers one
assessment (ranked, counted, forecast); :func:`due_page` is one filtered keyset page of
them (the console); :func:`record_p1` remembers the P1 terminals and emits
``terminal.flagged`` for the new ones (:mod:`~fleet.replacements.flags`).
"""

from __future__ import annotations

from fleet.replacements.assess import Assessment, assess
from fleet.replacements.flags import record_p1
from fleet.replacements.pages import DuePage, due_page
from fleet.replacements.query import flag
from fleet.replacements.rules import REASONS, Forecast, Reason, Replacement, priority, quarter

__all__ = [
    "REASONS",
    "Assessment",
    "DuePage",
    "Forecast",
    "Reason",
    "Replacement",
    "assess",
    "due_page",
    "flag",
    "priority",
    "quarter",
    "record_p1",
]
