"""The console's dashboard: the fleet at a glance, from the reports' own facts and charts.

:func:`dashboard` gathers the fleet report's and the replacements report's summaries and
charts (drawn as SVG now), with rollouts, swaps and notices counted by state, into one
JSON-able value. It reads the whole fleet, so the console does not call it per request:
it caches it for all its processes (:mod:`fleet.core.cache`) and refreshes it in the
background.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from fleet.core.models import MESSAGES, NOTICES, ROLLOUTS, SWAPS, now
from fleet.core.policy import ReplacementPolicy
from fleet.reports.service import fleet_report, replacements_report

__all__ = ["DASHBOARD_CHARTS", "dashboard"]

DASHBOARD_CHARTS = ("composition", "age", "forecast_units")


def _counts(engine: Engine) -> dict[str, dict[str, int]]:
    since = now() - timedelta(days=1)
    with engine.connect() as conn:

        def by(column: Any, *where: Any) -> dict[str, int]:
            stmt = select(column, func.count()).group_by(column)
            for w in where:
                stmt = stmt.where(w)
            return {str(k): int(n) for k, n in conn.execute(stmt)}

        return {
            "rollouts": by(ROLLOUTS.c.status),
            "swaps": by(SWAPS.c.status),
            "notices": by(NOTICES.c.status),
            "messages_24h": by(MESSAGES.c.status, MESSAGES.c.created_at >= since),
        }


def dashboard(engine: Engine, policy: ReplacementPolicy, as_of: date) -> dict[str, Any]:
    """Facts (key, label, text), charts (key, title, description, svg) and counts."""
    from fleet.reports.charts import svg  # noqa: PLC0415 - matplotlib only when drawing

    fleet = fleet_report(engine, as_of)
    due = replacements_report(engine, policy, as_of, limit=0)
    facts = [{"key": f"fleet.{f.key}", "label": f.label, "text": f.text} for f in fleet.summary] + [
        {"key": f"replacements.{f.key}", "label": f.label, "text": f.text} for f in due.summary
    ]
    charts = [
        {"key": c.key, "title": c.title, "description": c.description, "svg": svg(c)}
        for c in (*fleet.charts, *due.charts)
        if c.key in DASHBOARD_CHARTS
    ]
    return {
        "as_of": as_of.isoformat(),
        "computed_at": now().isoformat(),
        "facts": facts,
        "charts": charts,
        "counts": _counts(engine),
    }
