"""The webhook sender: events out of the outbox, to every subscription, once.

One round (:meth:`Sender.run_once`):

1. **fan out**: events not yet fanned out (at most :attr:`Sender.batch` × 10 of them)
   become one ``webhook_delivery`` row per active subscription to their kind, created
   before the event occurred or at the same time; ``(event, subscription)`` is unique,
   so two senders fanning out the same event add one row. The event ids are read first
   and only those are marked, so an event that commits meanwhile waits for the next
   round instead of being skipped.
2. **claim** up to :attr:`Sender.batch` due deliveries under a lease
   (:class:`fleet.core.leases.Leased`, as rollout jobs and notice messages are), including
   ``sending`` ones whose lease ran out (their sender died);
3. **send** each: a POST signed as :mod:`.signing` says, redirects not followed, the
   host's addresses checked again (:mod:`.urls`); a 2xx is delivered, anything else
   (or no answer within :attr:`Sender.timeout_s`) is retried after an exponential
   backoff, until :attr:`Sender.max_attempts` attempts have failed (then ``failed``).
   Each attempt is recorded (``webhook_attempt``) while the lease is still held.

**Once**, precisely: every (event, subscription) has exactly one delivery row, marked
``delivered`` at most once, after a 2xx. A sender killed between the receiver's 2xx and
its own record leaves the row ``sending``; when the lease runs out another sender posts
it again, with the same ``Posfleet-Delivery`` key. So a receiver sees each delivery at
least once, and exactly once if it drops a key it has already accepted (the key is in
the signed body too). Nothing is lost: a row leaves ``pending``/``sending`` only for
``delivered`` or ``failed``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fleet.core.db import writer
from fleet.core.errors import FleetError
from fleet.core.leases import Backoff, Leased, worker_identity
from fleet.core.models import EVENTS, now
from fleet.webhooks import signing
from fleet.webhooks.keybox import KeyBox
from fleet.webhooks.models import ATTEMPTS, DELIVERIES, SUBSCRIPTIONS, TOPICS
from fleet.webhooks.urls import check_url

__all__ = ["RoundResult", "Sender", "fan_out"]

log = logging.getLogger(__name__)

LEASED = Leased(DELIVERIES, running="sending")


def fan_out(conn: Connection, *, limit: int = 1000) -> int:
    """Copy pending events to their subscriptions' deliveries; the events handled."""
    pick = select(EVENTS.c.id).where(EVENTS.c.fanned_out.is_(False)).order_by(EVENTS.c.id)
    pick = pick.limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    source = (
        select(
            EVENTS.c.id,
            TOPICS.c.subscription_id,
            EVENTS.c.occurred_at,
        )
        .join(TOPICS, TOPICS.c.kind == EVENTS.c.kind)
        .join(SUBSCRIPTIONS, SUBSCRIPTIONS.c.id == TOPICS.c.subscription_id)
        .where(
            EVENTS.c.id.in_(ids),
            SUBSCRIPTIONS.c.active.is_(True),
            SUBSCRIPTIONS.c.created_at <= EVENTS.c.occurred_at,
        )
    )
    rows = [
        {
            "event_id": r[0],
            "subscription_id": r[1],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now(),
        }
        for r in conn.execute(source)
    ]
    if rows:
        conn.execute(dialect.insert(DELIVERIES).on_conflict_do_nothing(), rows)
    conn.execute(update(EVENTS).where(EVENTS.c.id.in_(ids)).values(fanned_out=True))
    return len(ids)


@dataclass
class RoundResult:
    fanned_out: int = 0
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0
    """Deliveries whose lease ran out before their outcome was recorded."""


