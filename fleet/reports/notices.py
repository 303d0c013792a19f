"""The notices report: notices by kind, channel and status and per day; the messages
carrying them by channel, status and language with SMS segments and cost; failures by
error, with the addresses they quote redacted. Pure: :class:`NoticeAggregates` in
(:func:`fleet.reports.queries.notice_aggregates` reads them for a :class:`NoticeFilter`),
a :class:`~fleet.reports.model.Report` out.

Over 400 lines on purpose: it is one report of five sections, eleven summary facts and
four charts, all fed by the same tallies of the same aggregates; cut in two, each half
would only make sense beside the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fleet.core.errors import InputError
from fleet.core.masking import mask_address, redact_addresses
from fleet.core.money import format_minor
from fleet.core.values import CHANNELS
from fleet.notices.text import KINDS
from fleet.reports.model import Chart, Column, Fact, Report, Section, plural, stacks
from fleet.reports.periods import PeriodUnit, period, period_unit, periods

__all__ = [
    "MESSAGE_STATUSES",
    "NOTICE_STATUSES",
    "NoticeAggregates",
    "NoticeFilter",
    "build_notices",
]

NOTICE_STATUSES = ("queued", "composed", "sent", "failed", "cancelled")
MESSAGE_STATUSES = ("ready", "sending", "sent", "failed")
NOTICE_COLORS = {
    "queued": "#f08c00",
    "composed": "#4c6ef5",
    "sent": "#2f9e44",
    "failed": "#c92a2a",
    "cancelled": "#868e96",
}
MESSAGE_COLORS = {"ready": "#f08c00", "sending": "#4c6ef5", "sent": "#2f9e44", "failed": "#c92a2a"}


@dataclass(frozen=True, slots=True)
class NoticeFilter:
    """Which notices a report counts: created up to the end of ``as_of`` (UTC), from the
    start of ``since`` if given, of these kinds and on these channels (all when empty).

    Raises :class:`~fleet.core.errors.InputError` for an unknown kind or channel, or a
    ``since`` after ``as_of``."""

    as_of: date
    since: date | None = None
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, chosen, known in (
            ("kind", self.kinds, KINDS),
            ("channel", self.channels, CHANNELS),
        ):
            bad = [v for v in chosen if v not in known]
            if bad:
                raise InputError(f"unknown notice {what} {bad[0]!r} (known: {', '.join(known)})")
        if self.since is not None and self.since > self.as_of:
            raise InputError(
                f"notices from {self.since.isoformat()} to {self.as_of.isoformat()}: "
                "the first day is after the last"
            )

    @property
    def start(self) -> datetime | None:
        return None if self.since is None else datetime.combine(self.since, time(), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.as_of + timedelta(days=1), time(), tzinfo=UTC)

    def params(self) -> dict[str, Any]:
        return {
            "created_from": self.since.isoformat() if self.since else None,
            "created_up_to": self.as_of.isoformat(),
            "kinds": list(self.kinds),
            "channels": list(self.channels),
        }


@dataclass(frozen=True, slots=True)
class NoticeAggregates:
    """What :func:`fleet.reports.queries.notice_aggregates` reads, every row one group."""

    by_kind: Sequence[tuple[str, str | None, str, int, datetime, datetime]] = ()
    """(kind, channel or none, notice status, notices, first and last created)."""
    per_day: Sequence[tuple[date, str, int]] = ()
    """(UTC day the notice was created, notice status, notices)."""
    held: tuple[int, datetime | None] = (0, None)
    """Queued notices with a not-before instant (deferred, or a follow-up), and the first."""
    messages: Sequence[tuple[str, str, str, str | None, int, int, int | None, int | None]] = ()
    """(channel, message status, language, cost currency, messages, attempts, segments,
    cost in minor units); segments and cost are none but for SMS."""
    sms_per_day: Sequence[tuple[date, str, str | None, int, int, int]] = ()
    """(UTC day the SMS was composed, message status, currency, SMS, segments, cost)."""
    message_errors: Sequence[tuple[str, str, int, int, str]] = ()
    """(channel, last error, messages failed, messages waiting to retry, an example code)."""
    notice_failures: Sequence[tuple[str | None, int, str]] = ()
    """(note, notices failed without a message, an example merchant)."""
    examples: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Example code → (merchant, address) of its message."""


def _rank(value: str | None, known: Sequence[str]) -> tuple[int, str]:
    """Known values in their order, then the others by name, then none."""
    if value is None:
        return (len(known) + 1, "")
    return (known.index(value), "") if value in known else (len(known), value)


