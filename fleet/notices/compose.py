"""Compose: due notices become messages under the contact rules.

:func:`compose` picks the channel (:mod:`fleet.notices.contact`); quiet hours and the
rate limit defer (never drop); notices to one merchant that are due together become one
digest (an SMS takes what fits its segment limit, the rest wait). Each message gets a
random, unique verification code and, for an SMS, its cost in the policy's currency.
One transaction: a notice is in at most one message.

Every composed message, subject and body, is checked before it is stored with the rules
the templates are checked with (:mod:`fleet.notices.content`: no link, no request for a
secret): a notice whose message fails is not sent, it fails with the reason. A notice too
long for one SMS within the policy's segment limit (a long swap reason) goes by email when
the merchant has an address and has not opted out of email; otherwise it fails.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, or_, select, text, update

from fleet.core.db import writer
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES, now
from fleet.core.money import parse_minor
from fleet.core.policy import NoticePolicy
from fleet.notices.codes import new_code
from fleet.notices.contact import MANDATORY, choose_channel, in_quiet_hours, next_allowed
from fleet.notices.content import forbidden
from fleet.notices.payloads import NoticePayload
from fleet.notices.sms import cost
from fleet.notices.text import NoticeItem, render, template_language

__all__ = ["ComposeResult", "compose", "compose_some", "sms_overflow"]


@dataclass
class ComposeResult:
    messages: int = 0
    notices: int = 0
    deferred: int = 0
    cancelled: int = 0
    failed: int = 0
    segments: int = 0
    cost: int = 0
    """SMS cost of the composed messages, minor units of the policy's SMS currency."""

    def add(self, other: ComposeResult) -> None:
        for name in ("messages", "notices", "deferred", "cancelled", "failed", "segments"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost += other.cost


def compose(
    engine: Engine, policy: NoticePolicy, *, at: datetime | None = None, merchants: int = 2000
) -> ComposeResult:
    """Compose messages for every merchant with a notice due, ``merchants`` per
    transaction. Safe to run from several dispatchers at once."""
    total = ComposeResult()
    at = at or now()
    after = ""
    while True:
        result, after = compose_some(engine, policy, at=at, after=after, merchants=merchants)
        total.add(result)
        if not after:
            return total


def compose_some(
    engine: Engine,
    policy: NoticePolicy,
    *,
    after: str = "",
    at: datetime | None = None,
    merchants: int = 2000,
) -> tuple[ComposeResult, str]:
    """One transaction of :func:`compose`: the merchants with a notice due whose id is
    after ``after``, up to ``merchants`` of them. Returns what it composed and the
    ``after`` of the next call ("": this pass over the merchants is over). A dispatcher
    composes so, a part at a time, while it sends what it composed before."""
    return _compose_some(engine, policy, at or now(), after, merchants)


def _compose_some(
    engine: Engine, policy: NoticePolicy, at: datetime, after: str, limit: int
) -> tuple[ComposeResult, str]:
    result = ComposeResult()
    hold = timedelta(seconds=policy.digest_s)
    window = timedelta(seconds=policy.window_s)
    price = parse_minor(policy.sms_price, policy.sms_currency)
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # one composer at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(72610601)"))
        due = or_(NOTICES.c.not_before.is_(None), NOTICES.c.not_before <= at)
        ids = (
            conn.execute(
                select(NOTICES.c.merchant_id)
                .where(NOTICES.c.status == "queued", due, NOTICES.c.merchant_id > after)
                .group_by(NOTICES.c.merchant_id)
                .order_by(NOTICES.c.merchant_id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        if not ids:
            return result, ""
        notices = conn.execute(
            select(NOTICES)
            .where(NOTICES.c.status == "queued", due, NOTICES.c.merchant_id.in_(ids))
            .order_by(NOTICES.c.merchant_id, NOTICES.c.id)
        ).all()
        merchants = {
            r.id: r for r in conn.execute(select(MERCHANTS).where(MERCHANTS.c.id.in_(ids))).all()
        }
        sent: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for r in conn.execute(
            select(MESSAGES.c.merchant_id, MESSAGES.c.channel, MESSAGES.c.not_before).where(
                MESSAGES.c.merchant_id.in_(ids),
                MESSAGES.c.status != "failed",
                MESSAGES.c.not_before > at - window,
            )
        ):
            sent[(r.merchant_id, r.channel)].append(r.not_before)
        by_merchant: dict[str, list[Any]] = defaultdict(list)
        for n in notices:
            by_merchant[n.merchant_id].append(n)
        pending: list[tuple[dict[str, Any], list[int]]] = []
        for merchant_id, items in by_merchant.items():
            ready = any((n.not_before is not None) or (n.created_at + hold <= at) for n in items)
            if ready:
                _compose_merchant(
                    conn, policy, merchants[merchant_id], items, at, sent, price, result, pending
                )
        _store(conn, pending)
    return result, ids[-1] if len(ids) == limit else ""


def _compose_merchant(
    conn: Connection,
    policy: NoticePolicy,
    merchant: Any,
    items: list[Any],
    at: datetime,
    sent: dict[tuple[str, str], list[datetime]],
    price: int,
    result: ComposeResult,
    pending: list[tuple[dict[str, Any], list[int]]],
) -> None:
    groups: dict[str | None, list[Any]] = defaultdict(list)
    for n in items:
        forced = n.channel  # a follow-up call task, unless the merchant can't take calls
        if forced is not None and (forced in (merchant.opt_out or []) or not merchant.phone):
            forced = None
        channel = forced or choose_channel(
            [n.kind],
            preferred=merchant.channels or [],
            opted_out=merchant.opt_out or [],
            phone=merchant.phone,
            email=merchant.email,
        )
        groups[channel].append(n)
    for channel, group in groups.items():
        if channel is None:
            mandatory = [n.id for n in group if n.kind in MANDATORY]
            optional = [n.id for n in group if n.kind not in MANDATORY]
            if optional:
                _set_notices(conn, optional, status="cancelled", note="opted out of every channel")
                result.cancelled += len(optional)
            if mandatory:
                _set_notices(conn, mandatory, status="failed", note="no contact data")
                result.failed += len(mandatory)
            continue
        when = next_allowed(
            at,
            zone=merchant.timezone,
            quiet=policy.quiet,
            sent=sent[(merchant.id, channel)],
            limit=policy.max_per_window,
            window=timedelta(seconds=policy.window_s),
        )
        if when > at:
            why = (
                " and ".join(
                    what
                    for what, applies in (
                        ("quiet hours", in_quiet_hours(at, merchant.timezone, policy.quiet)),
                        (
                            f"at most {policy.max_per_window} {channel} messages per window",
                            len(sent[(merchant.id, channel)]) >= policy.max_per_window,
                        ),
                    )
                    if applies
                )
                or "contact rules"
            )
            conn.execute(
                update(NOTICES)
                .where(NOTICES.c.id.in_([n.id for n in group]))
                .values(not_before=when, note=f"deferred to {when.isoformat()}: {why}")
            )
            result.deferred += len(group)
            continue
        _message(conn, policy, merchant, channel, group, at, price, result, pending)
        sent[(merchant.id, channel)].append(at)


def _set_notices(conn: Connection, ids: list[int], **values: Any) -> None:
    conn.execute(update(NOTICES).where(NOTICES.c.id.in_(ids)).values(**values))


def _message(
    conn: Connection,
    policy: NoticePolicy,
    merchant: Any,
    channel: str,
    group: list[Any],
    at: datetime,
    price: int,
    result: ComposeResult,
    pending: list[tuple[dict[str, Any], list[int]]],
) -> None:
    """One message with as many of ``group`` as fit (an SMS stays within the segment
    limit; the rest wait for the next message). An SMS too long alone fails its notice."""
    address = merchant.email if channel == "email" else merchant.phone
    language = template_language(merchant.language)
    code = new_code()
    taken: list[Any] = []
    too_long: list[Any] = []
    rendered = None
    for n in group:
        attempt = render(
            [NoticeItem(x.kind, x.payload) for x in [*taken, n]],
            channel=channel,
            language=language,
            zone=merchant.timezone,
            merchant=merchant.name,
            code=code,
            policy=policy,
        )
        problem = forbidden(f"{attempt.subject}\n{attempt.body}")
        if problem is not None:  # what this notice added: the rest may still go
            note = f"the composed {channel} message contains {problem}: not sent"
            _set_notices(conn, [n.id], status="failed", note=note[:500])
            result.failed += 1
            continue
        if attempt.sms is not None and attempt.sms.segments > policy.sms_max_segments:
            if not taken:
                too_long.append((n, attempt.sms.segments))
                continue
            break  # the rest wait for the next message
        taken.append(n)
        rendered = attempt
    if too_long:
        _sms_too_long(conn, policy, merchant, too_long, at, price, result, pending)
    if rendered is None:
        return
    values = {
        "code": code,
        "merchant_id": merchant.id,
        "channel": channel,
        "address": address,
        "language": language,
        "kinds": [n.kind for n in taken],
        "subject": rendered.subject,
        "body": rendered.body,
        "sms_encoding": rendered.sms.encoding if rendered.sms else None,
        "segments": rendered.sms.segments if rendered.sms else None,
        "cost": cost(rendered.sms, price) if rendered.sms else None,
        "cost_currency": policy.sms_currency if rendered.sms else None,
        "status": "ready",
        "attempts": 0,
        "not_before": at,
        "created_at": at,
    }
    pending.append((values, [n.id for n in taken]))
    result.messages += 1
    result.notices += len(taken)
    if rendered.sms:
        result.segments += rendered.sms.segments
        result.cost += values["cost"]


def sms_overflow(policy: NoticePolicy, merchant: Any, payload: NoticePayload) -> int | None:
    """The segments of the SMS ``payload`` alone would make for ``merchant``, when it would
    go by SMS, is over the policy's limit, and the merchant has no email to take it instead
    (what an event refuses before queueing it); else None."""
    channel = choose_channel(
        [payload.kind],
        preferred=merchant.channels or [],
        opted_out=merchant.opt_out or [],
        phone=merchant.phone,
        email=merchant.email,
    )
    if channel != "sms" or (merchant.email and "email" not in (merchant.opt_out or [])):
        return None
    out = render(
        [NoticeItem(payload.kind, payload.to_json())],
        channel="sms",
        language=template_language(merchant.language),
        zone=merchant.timezone,
        merchant=merchant.name,
        code=new_code(),
        policy=policy,
    )
    assert out.sms is not None
    return out.sms.segments if out.sms.segments > policy.sms_max_segments else None


def _sms_too_long(
    conn: Connection,
    policy: NoticePolicy,
    merchant: Any,
    notices: list[tuple[Any, int]],
    at: datetime,
    price: int,
    result: ComposeResult,
    pending: list[tuple[dict[str, Any], list[int]]],
) -> None:
    """Notices too long alone for an SMS within the segment limit: by email when the
    merchant can take one, else failed (saying so)."""
    if merchant.email and "email" not in (merchant.opt_out or []):
        _message(conn, policy, merchant, "email", [n for n, _ in notices], at, price, result,
                 pending)  # fmt: skip
        return
    for n, segments in notices:
        _set_notices(
            conn,
            [n.id],
            status="failed",
            note=f"SMS of {segments} segments is over the policy's limit of "
            f"{policy.sms_max_segments}, and the merchant has no email to take it",
        )
        result.failed += 1


_NOTICE_COMPOSED = (
    update(NOTICES)
    .where(NOTICES.c.id == bindparam("notice"))
    .values(status="composed", message_id=bindparam("message"), note=None)
)


def _store(conn: Connection, pending: list[tuple[dict[str, Any], list[int]]]) -> None:
    """Insert the composed messages (their ids come back with the insert) and link their
    notices, in bulk. A code already taken (2^-50 per pair) is drawn again before the
    insert."""
    if not pending:
        return
    codes = [values["code"] for values, _ in pending]
    taken: set[str] = set()
    for start in range(0, len(codes), 500):
        chunk = codes[start : start + 500]
        taken.update(
            conn.execute(select(MESSAGES.c.code).where(MESSAGES.c.code.in_(chunk))).scalars()
        )
    seen: set[str] = set()
    for values, _ in pending:
        code = values["code"]
        while code in taken or code in seen:
            code = new_code()
        if code != values["code"]:
            for key in ("subject", "body"):
                values[key] = values[key].replace(values["code"], code)
            values["code"] = code
        seen.add(code)
    ids: dict[str, int] = {
        code: id_
        for id_, code in conn.execute(
            insert(MESSAGES).returning(MESSAGES.c.id, MESSAGES.c.code),
            [values for values, _ in pending],
        )
    }
    conn.execute(
        _NOTICE_COMPOSED,
        [
            {"notice": notice, "message": ids[values["code"]]}
            for values, notices in pending
            for notice in notices
        ],
    )
