"""The reports' database side: every query of every report, returning the aggregates each
report's builder takes (:mod:`fleet.reports.fleet`, ``.replacements``, ``.rollout``,
``.notices``).

Aggregation happens in the database (``GROUP BY``): a report reads a row per model and
status, per firmware version, per manufacture date, per rollout wave and job status, per
notice kind, channel and status, per day, per distinct error, never a row per terminal,
notice or message. The exception is the replacements report, whose rows *are*
terminals: it streams :func:`fleet.replacements.flag` (filtered in the database) and
keeps only the first ``limit`` rows when asked to.

Over 400 lines on purpose: every statement the reports send is here, so what reaches the
database (and that it is grouped) is read and reviewed in one place; the notices
report's eight queries are half of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Date, Engine, case, func, select

from fleet.core.errors import NotFoundError
from fleet.core.models import (
    ADVISORIES,
    ADVISORY_FIRMWARE,
    ATTEMPTS,
    FIRMWARE,
    JOBS,
    MERCHANTS,
    MESSAGES,
    MODELS,
    NOTICES,
    ROLLOUTS,
    TERMINAL_HEALTH,
    TERMINALS,
)
from fleet.core.policy import ReplacementPolicy
from fleet.replacements import flag
from fleet.reports.fleet import IN_FLEET, FleetAggregates
from fleet.reports.notices import NoticeAggregates, NoticeFilter
from fleet.reports.replacements import ReplacementTally
from fleet.reports.rollout import RolloutAggregates, RolloutRow

__all__ = [
    "fleet_aggregates",
    "merchant_phones",
    "notice_aggregates",
    "replacement_tally",
    "rollout_aggregates",
]

_CHUNK = 5000
"""Merchant ids per ``IN (…)`` look-up (well under SQLite's bound-parameter limit)."""
_SCAN_ABOVE = 20 * _CHUNK


def fleet_aggregates(engine: Engine) -> FleetAggregates:
    """Terminals by model, firmware and status, and those in the fleet by manufacture
    date: two grouped scans of ``terminal``, and the (small) catalog."""
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
                .where(t.c.status.in_(IN_FLEET))
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
        unfixed: dict[tuple[str, str], list[str]] = {}
        for m, v, ident in conn.execute(
            select(ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version, ADVISORIES.c.id)
            .join(
                ADVISORIES,
                (ADVISORIES.c.id == ADVISORY_FIRMWARE.c.advisory)
                & (ADVISORIES.c.model == ADVISORY_FIRMWARE.c.model),
            )
            .where(ADVISORIES.c.fixed_in.is_(None))
            .order_by(ADVISORIES.c.id)
        ):
            unfixed.setdefault((str(m), str(v)), []).append(str(ident))
        health = _health_by_model(conn)
    return FleetAggregates(counts, vendors, firmware_eos, by_made, unfixed, health)


def _health_by_model(conn: Connection) -> list[tuple[str, int, int, list[float | None]]]:
    """Per model, over the terminals in the fleet that reported health: how many, how many
    tampered, and each wear counter's mean share of the model's rated life (%)."""
    t, m, h = TERMINALS, MODELS, TERMINAL_HEALTH
    shares = [
        func.avg(h.c.reader * 100.0 / m.c.reader_rated_cycles),
        func.avg(h.c.printer_lines * 100.0 / m.c.printer_rated_lines),
        func.avg(h.c.battery_cycles * 100.0 / m.c.battery_rated_cycles),
    ]
    rows = conn.execute(
        select(m.c.code, func.count(), func.sum(case((h.c.tamper, 1), else_=0)), *shares)
        .select_from(h)
        .join(t, t.c.serial == h.c.serial)
        .join(m, m.c.code == t.c.model)
        .where(t.c.status.in_(IN_FLEET))
        .group_by(m.c.code)
        .order_by(m.c.code)
    )
    return [
        (str(r[0]), int(r[1]), int(r[2] or 0), [None if x is None else float(x) for x in r[3:]])
        for r in rows
    ]


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


def replacement_tally(
    engine: Engine,
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int | None = None,
    *,
    limit: int | None = None,
) -> ReplacementTally:
    """The terminals due for replacement, streamed into a tally (which keeps them all, or
    the first ``limit`` by priority)."""
    tally = ReplacementTally(limit)
    for r in flag(engine, policy, as_of, horizon_days):
        tally.add(r)
    return tally


# -- rollouts ------------------------------------------------------------------------------


def _rollout_rows(conn: Connection, ids: Sequence[int], until: datetime) -> list[RolloutRow]:
    r = ROLLOUTS
    stmt = select(
        r.c.id,
        r.c.kind,
        r.c.version,
        r.c.key_version,
        r.c.key_from,
        r.c.status,
        r.c.wave,
        r.c.waves,
        r.c.max_failure_ppm,
        r.c.group,
        r.c.created_at,
        r.c.created_by,
    ).where(r.c.created_at < until)
    if ids:
        stmt = stmt.where(r.c.id.in_(list(ids)))
    return [
        RolloutRow(
            id=int(row.id),
            version=int(row.key_version if row.kind == "key" else row.version),
            status=str(row.status),
            wave=int(row.wave),
            waves=tuple(int(w) for w in row.waves),
            max_failure_ppm=int(row.max_failure_ppm),
            group=dict(row.group),
            created_at=row.created_at,
            created_by=str(row.created_by),
            kind=str(row.kind),
            key_from=row.key_from,
        )
        for row in conn.execute(stmt.order_by(r.c.id))
    ]


def _job_counts(conn: Connection, chosen: ColumnElement[bool]) -> list[tuple[int, int, str, int]]:
    j = JOBS
    return [
        (int(rid), int(wave), str(status), int(n))
        for rid, wave, status, n in conn.execute(
            select(j.c.rollout_id, j.c.wave, j.c.status, func.count())
            .where(chosen)
            .group_by(j.c.rollout_id, j.c.wave, j.c.status)
        )
    ]


def _job_errors(
    conn: Connection, chosen: ColumnElement[bool]
) -> list[tuple[int, str, int, int, str]]:
    j = JOBS
    retrying = j.c.status.in_(("pending", "running"))
    return [
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
                chosen,
                j.c.last_error.is_not(None),
                j.c.status.in_(("failed", "pending", "running")),
            )
            .group_by(j.c.rollout_id, j.c.last_error)
        )
    ]


