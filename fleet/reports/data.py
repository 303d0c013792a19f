"""The reports' database side: every query of every report, and one function per report
that runs them and returns a :class:`~fleet.reports.model.Report`.

Aggregation happens in the database (``GROUP BY``): a report reads a row per model and
status, per firmware version, per manufacture date, per rollout wave and job status, per
distinct error, never a row per terminal. The exception is the replacements report,
whose rows *are* terminals: it streams :func:`fleet.replacements.flag` (filtered in the
database) and keeps only the first ``limit`` rows when asked to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from fleet.inventory import NotFoundError
from fleet.models import ATTEMPTS, FIRMWARE, JOBS, MERCHANTS, MODELS, ROLLOUTS, TERMINALS
from fleet.policy import ReplacementPolicy
from fleet.replacements import flag
from fleet.reports import build
from fleet.reports.model import Report

__all__ = ["fleet", "merchant_phones", "replacements", "rollout"]

_CHUNK = 5000
"""Merchant ids per ``IN (…)`` look-up (well under SQLite's bound-parameter limit)."""
_SCAN_ABOVE = 20 * _CHUNK


def fleet(engine: Engine, as_of: date) -> Report:
    """Terminals by model and status, by firmware (supported on ``as_of`` or not), and by
    age on ``as_of``: two grouped scans of ``terminal``, and the (small) catalog."""
    t = TERMINALS
    with engine.connect() as conn:
        counts = [
            (str(model), str(version), str(status), int(n))
            for model, version, status, n in conn.execute(
                select(t.c.model, t.c.firmware, t.c.status, func.count()).group_by(
                    t.c.model, t.c.firmware, t.c.status
                )
            )
        ]
        by_made = [
            (made, int(n))
            for made, n in conn.execute(
                select(t.c.manufactured_on, func.count())
                .where(t.c.status.in_(build.IN_FLEET))
                .group_by(t.c.manufactured_on)
            )
        ]
        vendors = {str(c): str(v) for c, v in conn.execute(select(MODELS.c.code, MODELS.c.vendor))}
        firmware_eos = {
            (str(m), str(v)): eos
            for m, v, eos in conn.execute(
                select(FIRMWARE.c.model, FIRMWARE.c.version, FIRMWARE.c.end_of_support)
            )
        }
    return build.fleet_report(counts, vendors, firmware_eos, by_made, as_of)


def merchant_phones(engine: Engine, ids: Iterable[str]) -> dict[str, str | None]:
    """Merchant id → phone (E.164 or none), for these merchants (looked up in chunks; when
    there are many, one pass over the merchants is cheaper)."""
    wanted = sorted(set(ids))
    found: dict[str, str | None] = {}
    with engine.connect() as conn:
        if len(wanted) > _SCAN_ABOVE:
            chosen = set(wanted)
            stmt = select(MERCHANTS.c.id, MERCHANTS.c.phone).where(MERCHANTS.c.phone.is_not(None))
            for ident, phone in conn.execute(stmt.execution_options(yield_per=10_000)):
                if ident in chosen:
                    found[ident] = phone
            return found
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            for ident, phone in conn.execute(
                select(MERCHANTS.c.id, MERCHANTS.c.phone).where(MERCHANTS.c.id.in_(chunk))
            ):
                found[ident] = phone
    return found


def replacements(
    engine: Engine,
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int | None = None,
    *,
    limit: int | None = None,
) -> Report:
    """The terminals due for replacement (all, or the first ``limit`` by priority), their
    merchants' contact numbers (masked) and the per-quarter forecast."""
    tally = build.ReplacementTally(limit)
    for r in flag(engine, policy, as_of, horizon_days):
        tally.add(r)
    phones = merchant_phones(engine, tally.merchant_ids())
    horizon = policy.horizon_days if horizon_days is None else horizon_days
    return build.replacements_report(tally, phones, policy, as_of, horizon)


def _rollout_rows(conn: Connection, ids: Sequence[int], until: datetime) -> list[Any]:
    stmt = select(
        ROLLOUTS.c.id,
        ROLLOUTS.c.version,
        ROLLOUTS.c.status,
        ROLLOUTS.c.wave,
        ROLLOUTS.c.waves,
        ROLLOUTS.c.max_failure_ppm,
        ROLLOUTS.c.group,
        ROLLOUTS.c.created_at,
        ROLLOUTS.c.created_by,
    ).where(ROLLOUTS.c.created_at < until)
    if ids:
        stmt = stmt.where(ROLLOUTS.c.id.in_(list(ids)))
    return list(conn.execute(stmt.order_by(ROLLOUTS.c.id)))


def rollout(engine: Engine, as_of: date, ids: Sequence[int] = ()) -> Report:
    """Every rollout created up to ``as_of`` (or those of ``ids``): its jobs per wave and
    status now, its push attempts, and its failures grouped by last error.

    Raises :class:`~fleet.inventory.NotFoundError` for an id with no such rollout."""
    until = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
    j = JOBS
    retrying = j.c.status.in_(("pending", "running"))
    with engine.connect() as conn:
        found = _rollout_rows(conn, ids, until)
        chosen = [r.id for r in found]
        missing = sorted(set(ids) - set(chosen))
        if missing:
            raise NotFoundError(
                f"no rollout {', '.join(map(str, missing))} created by {as_of.isoformat()}"
            )
        rows = [
            build.RolloutRow(
                int(r.id),
                int(r.version),
                str(r.status),
                int(r.wave),
                tuple(int(w) for w in r.waves),
                int(r.max_failure_ppm),
                dict(r.group),
                r.created_at,
                str(r.created_by),
            )
            for r in found
        ]
        in_chosen = j.c.rollout_id.in_(chosen)
        job_counts = [
            (int(rid), int(wave), str(status), int(n))
            for rid, wave, status, n in conn.execute(
                select(j.c.rollout_id, j.c.wave, j.c.status, func.count())
                .where(in_chosen)
                .group_by(j.c.rollout_id, j.c.wave, j.c.status)
            )
        ]
        errors = [
            (int(rid), str(error), int(failed), int(waiting), str(example))
            for rid, error, failed, waiting, example in conn.execute(
                select(
                    j.c.rollout_id,
                    j.c.last_error,
                    func.sum(case((j.c.status == "failed", 1), else_=0)),
                    func.sum(case((retrying, 1), else_=0)),
                    func.min(j.c.serial),
                )
                .where(
                    in_chosen,
                    j.c.last_error.is_not(None),
                    j.c.status.in_(("failed", "pending", "running")),
                )
                .group_by(j.c.rollout_id, j.c.last_error)
            )
        ]
        attempts = [
            (int(rid), int(n), int(bad or 0))
            for rid, n, bad in conn.execute(
                select(
                    j.c.rollout_id,
                    func.count(),
                    func.sum(case((ATTEMPTS.c.outcome == "error", 1), else_=0)),
                )
                .select_from(ATTEMPTS)
                .join(j, j.c.id == ATTEMPTS.c.job_id)
                .where(in_chosen)
                .group_by(j.c.rollout_id)
            )
        ]
    return build.rollout_report(rows, job_counts, errors, attempts, as_of, ids)
