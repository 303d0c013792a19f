"""Charts as inline SVG, drawn by matplotlib.

matplotlib is imported when a chart is drawn, never when the CLI starts. Text stays text
(``svg.fonttype = "none"``: the browser draws it with a local font, nothing is fetched),
the XML prolog, DOCTYPE and metadata are stripped so the ``<svg>`` can sit inside HTML,
and every id in a chart is prefixed with the chart's key so that two charts in one page
never share one (a fixed hash salt keeps the output the same from run to run).
"""

from __future__ import annotations

import io
import re
from typing import Any

from fleet.reports.model import Chart

__all__ = ["colors", "svg"]

_PROLOG = re.compile(r"\A\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_ID = re.compile(r'\b(id)="([^"]+)"')
_HREF = re.compile(r'\b((?:xlink:)?href)="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_WIDTH_IN = 7.0
_HEIGHT_IN = 3.0
_LABEL_ROOM = 80
"""Characters of x labels that fit side by side under a chart."""
_MAX_LABELS = 12
"""More categories than this (days of a long period): every n-th one is labelled."""
_DEFAULT_COLORS = ("#4c6ef5", "#f08c00", "#2f9e44", "#ae3ec9", "#c92a2a", "#1098ad")


def svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (no prolog), ready to inline in HTML."""
    import matplotlib  # noqa: PLC0415 - heavy: only when a chart is drawn

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.ticker import StrMethodFormatter  # noqa: PLC0415

    settings = {
        "svg.fonttype": "none",  # text as <text>, drawn with a local font
        "svg.hashsalt": f"posfleet-{chart.key}",  # the same SVG for the same chart
        "text.parse_math": False,  # a "$" in a model name is a dollar sign, not TeX
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(settings):  # type: ignore[arg-type]
        fig = Figure(figsize=(_WIDTH_IN, _HEIGHT_IN), layout="constrained")
        ax = fig.add_subplot()
        _draw(ax, chart)
        if not chart.empty:
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue()))
    text = _scope_ids(text, f"{chart.key}-")
    return text.replace("<svg ", f'<svg role="img" aria-label="{_attr(chart.title)}" ', 1)


def _scope_ids(text: str, prefix: str) -> str:
    """Prefix every id (``figure_1``, ``patch_3``, clip paths…) and every reference to one,
    so that several charts in one page never share an id."""
    text = _ID.sub(lambda m: f'{m.group(1)}="{prefix}{m.group(2)}"', text)
    text = _HREF.sub(lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', text)
    return _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", text)


def colors(chart: Chart) -> list[str]:
    """The fill of each series, in order (its own colour, else the palette's)."""
    return [
        s.color or _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)] for i, s in enumerate(chart.series)
    ]


def _attr(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def _draw(ax: Any, chart: Chart) -> None:
    ax.set_title(chart.title, loc="left", fontsize=10, fontweight="bold")
    if chart.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    positions = list(range(len(chart.categories)))
    n = len(chart.series)
    width = 0.8 if chart.stacked or n == 1 else 0.8 / n
    bottoms = [0.0] * len(positions)
    for i, (s, color) in enumerate(zip(chart.series, colors(chart), strict=True)):
        label = s.name.replace("_", " ")
        if chart.stacked:
            ax.bar(positions, s.values, width, bottom=bottoms, label=label, color=color)
            bottoms = [b + v for b, v in zip(bottoms, s.values, strict=True)]
        else:
            offset = (i - (n - 1) / 2) * width
            ax.bar([p + offset for p in positions], s.values, width, label=label, color=color)
    step = -(-len(positions) // _MAX_LABELS)
    labels = chart.categories[::step]
    ax.set_xticks(positions[::step], labels)
    if sum(len(c) + 3 for c in labels) > _LABEL_ROOM:  # they would collide
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    ax.set_xlabel(chart.xlabel)
    ax.set_ylabel(chart.ylabel)
    ax.yaxis.get_major_locator().set_params(integer=True)
    tallest = max(bottoms) if chart.stacked else max(max(s.values) for s in chart.series)
    if tallest > 0:  # headroom: the tallest bar never touches the frame
        ax.set_ylim(0, tallest * 1.08)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if n > 1 or chart.stacked:  # a stack's colours mean statuses: named even when alone
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
