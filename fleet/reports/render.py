"""A :class:`~fleet.reports.model.Report` as a Rich table, CSV, JSON or one HTML file.

- **table**: the summary, then every section as a Rich table (money in major units);
- **csv**: the report's *main* section only (``Report.main``), one row per row, headers
  are the column keys, money in integer minor units beside its currency column;
- **json**: one document: ``report``, ``title``, ``as_of``, ``params``, ``summary``, then
  every section's rows under its key, keys in a fixed order, dates in ISO 8601, money in
  integer minor units beside its currency;
- **html**: one self-contained file: Jinja2 (autoescaped, strict), inline CSS with print
  rules, inline SVG charts; no script, no link, nothing fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleet.core.money import format_minor
from fleet.reports.model import Column, Report, Section

__all__ = ["FORMATS", "csv_rows", "display", "html", "json_doc", "json_text", "table"]

FORMATS = ("table", "csv", "json", "html")
TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def display(column: Column, row: Mapping[str, Any], sep: str = "; ") -> str:
    """A value as people read it (table and HTML); ``sep`` joins a list's items."""
    value = row.get(column.key)
    if value is None:
        return ""
    match column.kind:
        case "money":
            return format_minor(int(value), str(row.get(column.currency, "")))
        case "int":
            return f"{int(value):,}"
        case "ppm":
            return f"{int(value) / 10_000:g}%"
        case "bool":
            return "yes" if value else "no"
        case "datetime":
            assert isinstance(value, datetime)
            return value.strftime("%Y-%m-%d %H:%M %Z").strip()
        case "list":
            return sep.join(str(v) for v in value)
    return value.isoformat() if isinstance(value, date) else str(value)


def _plain(value: Any) -> Any:
    """A value for JSON: dates as ISO 8601, lists and mappings recursively."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _csv_value(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == "bool":
        return "true" if value else "false"
    if column.kind == "list":
        return ";".join(str(v) for v in value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_rows(report: Report) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The main section as (headers, rows of text) for :func:`fleet.cli.common.emit`."""
    section = report.section(report.main)
    keys = [c.key for c in section.columns]

    def rows() -> Iterator[dict[str, str]]:
        for row in section.rows:
            yield {c.key: _csv_value(c, row.get(c.key)) for c in section.columns}

    return keys, rows()


def json_doc(report: Report) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "report": report.name,
        "title": report.title,
        "as_of": report.as_of.isoformat() if report.as_of else None,
        "params": _plain(report.params),
        "summary": {fact.key: _plain(fact.value) for fact in report.summary},
    }
    for section in report.sections:
        doc[section.key] = [
            {c.key: _plain(row.get(c.key)) for c in section.columns} for row in section.rows
        ]
    return doc


def json_text(report: Report) -> str:
    return json.dumps(json_doc(report), indent=2, ensure_ascii=False) + "\n"


def _section_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left")
    shown = section.table_columns()
    for i, column in enumerate(shown):
        table.add_column(
            column.label,
            justify="right" if column.numeric else "left",
            overflow="fold",
            no_wrap=i == 0,
            ratio=1 if column.wrap or column.kind == "list" else None,
        )
    for row in section.rows:
        table.add_row(*(Text(display(c, row, "\n")) for c in shown))  # text, never markup
    return table


def table(report: Report, console: Console) -> None:
    """Print the report: title, summary, every section (with its note)."""
    console.print(Text(report.title, style="bold"))
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="dim")
    summary.add_column(overflow="fold")
    for fact in report.summary:
        summary.add_row(Text(fact.label), Text(fact.text))
    console.print(summary)
    for section in report.sections:
        if not section.rows:
            console.print(Text(f"{section.title}: none"))
            continue
        console.print(_section_table(section))
        if section.note:
            console.print(Text(f"({section.note})", style="dim"))


def _cell(column: Column, row: Mapping[str, Any]) -> dict[str, Any]:
    """One HTML cell: its text (or its list's items), right-aligned or not, wrapping or not."""
    items = row.get(column.key) if column.kind == "list" else None
    return {
        "text": display(column, row),
        "items": None if items is None else [str(v) for v in items],
        "numeric": column.numeric,
        "wrap": column.wrap or column.kind == "list",
    }


def html(report: Report) -> str:
    """The report as one self-contained HTML document (charts drawn now)."""
    from fleet.reports.charts import svg  # noqa: PLC0415 - matplotlib only when drawing

    charts = [
        # matplotlib escapes the text it writes into the SVG: the markup is ours
        {"chart": chart, "svg": Markup(svg(chart))}
        for chart in report.charts
    ]
    sections = [
        {
            "section": section,
            "cells": [[_cell(c, row) for c in section.columns] for row in section.rows],
        }
        for section in report.sections
    ]
    template = _env.get_template("report.html.j2")
    return template.render(report=report, charts=charts, sections=sections)
