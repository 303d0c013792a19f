"""The webhook tables. Declarations only.

==========================  ==========================================================
table                       holds
==========================  ==========================================================
``webhook_subscription``    a receiver: URL, its secret (encrypted), active or not
``webhook_topic``           the event kinds a subscription wants (one row each)
``webhook_delivery``        one event for one subscription: its state, attempts, lease
``webhook_attempt``         every HTTP attempt of a delivery: status, error, duration
==========================  ==========================================================

A delivery is unique per ``(event_id, subscription_id)``: fanning an event out twice
adds nothing. It goes ``pending`` → (claimed under a lease) ``sending`` → ``delivered``,
back to ``pending`` after a failed attempt (with backoff), or ``failed`` once its
attempts are spent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKeyConstraint, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.core.models import UTCDateTime, table_of

__all__ = [
    "ATTEMPTS",
    "DELIVERIES",
    "SUBSCRIPTIONS",
    "TOPICS",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "WebhookTopic",
]


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=500)
    description: str = Field(default="", max_length=200)
    secret_box: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The signing secret, sealed with AES-256-GCM under the secrets key (never in clear)."""
    key_id: str = Field(max_length=16)
    """Which secrets key sealed it (its fingerprint): a rotated key is told apart."""
    allow_private: bool = False
    """Loopback and private addresses allowed (an admin said so when adding it)."""
    active: bool = True
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by: str = Field(max_length=80)
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class WebhookTopic(SQLModel, table=True):
    __tablename__ = "webhook_topic"
    __table_args__ = (
        ForeignKeyConstraint(
            ["subscription_id"], ["webhook_subscription.id"], name="fk_topic_subscription"
        ),
        Index("ix_topic_kind", "kind"),
    )

    subscription_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(primary_key=True, max_length=40)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id", name="uq_delivery_event"),
        ForeignKeyConstraint(["event_id"], ["event.id"], name="fk_delivery_event"),
        ForeignKeyConstraint(
            ["subscription_id"], ["webhook_subscription.id"], name="fk_delivery_subscription"
        ),
        Index("ix_delivery_claim", "status", "next_attempt_at"),
        Index("ix_delivery_subscription", "subscription_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int
    subscription_id: int
    status: str = Field(default="pending", max_length=12)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"
    __table_args__ = (
        ForeignKeyConstraint(["delivery_id"], ["webhook_delivery.id"], name="fk_attempt_delivery"),
        Index("ix_webhook_attempt_subscription", "subscription_id", "id"),
        Index("ix_webhook_attempt_delivery", "delivery_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int
    subscription_id: int
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    worker: str = Field(default="", max_length=80)


SUBSCRIPTIONS = table_of(WebhookSubscription)
TOPICS = table_of(WebhookTopic)
DELIVERIES = table_of(WebhookDelivery)
ATTEMPTS = table_of(WebhookAttempt)