def _attempts(conn: Connection, chosen: ColumnElement[bool]) -> list[tuple[int, int, int]]:
    j = JOBS
    return [
        (int(rid), int(n), int(bad or 0))
        for rid, n, bad in conn.execute(
            select(
                j.c.rollout_id,
                func.count(),
                func.sum(case((ATTEMPTS.c.outcome == "error", 1), else_=0)),
            )
            .select_from(ATTEMPTS)
            .join(j, j.c.id == ATTEMPTS.c.job_id)
            .where(chosen)
            .group_by(j.c.rollout_id)
        )
    ]


def rollout_aggregates(engine: Engine, as_of: date, ids: Sequence[int] = ()) -> RolloutAggregates:
    """Every rollout created up to ``as_of`` (or those of ``ids``): its jobs per wave and
    status now, its push attempts, and its failures grouped by last error.

    Raises :class:`~fleet.core.errors.NotFoundError` for an id with no such rollout."""
    until = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
    with engine.connect() as conn:
        rows = _rollout_rows(conn, ids, until)
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise NotFoundError(
                f"no rollout {', '.join(map(str, missing))} created by {as_of.isoformat()}"
            )
        chosen = JOBS.c.rollout_id.in_([r.id for r in rows])
        return RolloutAggregates(
            rows, _job_counts(conn, chosen), _job_errors(conn, chosen), _attempts(conn, chosen)
        )


# -- notices -------------------------------------------------------------------------------


def _utc_day(column: Any) -> ColumnElement[Any]:
    """The UTC date of an instant (stored as naive UTC on both databases)."""
    return func.date(column, type_=Date)