def _money_text(amounts: Mapping[str, int]) -> str:
    return "; ".join(f"{format_minor(v, c)} {c}" for c, v in sorted(amounts.items())) or "none"


def _money_list(amounts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"currency": c, "cost_minor": v} for c, v in sorted(amounts.items())]


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- tallies: the aggregates pivoted into rows and counts -----------------------------------


@dataclass
class _Notices:
    """The notices by kind, channel and status, and per day."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    per_kind: dict[str, Counter[str]] = field(default_factory=dict)
    days: dict[date, Counter[str]] = field(default_factory=dict)
    """UTC day created → notices by status."""

    @classmethod
    def of(cls, agg: NoticeAggregates) -> _Notices:
        found = cls()
        for kind, channel, status, n, first, last in sorted(
            agg.by_kind,
            key=lambda r: (_rank(r[0], KINDS), _rank(r[1], CHANNELS), _rank(r[2], NOTICE_STATUSES)),
        ):
            found.rows.append(
                {
                    "kind": kind,
                    "channel": channel,
                    "status": status,
                    "notices": n,
                    "first_created": first,
                    "last_created": last,
                }
            )
            found.by_status[status] += n
            found.by_kind[kind] += n
            found.per_kind.setdefault(kind, Counter())[status] += n
        for day, status, n in agg.per_day:
            found.days.setdefault(day, Counter())[status] += n
        return found

    def day_rows(self) -> list[dict[str, Any]]:
        return [
            {"day": day, "notices": sum(c.values()), **{s: c[s] for s in NOTICE_STATUSES}}
            for day, c in sorted(self.days.items())
        ]


@dataclass
class _Messages:
    """The messages by channel, status and language; SMS per day; SMS totals."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    per_channel: dict[str, Counter[str]] = field(default_factory=dict)
    by_status: Counter[str] = field(default_factory=Counter)
    sms: int = 0
    sms_segments: int = 0
    sms_cost: Counter[str] = field(default_factory=Counter)
    sent_cost: Counter[str] = field(default_factory=Counter)
    sms_rows: list[dict[str, Any]] = field(default_factory=list)
    sms_days: dict[date, Counter[str]] = field(default_factory=dict)
    """UTC day composed → SMS segments by status."""

    @classmethod
    def of(cls, agg: NoticeAggregates) -> _Messages:
        found = cls()
        for channel, status, language, currency, n, attempts, segments, cost in sorted(
            agg.messages,
            key=lambda r: (_rank(r[0], CHANNELS), _rank(r[1], MESSAGE_STATUSES), r[2], r[3] or ""),
        ):
            found.rows.append(
                {
                    "channel": channel,
                    "status": status,
                    "language": language,
                    "messages": n,
                    "attempts": attempts,
                    "segments": segments,
                    "cost_minor": cost,
                    "currency": currency,
                }
            )
            found.per_channel.setdefault(channel, Counter())[status] += n
            found.by_status[status] += n
            if channel == "sms":
                found.add_sms(status, currency, n, segments, cost)
        found.add_sms_days(agg.sms_per_day)
        return found

    def add_sms(
        self, status: str, currency: str | None, n: int, segments: int | None, cost: int | None
    ) -> None:
        self.sms += n
        self.sms_segments += segments or 0
        if currency and cost is not None:
            self.sms_cost[currency] += cost
            if status == "sent":
                self.sent_cost[currency] += cost

    def add_sms_days(self, per_day: Iterable[tuple[date, str, str | None, int, int, int]]) -> None:
        for day, status, currency, n, segments, cost in sorted(
            per_day, key=lambda r: (r[0], _rank(r[1], MESSAGE_STATUSES), r[2] or "")
        ):
            self.sms_rows.append(
                {
                    "day": day,
                    "status": status,
                    "messages": n,
                    "segments": segments,
                    "cost_minor": cost,
                    "currency": currency,
                }
            )
            self.sms_days.setdefault(day, Counter())[status] += segments


