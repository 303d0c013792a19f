"""The reports' database side: every query of every report, and one function per report
that runs them and returns a :class:`~fleet.reports.model.Report`.

Aggregation happens in the database (``GROUP BY``): a report reads a row per model and
status, per firmware version, per manufacture date, per rollout wave and job status, per
notice kind, channel and status, per day, per distinct error, never a row per terminal,
notice or message. The exception is the replacements report, whose rows *are*
terminals: it streams :func:`fleet.replacements.rules.flag` (filtered in the database) and
keeps only the first ``limit`` rows when asked to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Date, Engine, case, func, select

from fleet.core.models import (
    ATTEMPTS,
    FIRMWARE,
    JOBS,
    MERCHANTS,
    MESSAGES,
    MODELS,
    NOTICES,
    ROLLOUTS,
    TERMINALS,
)
from fleet.core.policy import ReplacementPolicy
from fleet.inventory.service import NotFoundError
from fleet.replacements.rules import flag
from fleet.reports import build
from fleet.reports.model import Report

__all__ = ["fleet", "merchant_phones", "notices", "replacements", "rollout"]

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

    Raises :class:`~fleet.inventory.service.NotFoundError` for an id with no such rollout."""
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


def _utc_day(column: Any) -> ColumnElement[Any]:
    """The UTC date of an instant (stored as naive UTC on both databases)."""
    return func.date(column, type_=Date)


def _notices_where(where: build.NoticeFilter, *, channel: bool) -> list[ColumnElement[bool]]:
    """The notices ``where`` chooses; ``channel``: filter on their channel too (the
    message's, else the forced one: needs ``notice`` joined to ``message``)."""
    n = NOTICES
    found: list[ColumnElement[bool]] = [n.c.created_at < where.until]
    if where.start is not None:
        found.append(n.c.created_at >= where.start)
    if where.kinds:
        found.append(n.c.kind.in_(where.kinds))
    if channel and where.channels:
        found.append(func.coalesce(MESSAGES.c.channel, n.c.channel).in_(where.channels))
    return found


def notices(engine: Engine, where: build.NoticeFilter) -> Report:
    """The notices created up to the end of ``where.as_of`` (UTC; from ``where.since``, of
    its kinds and channels when given) by kind, channel and status and per day, the
    messages carrying them by channel, status and language with SMS segments and cost,
    and their failures by error: grouped queries, states as they are now."""
    n, m = NOTICES, MESSAGES
    joined = n.outerjoin(m, m.c.id == n.c.message_id)
    chosen = _notices_where(where, channel=True)
    channel = func.coalesce(m.c.channel, n.c.channel)
    carried = m.c.id.in_(
        select(n.c.message_id).where(
            n.c.message_id.is_not(None), *_notices_where(where, channel=False)
        )
    )
    wanted = [carried, m.c.channel.in_(where.channels)] if where.channels else [carried]
    notice_day = _utc_day(n.c.created_at)
    sms_day = _utc_day(m.c.created_at)
    retrying = m.c.status.in_(("ready", "sending"))
    with engine.connect() as conn:
        by_kind = [
            (str(kind), ch, str(status), int(count), first, last)
            for kind, ch, status, count, first, last in conn.execute(
                select(
                    n.c.kind,
                    channel,
                    n.c.status,
                    func.count(),
                    func.min(n.c.created_at),
                    func.max(n.c.created_at),
                )
                .select_from(joined)
                .where(*chosen)
                .group_by(n.c.kind, channel, n.c.status)
            )
        ]
        per_day = [
            (day, str(status), int(count))
            for day, status, count in conn.execute(
                select(notice_day, n.c.status, func.count())
                .select_from(joined)
                .where(*chosen)
                .group_by(notice_day, n.c.status)
            )
        ]
        held_n, next_due = conn.execute(
            select(func.count(), func.min(n.c.not_before))
            .select_from(joined)
            .where(*chosen, n.c.status == "queued", n.c.not_before.is_not(None))
        ).one()
        messages = [
            (
                str(ch),
                str(status),
                str(language),
                currency,
                int(count),
                int(attempts or 0),
                None if segments is None else int(segments),
                None if cost is None else int(cost),
            )
            for ch, status, language, currency, count, attempts, segments, cost in conn.execute(
                select(
                    m.c.channel,
                    m.c.status,
                    m.c.language,
                    m.c.cost_currency,
                    func.count(),
                    func.sum(m.c.attempts),
                    func.sum(m.c.segments),
                    func.sum(m.c.cost),
                )
                .where(*wanted)
                .group_by(m.c.channel, m.c.status, m.c.language, m.c.cost_currency)
            )
        ]
        sms_per_day = [
            (day, str(status), currency, int(count), int(segments or 0), int(cost or 0))
            for day, status, currency, count, segments, cost in conn.execute(
                select(
                    sms_day,
                    m.c.status,
                    m.c.cost_currency,
                    func.count(),
                    func.sum(m.c.segments),
                    func.sum(m.c.cost),
                )
                .where(*wanted, m.c.channel == "sms")
                .group_by(sms_day, m.c.status, m.c.cost_currency)
            )
        ]
        message_errors = [
            (str(ch), str(error), int(failed or 0), int(waiting or 0), str(example))
            for ch, error, failed, waiting, example in conn.execute(
                select(
                    m.c.channel,
                    m.c.error,
                    func.sum(case((m.c.status == "failed", 1), else_=0)),
                    func.sum(case((retrying, 1), else_=0)),
                    func.min(m.c.code),
                )
                .where(
                    *wanted,
                    m.c.error.is_not(None),
                    m.c.status.in_(("failed", "ready", "sending")),
                )
                .group_by(m.c.channel, m.c.error)
            )
        ]
        notice_failures = [
            (note, int(count), str(example))
            for note, count, example in conn.execute(
                select(n.c.note, func.count(), func.min(n.c.merchant_id))
                .select_from(joined)
                .where(*chosen, n.c.status == "failed", n.c.message_id.is_(None))
                .group_by(n.c.note)
            )
        ]
        codes = sorted({e[4] for e in message_errors})
        examples: dict[str, tuple[str, str]] = {}
        for i in range(0, len(codes), _CHUNK):
            for code, merchant, address in conn.execute(
                select(m.c.code, m.c.merchant_id, m.c.address).where(
                    m.c.code.in_(codes[i : i + _CHUNK])
                )
            ):
                examples[str(code)] = (str(merchant), str(address))
    aggregates = build.NoticeAggregates(
        by_kind=by_kind,
        per_day=per_day,
        held=(int(held_n), next_due),
        messages=messages,
        sms_per_day=sms_per_day,
        message_errors=message_errors,
        notice_failures=notice_failures,
        examples=examples,
    )
    return build.notices_report(aggregates, where)