class _NoticeQueries:
    """The notices ``where`` chooses (``notice`` joined to the ``message`` carrying it) and
    the messages carrying them: the conditions every notices query shares."""

    def __init__(self, where: NoticeFilter) -> None:
        n, m = NOTICES, MESSAGES
        self.joined = n.outerjoin(m, m.c.id == n.c.message_id)
        self.channel = func.coalesce(m.c.channel, n.c.channel)
        """The message's channel, else the forced one (a call task)."""
        self.chosen = self._notices(where, channel=True)
        carried = m.c.id.in_(
            select(n.c.message_id).where(
                n.c.message_id.is_not(None), *self._notices(where, channel=False)
            )
        )
        self.messages = [carried, m.c.channel.in_(where.channels)] if where.channels else [carried]
        """The messages carrying a chosen notice, on a chosen channel."""

    def _notices(self, where: NoticeFilter, *, channel: bool) -> list[ColumnElement[bool]]:
        """The notices ``where`` chooses; ``channel``: filter on their channel too (needs
        ``notice`` joined to ``message``)."""
        n = NOTICES
        found: list[ColumnElement[bool]] = [n.c.created_at < where.until]
        if where.start is not None:
            found.append(n.c.created_at >= where.start)
        if where.kinds:
            found.append(n.c.kind.in_(where.kinds))
        if channel and where.channels:
            found.append(self.channel.in_(where.channels))
        return found

    def by_kind(self, conn: Connection) -> list[Any]:
        n = NOTICES
        stmt = (
            select(
                n.c.kind,
                self.channel,
                n.c.status,
                func.count(),
                func.min(n.c.created_at),
                func.max(n.c.created_at),
            )
            .select_from(self.joined)
            .where(*self.chosen)
            .group_by(n.c.kind, self.channel, n.c.status)
        )
        return [
            (str(kind), ch, str(status), int(count), first, last)
            for kind, ch, status, count, first, last in conn.execute(stmt)
        ]

    def per_day(self, conn: Connection) -> list[Any]:
        n = NOTICES
        day = _utc_day(n.c.created_at)
        stmt = (
            select(day, n.c.status, func.count())
            .select_from(self.joined)
            .where(*self.chosen)
            .group_by(day, n.c.status)
        )
        return [(d, str(status), int(count)) for d, status, count in conn.execute(stmt)]

    def held(self, conn: Connection) -> tuple[int, datetime | None]:
        n = NOTICES
        count, next_due = conn.execute(
            select(func.count(), func.min(n.c.not_before))
            .select_from(self.joined)
            .where(*self.chosen, n.c.status == "queued", n.c.not_before.is_not(None))
        ).one()
        return int(count), next_due

    def messages_by(self, conn: Connection) -> list[Any]:
        m = MESSAGES
        stmt = (
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
            .where(*self.messages)
            .group_by(m.c.channel, m.c.status, m.c.language, m.c.cost_currency)
        )
        return [
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
                stmt
            )
        ]

    def sms_per_day(self, conn: Connection) -> list[Any]:
        m = MESSAGES
        day = _utc_day(m.c.created_at)
        stmt = (
            select(
                day,
                m.c.status,
                m.c.cost_currency,
                func.count(),
                func.sum(m.c.segments),
                func.sum(m.c.cost),
            )
            .where(*self.messages, m.c.channel == "sms")
            .group_by(day, m.c.status, m.c.cost_currency)
        )
        return [
            (d, str(status), currency, int(count), int(segments or 0), int(cost or 0))
            for d, status, currency, count, segments, cost in conn.execute(stmt)
        ]

    def message_errors(self, conn: Connection) -> list[Any]:
        m = MESSAGES
        retrying = m.c.status.in_(("ready", "sending"))
        stmt = (
            select(
                m.c.channel,
                m.c.error,
                func.sum(case((m.c.status == "failed", 1), else_=0)),
                func.sum(case((retrying, 1), else_=0)),
                func.min(m.c.code),
            )
            .where(
                *self.messages,
                m.c.error.is_not(None),
                m.c.status.in_(("failed", "ready", "sending")),
            )
            .group_by(m.c.channel, m.c.error)
        )
        return [
            (str(ch), str(error), int(failed or 0), int(waiting or 0), str(example))
            for ch, error, failed, waiting, example in conn.execute(stmt)
        ]

    def notice_failures(self, conn: Connection) -> list[Any]:
        n = NOTICES
        stmt = (
            select(n.c.note, func.count(), func.min(n.c.merchant_id))
            .select_from(self.joined)
            .where(*self.chosen, n.c.status == "failed", n.c.message_id.is_(None))
            .group_by(n.c.note)
        )
        return [(note, int(count), str(example)) for note, count, example in conn.execute(stmt)]


def _examples(conn: Connection, codes: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Message code → (merchant, address), for these codes."""
    m = MESSAGES
    wanted = sorted(set(codes))
    found: dict[str, tuple[str, str]] = {}
    for i in range(0, len(wanted), _CHUNK):
        for code, merchant, address in conn.execute(
            select(m.c.code, m.c.merchant_id, m.c.address).where(
                m.c.code.in_(wanted[i : i + _CHUNK])
            )
        ):
            found[str(code)] = (str(merchant), str(address))
    return found


def notice_aggregates(engine: Engine, where: NoticeFilter) -> NoticeAggregates:
    """The notices created up to the end of ``where.as_of`` (UTC; from ``where.since``, of
    its kinds and channels when given) by kind, channel and status and per day, the
    messages carrying them by channel, status and language with SMS segments and cost,
    and their failures by error: grouped queries, states as they are now."""
    q = _NoticeQueries(where)
    with engine.connect() as conn:
        message_errors = q.message_errors(conn)
        return NoticeAggregates(
            by_kind=q.by_kind(conn),
            per_day=q.per_day(conn),
            held=q.held(conn),
            messages=q.messages_by(conn),
            sms_per_day=q.sms_per_day(conn),
            message_errors=message_errors,
            notice_failures=q.notice_failures(conn),
            examples=_examples(conn, (e[4] for e in message_errors)),
        )