def _failures(agg: NoticeAggregates) -> list[dict[str, Any]]:
    """Message errors and notes of notices that failed without a message, with the
    addresses they quote redacted (:func:`~fleet.core.masking.redact_addresses`), grouped
    again: errors that differ only in the recipient they name become one. The example
    message's own address is shown masked."""
    grouped: dict[tuple[str, str | None, str], list[Any]] = {}

    def add(key: tuple[str, str | None, str], failed: int, retrying: int, example: str) -> None:
        found = grouped.get(key)
        if found is None:
            grouped[key] = [failed, retrying, example]
        else:
            found[0] += failed
            found[1] += retrying
            found[2] = min(found[2], example)

    for channel, error, failed, retrying, code in agg.message_errors:
        add(("message", channel, redact_addresses(error)), failed, retrying, code)
    for note, failed, merchant_id in agg.notice_failures:
        add(("notice", None, redact_addresses(note or "(no note)")), failed, 0, merchant_id)
    rows: list[dict[str, Any]] = []
    for (source, on, text), (n_failed, n_retrying, example) in grouped.items():
        merchant: str | None = example
        address: str | None = None
        if source == "message":
            merchant, address = agg.examples.get(example, (None, None))
        rows.append(
            {
                "source": source,
                "channel": on,
                "error": text,
                "failed": n_failed,
                "retrying": n_retrying,
                "example": example if source == "message" else None,
                "merchant": merchant,
                "to": mask_address(address) if address else None,
            }
        )
    rows.sort(
        key=lambda r: (
            -(r["failed"] + r["retrying"]),
            r["source"],
            _rank(r["channel"], CHANNELS),
            r["error"],
        )
    )
    return rows


# -- the report ------------------------------------------------------------------------------


def _summary(
    notices: _Notices,
    messages: _Messages,
    failures: Sequence[Mapping[str, Any]],
    agg: NoticeAggregates,
    where: NoticeFilter,
) -> tuple[Fact, ...]:
    held, next_due = agg.held
    m = messages
    waiting = m.by_status["ready"] + m.by_status["sending"]
    retrying = sum(r["retrying"] for r in failures)
    channels = where.channels or CHANNELS
    return (
        Fact.count("notices", "notices", sum(notices.by_status.values())),
        Fact.counts(
            "by_status", "notices by status", {s: notices.by_status[s] for s in NOTICE_STATUSES}
        ),
        Fact.counts(
            "by_kind", "notices by kind", {k: notices.by_kind[k] for k in where.kinds or KINDS}
        ),
        Fact(
            "held",
            "queued, held to a later time",
            {"notices": held, "next_due": next_due},
            f"{held:,}" + (f", the first due {_instant(next_due)}" if next_due else ""),
        ),
        Fact.count("messages", "messages", sum(m.by_status.values())),
        Fact.counts(
            "messages_by_channel",
            "messages by channel",
            {c: sum(m.per_channel.get(c, Counter()).values()) for c in channels},
        ),
        Fact.counts(
            "messages_by_status",
            "messages by status",
            {s: m.by_status[s] for s in MESSAGE_STATUSES},
        ),
        Fact(
            "waiting",
            "waiting to be sent",
            {"messages": waiting, "retrying": retrying},
            f"{waiting:,} ({retrying:,} to retry after an error)",
        ),
        Fact(
            "sms",
            "SMS",
            {"messages": m.sms, "segments": m.sms_segments, "cost": _money_list(m.sms_cost)},
            f"{plural(m.sms, 'message')}, {plural(m.sms_segments, 'segment')}, "
            f"{_money_text(m.sms_cost)}",
        ),
        Fact(
            "sms_sent_cost",
            "SMS cost of those sent",
            _money_list(m.sent_cost),
            _money_text(m.sent_cost),
        ),
        Fact.count("distinct_errors", "distinct errors and failure notes", len(failures)),
    )


def _per_period(days: Mapping[date, Counter[str]], unit: PeriodUnit) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for day, c in days.items():
        found.setdefault(period(day, unit), Counter()).update(c)
    return found


_NOTICE_STACK = (NOTICE_STATUSES, NOTICE_COLORS)
_MESSAGE_STACK = (MESSAGE_STATUSES, MESSAGE_COLORS)


def _stacked(
    key: str,
    title: str,
    categories: Sequence[str],
    stack: tuple[Sequence[str], Mapping[str, str]],
    bars: Sequence[Mapping[str, float]],
    **labels: str,
) -> Chart:
    """A chart of one stacked bar per category, by status (of a notice or a message)."""
    order, colors = stack
    return Chart(key, title, tuple(categories), stacks(order, colors, bars), stacked=True, **labels)


