"""The four reports, made from a database: each reads its aggregates
(:mod:`fleet.reports.queries`) and builds its :class:`~fleet.reports.model.Report` (its
own module). What a front end calls; the renderers (:mod:`fleet.reports.render`) then
show the report in any format.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import Engine

from fleet.core.policy import ReplacementPolicy
from fleet.reports import queries
from fleet.reports.fleet import build_fleet
from fleet.reports.model import Report
from fleet.reports.notices import NoticeFilter, build_notices
from fleet.reports.replacements import build_replacements
from fleet.reports.rollout import build_rollout

__all__ = ["fleet_report", "notices_report", "replacements_report", "rollout_report"]


def fleet_report(engine: Engine, as_of: date) -> Report:
    """Terminals by model and status, by firmware (supported on ``as_of`` or not), and by
    age on ``as_of``."""
    return build_fleet(queries.fleet_aggregates(engine), as_of)


def replacements_report(
    engine: Engine,
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int | None = None,
    *,
    limit: int | None = None,
) -> Report:
    """The terminals due for replacement (all, or the first ``limit`` by priority), their
    merchants' contact numbers (masked) and the per-quarter forecast; ``horizon_days``:
    the policy's when none."""
    tally = queries.replacement_tally(engine, policy, as_of, horizon_days, limit=limit)
    phones = queries.merchant_phones(engine, tally.merchant_ids())
    horizon = policy.horizon_days if horizon_days is None else horizon_days
    return build_replacements(tally, phones, policy, as_of, horizon)


def rollout_report(engine: Engine, as_of: date, ids: Sequence[int] = ()) -> Report:
    """Every rollout created up to ``as_of`` (or those of ``ids``), its jobs as they are
    now. Raises :class:`~fleet.core.errors.NotFoundError` for an id with no such rollout."""
    return build_rollout(queries.rollout_aggregates(engine, as_of, ids), as_of, ids)


def notices_report(engine: Engine, where: NoticeFilter) -> Report:
    """The notices ``where`` chooses, their messages and failures, states as they are now."""
    return build_notices(queries.notice_aggregates(engine, where), where)


def scams_report(engine: Engine, since: date, until: date, *, threshold: int) -> Report:
    """The scam radar from ``since`` to ``until`` (UTC days, both included)."""
    from fleet.notices.scams import recent_complaints, scam_days  # noqa: PLC0415
    from fleet.reports.scams import build_scams  # noqa: PLC0415

    days = scam_days(engine, since, until, threshold=threshold)
    complaints = recent_complaints(engine, since, until)
    return build_scams(days, complaints, since=since, until=until, threshold=threshold)
