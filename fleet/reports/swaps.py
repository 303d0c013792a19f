"""The swaps report: follow-up (回访) outcomes — satisfaction by engineer, by model (of the
new terminal) and by region, follow-ups by state, and the open issues merchants raised.
Pure: :class:`SwapAggregates` in (:func:`fleet.reports.queries.swap_aggregates` groups them
in the database), a :class:`~fleet.reports.model.Report` out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fleet.reports.model import Column, Fact, Report, Section

__all__ = ["SwapAggregates", "build_swaps"]


@dataclass(frozen=True, slots=True)
class SwapAggregates:
    by: dict[str, list[tuple[str, int, int, int, int, int]]]
    """``engineer`` / ``model`` / ``region`` → rows of (value, swaps done, reached, sum of
    satisfaction, unhappy (1–2), open issues)."""
    states: list[tuple[str, int, int]]
    """(follow-up state, swaps, of them overdue on ``as_of``)."""
    issues: list[Any]
    """The open issues: swap, merchant, engineer, model, region, followed_up_at,
    satisfaction, issue — oldest first."""


def _rows(key: str, rows: Sequence[tuple[str, int, int, int, int, int]]) -> list[dict[str, Any]]:
    out = []
    for value, done, reached, total, unhappy, issues in rows:
        out.append(
            {
                key: value or "(none)",
                "swaps": done,
                "reached": reached,
                "satisfaction": f"{total / reached:.2f}" if reached else "",
                "unhappy": unhappy,
                "open_issues": issues,
            }
        )
    return sorted(out, key=lambda r: (-r["swaps"], r[key]))


def _columns(key: str) -> tuple[Column, ...]:
    return (
        Column(key),
        Column("swaps", "swaps done", "int"),
        Column("reached", "reached", "int"),
        Column("satisfaction", "mean satisfaction (1–5)"),
        Column("unhappy", "unhappy (1–2)", "int"),
        Column("open_issues", "open issues", "int"),
    )


ISSUE_COLUMNS = (
    Column("swap", kind="int"),
    Column("merchant"),
    Column("engineer"),
    Column("model"),
    Column("region"),
    Column("followed_up_at", "followed up", "datetime"),
    Column("satisfaction", kind="int"),
    Column("issue", wrap=True),
)


def build_swaps(agg: SwapAggregates, as_of: date) -> Report:
    """The swaps done up to ``as_of`` and their follow-ups as they are now."""
    sections = [
        Section(
            f"by_{key}",
            f"Satisfaction by {key}",
            _columns(key),
            tuple(_rows(key, agg.by.get(key, []))),
            note="follow-ups reached; satisfaction 1 (unhappy) to 5 (very happy)",
        )
        for key in ("engineer", "model", "region")
    ]
    sections.append(
        Section(
            "follow_ups",
            "Follow-ups by state",
            (Column("state"), Column("swaps", kind="int"), Column("overdue", kind="int")),
            tuple({"state": s, "swaps": n, "overdue": late} for s, n, late in agg.states),
            note="due: still to be reached (overdue: past its date); done: reached; "
            "unreached: the policy's tries used up",
        )
    )
    sections.append(
        Section(
            "open_issues",
            "Open issues",
            ISSUE_COLUMNS,
            tuple(dict(r._mapping) for r in agg.issues),
            note="issues merchants raised on the follow-up, not yet closed",
        )
    )
    reached = sum(r[2] for r in agg.by.get("engineer", []))
    total = sum(r[3] for r in agg.by.get("engineer", []))
    return Report(
        name="swaps",
        title=f"Swaps and follow-ups as of {as_of.isoformat()}",
        as_of=as_of,
        params={"done_up_to": as_of.isoformat()},
        summary=(
            Fact.count("swaps", "swaps done", sum(r[1] for r in agg.by.get("engineer", []))),
            Fact.count("reached", "follow-ups reached", reached),
            Fact(
                "satisfaction",
                "mean satisfaction",
                round(total / reached, 2) if reached else None,
                f"{total / reached:.2f} / 5" if reached else "none yet",
            ),
            Fact.count("open_issues", "open issues", len(agg.issues)),
        ),
        sections=tuple(sections),
        main="by_engineer",
    )