def _charts(notices: _Notices, messages: _Messages) -> tuple[Chart, ...]:
    days = sorted(set(notices.days) | set(messages.sms_days))
    unit: PeriodUnit = period_unit(days[0], days[-1]) if days else "day"
    buckets = periods(days[0], days[-1], unit) if days else []
    per_period = _per_period(notices.days, unit)
    sms_per_period = _per_period(messages.sms_days, unit)
    empty: Counter[str] = Counter()
    kinds = sorted(notices.per_kind, key=lambda k: _rank(k, KINDS))
    channels = sorted(messages.per_channel, key=lambda c: _rank(c, CHANNELS))
    return (
        _stacked(
            "notices_over_time",
            f"Notices per {unit}",
            buckets,
            _NOTICE_STACK,
            [per_period.get(b, empty) for b in buckets],
            xlabel=f"{unit} created (UTC)",
            ylabel="notices",
            description=f"Notices per {unit} they were created, stacked by their status now.",
        ),
        _stacked(
            "notices_by_kind",
            "Notices by kind",
            kinds,
            _NOTICE_STACK,
            [notices.per_kind[k] for k in kinds],
            xlabel="kind",
            ylabel="notices",
            description="Notices per kind, stacked by status.",
        ),
        _stacked(
            "messages_by_channel",
            "Messages by channel",
            channels,
            _MESSAGE_STACK,
            [messages.per_channel[c] for c in channels],
            xlabel="channel",
            ylabel="messages",
            description="Messages (one notice, or several as a digest) per channel, "
            "stacked by status.",
        ),
        _stacked(
            "sms_segments",
            f"SMS segments per {unit}",
            buckets,
            _MESSAGE_STACK,
            [sms_per_period.get(b, empty) for b in buckets],
            xlabel=f"{unit} composed (UTC)",
            ylabel="segments",
            description=f"SMS segments per {unit} the messages were composed, stacked by status.",
        ),
    )


_SECTIONS = (
    (
        "by_kind",
        "Notices by kind, channel and status",
        (
            Column("kind"),
            Column("channel"),
            Column("status"),
            Column("notices", kind="int"),
            Column("first_created", "first created", "datetime"),
            Column("last_created", "last created", "datetime"),
        ),
        "channel: the message's once composed, else the one forced (a call task), else none; "
        "statuses are the current ones",
        ("kind", "channel", "status", "notices", "first_created"),
    ),
    (
        "messages",
        "Messages by channel, status and language",
        (
            Column("channel"),
            Column("status"),
            Column("language"),
            Column("messages", kind="int"),
            Column("attempts", kind="int"),
            Column("segments", kind="int"),
            Column("cost_minor", "cost", "money"),
            Column("currency"),
        ),
        "the messages carrying these notices (a digest carries several); segments and cost "
        "for SMS only",
        ("channel", "status", "language", "messages", "segments", "cost_minor", "currency"),
    ),
    (
        "per_day",
        "Notices per day created (UTC)",
        (
            Column("day", kind="date"),
            Column("notices", kind="int"),
            *(Column(s, kind="int") for s in NOTICE_STATUSES),
        ),
        "days with notices only; statuses are the current ones",
        (),
    ),
    (
        "sms_per_day",
        "SMS per day composed (UTC)",
        (
            Column("day", kind="date"),
            Column("status"),
            Column("messages", "SMS", "int"),
            Column("segments", kind="int"),
            Column("cost_minor", "cost", "money"),
            Column("currency"),
        ),
        "",
        (),
    ),
    (
        "failures",
        "Failures by error",
        (
            Column("source"),
            Column("channel"),
            Column("error", wrap=True),
            Column("failed", kind="int"),
            Column("retrying", kind="int"),
            Column("example", "e.g."),
            Column("merchant"),
            Column("to"),
        ),
        "messages that failed for good or wait to retry, by last error; notices that failed "
        "without a message, by note; the addresses an error quotes are redacted, the "
        "example's is masked",
        ("channel", "error", "failed", "retrying", "example"),
    ),
)
"""Each section's key, title, columns, note and the columns a terminal table shows."""


def build_notices(agg: NoticeAggregates, where: NoticeFilter) -> Report:
    """The notices chosen by ``where`` by kind, channel and status, per day; the messages
    carrying them by channel, status and language with SMS segments and cost; failures
    by (masked) error. States are the current ones."""
    notices = _Notices.of(agg)
    messages = _Messages.of(agg)
    failures = _failures(agg)
    rows = {
        "by_kind": notices.rows,
        "messages": messages.rows,
        "per_day": notices.day_rows(),
        "sms_per_day": messages.sms_rows,
        "failures": failures,
    }
    title = f"Notices as of {where.as_of.isoformat()}"
    if where.since:
        title = f"Notices from {where.since.isoformat()} to {where.as_of.isoformat()}"
    return Report(
        name="notices",
        title=title,
        as_of=where.as_of,
        params=where.params(),
        summary=_summary(notices, messages, failures, agg, where),
        sections=tuple(
            Section(key, heading, cols, tuple(rows[key]), note=note, brief=brief)
            for key, heading, cols, note, brief in _SECTIONS
        ),
        main="by_kind",
        charts=_charts(notices, messages),
    )
