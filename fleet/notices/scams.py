"""The scam radar: calls and texts claiming to be us, per region and day.

Two signals: every NOT GENUINE verification the call centre made (the verification log,
with the calling merchant's region) and every scam complaint a merchant made
(:func:`record_complaint`: ``posfleet notices complaint`` or the API). :func:`scam_days`
counts them per region and UTC day; a day at or over the policy's ``scam_threshold``
is an alert. Ops answer with :func:`queue_scam_warning`: a ``scam_warning`` notice to
every merchant of the region, composed and sent like any notice (verifiable code, the
no-link/no-secret check, the caps and quiet hours, the merchant's opt-outs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import MERCHANTS, NOTICES, SCAM_COMPLAINTS, VERIFICATIONS, now
from fleet.notices.payloads import LoopNotice
from fleet.notices.queue import queue_many

__all__ = [
    "SCAM_CHANNELS",
    "ScamDay",
    "queue_scam_warning",
    "recent_complaints",
    "record_complaint",
    "scam_days",
]

SCAM_CHANNELS = ("call", "sms", "email", "visit")
UNKNOWN_REGION = "(unknown)"


def record_complaint(
    engine: Engine,
    *,
    channel: str,
    actor: str,
    region: str | None = None,
    merchant_id: str | None = None,
    note: str = "",
    at: datetime | None = None,
) -> int:
    """Record a merchant's scam complaint; the region is the merchant's unless given."""
    if channel not in SCAM_CHANNELS:
        raise InputError(f"{channel!r}: want {', '.join(SCAM_CHANNELS)}", where="channel")
    if region is not None and not (0 < len(region.strip()) <= 40):
        raise InputError("a region is 1-40 characters", where="region")
    if len(note) > 500:
        raise InputError("at most 500 characters", where="note")
    at = at or now()
    with writer(engine).begin() as conn:
        if merchant_id is not None:
            found = conn.execute(
                select(MERCHANTS.c.region).where(MERCHANTS.c.id == merchant_id)
            ).first()
            if found is None:
                raise NotFoundError(f"unknown merchant {merchant_id}")
            region = region or found.region
        if not region:
            raise InputError("give --region (or a merchant with one)", where="region")
        cid = int(
            conn.execute(
                insert(SCAM_COMPLAINTS)
                .values(
                    at=at,
                    region=region.strip(),
                    merchant_id=merchant_id,
                    channel=channel,
                    note=note,
                    actor=actor,
                )
                .returning(SCAM_COMPLAINTS.c.id)
            ).scalar_one()
        )
        audit.record(
            conn, actor=actor, action="contact",
            target=f"merchant:{merchant_id}" if merchant_id else f"region:{region}",
            details={"scam_complaint": cid, "channel": channel, "region": region},
            reason=note[:500], at=at,
        )  # fmt: skip
    return cid


@dataclass(frozen=True, slots=True)
class ScamDay:
    region: str
    day: date
    """The UTC day."""
    not_genuine: int
    complaints: int
    threshold: int

    @property
    def total(self) -> int:
        return self.not_genuine + self.complaints

    @property
    def alert(self) -> bool:
        return self.total >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "day": self.day.isoformat(),
                "not_genuine": self.not_genuine, "complaints": self.complaints,
                "total": self.total, "alert": self.alert}  # fmt: skip


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    if since > until:
        raise InputError(f"--since {since} is after --until {until}", where="since")
    return (
        datetime.combine(since, time(), tzinfo=UTC),
        datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC),
    )


def scam_days(engine: Engine, since: date, until: date, *, threshold: int) -> list[ScamDay]:
    """Signals per region and UTC day from ``since`` to ``until`` (both included), the
    busiest first within a day, the newest day first."""
    start, end = _bounds(since, until)
    fakes: Counter[tuple[str, date]] = Counter()
    complaints: Counter[tuple[str, date]] = Counter()
    with engine.connect() as conn:
        for at, region in conn.execute(
            select(VERIFICATIONS.c.at, VERIFICATIONS.c.region).where(
                VERIFICATIONS.c.genuine.is_(False),
                VERIFICATIONS.c.at >= start,
                VERIFICATIONS.c.at < end,
            )
        ):
            fakes[(region or UNKNOWN_REGION, at.astimezone(UTC).date())] += 1
        for at, region in conn.execute(
            select(SCAM_COMPLAINTS.c.at, SCAM_COMPLAINTS.c.region).where(
                SCAM_COMPLAINTS.c.at >= start, SCAM_COMPLAINTS.c.at < end
            )
        ):
            complaints[(region, at.astimezone(UTC).date())] += 1
    keys = set(fakes) | set(complaints)
    days = [ScamDay(r, d, fakes[(r, d)], complaints[(r, d)], threshold) for r, d in keys]
    return sorted(days, key=lambda s: (-s.day.toordinal(), -s.total, s.region))


def recent_complaints(engine: Engine, since: date, until: date) -> list[dict[str, Any]]:
    start, end = _bounds(since, until)
    with engine.connect() as conn:
        rows = conn.execute(
            select(SCAM_COMPLAINTS)
            .where(SCAM_COMPLAINTS.c.at >= start, SCAM_COMPLAINTS.c.at < end)
            .order_by(SCAM_COMPLAINTS.c.id.desc())
            .limit(500)
        ).all()
    return [dict(r._mapping) for r in rows]


def queue_scam_warning(
    engine: Engine, region: str, *, actor: str, at: datetime | None = None
) -> tuple[int, int]:
    """A ``scam_warning`` notice to every merchant of ``region`` (once a day per
    merchant); (queued, already queued today). :class:`NotFoundError` for a region with
    no merchant."""
    at = at or now()
    ref = f"scam:{at.astimezone(UTC).date().isoformat()}:{region}"[:60]
    with writer(engine).begin() as conn:
        merchants = list(
            conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.region == region)).scalars()
        )
        if not merchants:
            raise NotFoundError(f"no merchant in region {region!r}")
        already = set(
            conn.execute(
                select(NOTICES.c.merchant_id).where(
                    NOTICES.c.kind == "scam_warning", NOTICES.c.ref == ref
                )
            ).scalars()
        )
        todo = [m for m in merchants if m not in already]
        payload = LoopNotice("scam_warning", region)
        queued = queue_many(conn, ((m, payload) for m in todo), ref=ref, at=at)
        audit.record(
            conn, actor=actor, action="contact", target=f"region:{region}",
            details={"scam_warning": queued, "already": len(already), "ref": ref}, at=at,
        )  # fmt: skip
    return queued, len(already)