@dataclass
class Sender:
    engine: Engine
    box: KeyBox
    owner: str = field(default_factory=worker_identity)
    batch: int = 20
    lease_s: float = 60.0
    timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_s: float = 10.0
    _client: httpx.Client | None = None

    def backoff(self, attempt: int) -> float:
        """``backoff_s × 2^(attempt-1)``, capped like every retry (:mod:`fleet.core.leases`)."""
        return Backoff(self.backoff_s).delay(attempt)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.timeout_s, follow_redirects=False, trust_env=False
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _claim(self) -> list[Any]:
        at = now()
        c = DELIVERIES.c
        ready = and_(c.status == "pending", c.next_attempt_at <= at)
        pick = (
            select(c.id)
            .where(LEASED.claimable(ready, at))
            .order_by(c.next_attempt_at, c.id)
            .limit(self.batch)
        )
        with writer(self.engine).begin() as conn:
            claimed = LEASED.claim(
                conn, pick, owner=self.owner, until=at + timedelta(seconds=self.lease_s),
                returning=(c.id, c.event_id, c.subscription_id, c.attempts),
            )  # fmt: skip
            if not claimed:
                return []
            events = {
                e.id: e
                for e in conn.execute(
                    select(EVENTS).where(EVENTS.c.id.in_({r.event_id for r in claimed}))
                )
            }
            subs = {
                s.id: s
                for s in conn.execute(
                    select(SUBSCRIPTIONS).where(
                        SUBSCRIPTIONS.c.id.in_({r.subscription_id for r in claimed})
                    )
                )
            }
        return [(r, events[r.event_id], subs[r.subscription_id]) for r in claimed]

    def _post(self, delivery: Any, event: Any, sub: Any) -> tuple[int | None, str | None]:
        key = f"whd_{delivery.id}"
        body = json.dumps(
            {
                "id": key,
                "event": event.kind,
                "event_id": event.id,
                "occurred_at": event.occurred_at.isoformat(),
                "data": event.payload,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        try:
            check_url(sub.url, allow_private=sub.allow_private)
            secret = self.box.open(sub.secret_box, sub.key_id)
        except FleetError as exc:
            return None, str(exc)[:500]
        headers = signing.headers(
            secret, kind=event.kind, delivery=key, timestamp=int(time.time()), body=body
        )
        try:
            response = self.client.post(sub.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            host = urlsplit(sub.url).hostname
            return None, f"{type(exc).__name__} to {host}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def _record(
        self, delivery: Any, sub: Any, started: datetime, code: int | None, error: str | None
    ) -> str:
        at = now()
        attempts = int(delivery.attempts)
        if error is None:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": at}
            outcome = "delivered"
        elif attempts >= self.max_attempts or not sub.active:
            values, outcome = {"status": "failed"}, "failed"
        else:
            retry_at = at + timedelta(seconds=self.backoff(attempts))
            values, outcome = {"status": "pending", "next_attempt_at": retry_at}, "retrying"
        with writer(self.engine).begin() as conn:
            held = LEASED.finish(
                conn, delivery.id, self.owner, last_status=code, last_error=error, **values
            )
            if not held:
                return "lost"
            conn.execute(
                insert(ATTEMPTS).values(
                    delivery_id=delivery.id,
                    subscription_id=sub.id,
                    at=started,
                    duration_ms=int((at - started).total_seconds() * 1000),
                    status_code=code,
                    error=error,
                    worker=self.owner[:80],
                )
            )
        return outcome

    def run_once(self) -> RoundResult:
        """Fan out, claim one batch, send it; what happened."""
        result = RoundResult()
        with writer(self.engine).begin() as conn:
            result.fanned_out = fan_out(conn, limit=self.batch * 10)
        claimed = self._claim()
        result.claimed = len(claimed)
        for delivery, event, sub in claimed:
            started = now()
            code, error = self._post(delivery, event, sub)
            outcome = self._record(delivery, sub, started, code, error)
            setattr(result, outcome, getattr(result, outcome) + 1)
        return result

    def run(self, stop: threading.Event | None = None, *, interval_s: float = 2.0) -> None:
        """Rounds until ``stop`` is set; idle rounds wait ``interval_s``."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                try:
                    result = self.run_once()
                except Exception:  # a database hiccup: log, wait, go on
                    log.exception("webhook round failed")
                    result = RoundResult()
                if not result.claimed and not result.fanned_out:
                    stop.wait(interval_s)
        finally:
            self.close()
