"""Ops reports: ``posfleet report fleet|replacements|rollout|notices``.

One function per report in :mod:`fleet.reports.data` queries the database (aggregating
there) and returns a :class:`Report`, a pure data object built by
:mod:`fleet.reports.build`; :mod:`fleet.reports.render` turns any report into a Rich
table, CSV, JSON or one self-contained HTML file, whose charts :mod:`fleet.reports.charts`
draws as inline SVG. A new report is a query function and a builder; the renderers need
no change. Phone numbers are masked (:func:`mask_phone`, from :mod:`fleet.core.masking`)
wherever a report shows one.
"""

from __future__ import annotations

from fleet.core.masking import mask_phone, mask_phones
from fleet.reports.model import Chart, Column, Fact, Report, Section, Series

__all__ = [
    "REPORTS",
    "Chart",
    "Column",
    "Fact",
    "Report",
    "Section",
    "Series",
    "mask_phone",
    "mask_phones",
]

REPORTS = ("fleet", "replacements", "rollout", "notices")
