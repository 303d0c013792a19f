"""Webhook subscriptions: add, list, disable, and each one's recent attempts.

Adding one checks its URL (:mod:`.urls`), its event kinds (:data:`EVENT_KINDS`), and
seals its secret (:mod:`.keybox`); with no secret given, one is made and returned to be
shown once. Every change is audited.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.events import EVENT_KINDS
from fleet.core.models import now
from fleet.webhooks.keybox import KeyBox
from fleet.webhooks.models import ATTEMPTS, DELIVERIES, SUBSCRIPTIONS, TOPICS
from fleet.webhooks.urls import check_url

__all__ = [
    "Subscription",
    "add_subscription",
    "disable_subscription",
    "get_subscription",
    "list_subscriptions",
    "parse_kinds",
]

MIN_SECRET = 16


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    description: str
    kinds: list[str]
    active: bool
    allow_private: bool
    created_at: datetime
    created_by: str
    counts: dict[str, int] = field(default_factory=dict)
    """Deliveries by status."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """The last attempts, newest first (in :func:`get_subscription`)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "events": self.kinds,
            "active": self.active,
            "allow_private": self.allow_private,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "deliveries": self.counts,
            "attempts": self.attempts,
        }


def parse_kinds(text: str | Sequence[str]) -> list[str]:
    """``swap.done,rollout.*`` or ``*`` → the kinds, checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    kinds: set[str] = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "*":
            kinds |= EVENT_KINDS
        elif item.endswith(".*") and any(k.startswith(item[:-1]) for k in EVENT_KINDS):
            kinds |= {k for k in EVENT_KINDS if k.startswith(item[:-1])}
        elif item in EVENT_KINDS:
            kinds.add(item)
        else:
            raise InputError(
                f"unknown event {item!r} (one of {', '.join(sorted(EVENT_KINDS))}, or *)",
                where="events",
            )
    if not kinds:
        raise InputError("no event kinds given", where="events")
    return sorted(kinds)


def add_subscription(
    engine: Engine,
    url: str,
    kinds: str | Sequence[str],
    *,
    box: KeyBox,
    actor: str,
    secret: str | None = None,
    allow_private: bool = False,
    description: str = "",
) -> tuple[Subscription, str | None]:
    """A new subscription; the secret made for it when none was given (else ``None``)."""
    check_url(url, allow_private=allow_private)
    wanted = parse_kinds(kinds)
    made = None
    if secret is None:
        made = secret = "whsec_" + random.token_urlsafe(32)
    elif len(secret) < MIN_SECRET:
        raise InputError(f"a secret has at least {MIN_SECRET} characters", where="secret")
    with writer(engine).begin() as conn:
        sub_id = conn.execute(
            insert(SUBSCRIPTIONS)
            .values(
                url=url,
                description=description[:200],
                secret_box=box.seal(secret),
                key_id=box.key_id,
                allow_private=allow_private,
                active=True,
                created_at=now(),
                created_by=actor,
            )
            .returning(SUBSCRIPTIONS.c.id)
        ).scalar_one()
        conn.execute(insert(TOPICS), [{"subscription_id": sub_id, "kind": k} for k in wanted])
        audit.record(
            conn,
            actor=actor,
            action="add",
            target=f"webhook:{sub_id}",
            details={"url": url, "events": wanted, "allow_private": allow_private},
        )
    return get_subscription(engine, sub_id, attempts=0), made


def disable_subscription(engine: Engine, sub_id: int, *, actor: str) -> Subscription:
    """No more deliveries to it (pending ones stay, unsent, and show as such)."""
    with writer(engine).begin() as conn:
        done = conn.execute(
            update(SUBSCRIPTIONS)
            .where(SUBSCRIPTIONS.c.id == sub_id)
            .values(active=False, disabled_at=now())
        ).rowcount
        if not done:
            raise NotFoundError("no such webhook", where=f"webhook {sub_id}")
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"webhook:{sub_id}",
            details={"active": [True, False]},
        )
    return get_subscription(engine, sub_id, attempts=0)


def _kinds(conn: Any, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {i: [] for i in ids}
    for row in conn.execute(
        select(TOPICS).where(TOPICS.c.subscription_id.in_(ids)).order_by(TOPICS.c.kind)
    ):
        found[row.subscription_id].append(row.kind)
    return found


def _counts(conn: Any, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in conn.execute(
        select(DELIVERIES.c.subscription_id, DELIVERIES.c.status, func.count())
        .where(DELIVERIES.c.subscription_id.in_(ids))
        .group_by(DELIVERIES.c.subscription_id, DELIVERIES.c.status)
    ):
        found[row[0]][row[1]] = int(row[2])
    return found


def _of(row: Any, kinds: list[str], counts: dict[str, int]) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        description=row.description,
        kinds=kinds,
        active=bool(row.active),
        allow_private=bool(row.allow_private),
        created_at=row.created_at,
        created_by=row.created_by,
        counts=counts,
    )


def list_subscriptions(engine: Engine) -> list[Subscription]:
    with engine.connect() as conn:
        rows = conn.execute(select(SUBSCRIPTIONS).order_by(SUBSCRIPTIONS.c.id)).all()
        ids = [r.id for r in rows]
        kinds, counts = _kinds(conn, ids), _counts(conn, ids)
    return [_of(r, kinds[r.id], counts[r.id]) for r in rows]


def get_subscription(engine: Engine, sub_id: int, *, attempts: int = 20) -> Subscription:
    """One subscription with its delivery counts and its last ``attempts`` attempts."""
    with engine.connect() as conn:
        row = conn.execute(select(SUBSCRIPTIONS).where(SUBSCRIPTIONS.c.id == sub_id)).first()
        if row is None:
            raise NotFoundError("no such webhook", where=f"webhook {sub_id}")
        last = (
            [
                {
                    "at": a.at.isoformat(),
                    "delivery": f"whd_{a.delivery_id}",
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                }
                for a in conn.execute(
                    select(ATTEMPTS)
                    .where(ATTEMPTS.c.subscription_id == sub_id)
                    .order_by(ATTEMPTS.c.id.desc())
                    .limit(attempts)
                )
            ]
            if attempts
            else []
        )
        sub = _of(row, _kinds(conn, [sub_id])[sub_id], _counts(conn, [sub_id])[sub_id])
    return replace(sub, attempts=last)
