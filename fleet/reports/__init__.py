"""Ops reports: fleet, replacements, rollout and notices, as a table, CSV, JSON or HTML.

A front end asks :mod:`fleet.reports.service` for a report (``fleet_report(engine,
as_of)``, …) and shows it with :mod:`fleet.reports.render`. Inside:

- :mod:`~fleet.reports.model`: what a report is (:class:`Report`, :class:`Section`,
  :class:`Column`, :class:`Fact`, :class:`Chart`), declarations only;
- :mod:`~fleet.reports.queries`: every query (aggregating in the database), returning
  each report's aggregates;
- one module per report, pure (aggregates in, a :class:`Report` out, testable with
  literals): :mod:`~fleet.reports.fleet`, :mod:`~fleet.reports.replacements`,
  :mod:`~fleet.reports.rollout`, :mod:`~fleet.reports.notices` (with
  :mod:`~fleet.reports.periods` for its charts over time);
- :mod:`~fleet.reports.render` (table, CSV, JSON, one self-contained HTML file) and
  :mod:`~fleet.reports.charts` (inline SVG; matplotlib is imported only when a chart is
  drawn).

A new report is a query, a builder module and a service function; the renderers need no
change. Phone numbers are masked (:func:`mask_phone`, from :mod:`fleet.core.masking`)
wherever a report shows one. An unknown rollout is a
:class:`~fleet.core.errors.NotFoundError`, a bad notice filter an
:class:`~fleet.core.errors.InputError`.
"""

from __future__ import annotations

from fleet.core.masking import mask_phone, mask_phones
from fleet.reports.model import Chart, Column, Fact, Report, Section, Series
from fleet.reports.notices import NoticeFilter
from fleet.reports.render import FORMATS, csv_rows, html, json_doc, json_text, table
from fleet.reports.service import (
    fleet_report,
    notices_report,
    replacements_report,
    rollout_report,
    swaps_report,
)

__all__ = [
    "FORMATS",
    "REPORTS",
    "Chart",
    "Column",
    "Fact",
    "NoticeFilter",
    "Report",
    "Section",
    "Series",
    "csv_rows",
    "fleet_report",
    "html",
    "json_doc",
    "json_text",
    "mask_phone",
    "mask_phones",
    "notices_report",
    "replacements_report",
    "rollout_report",
    "swaps_report",
    "table",
]

REPORTS = ("fleet", "replacements", "rollout", "notices")
