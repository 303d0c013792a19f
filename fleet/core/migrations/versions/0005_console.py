"""console: users, sessions, tokens, throttles, events, webhooks, verifications, cache,
terminals flagged P1;
terminal indexes for keyset pages filtered by status or model

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:13:56.285907
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_hash"),
    )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("must_change", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_app_user_name"),
    )
    op.create_table(
        "cached_value",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=True),
        sa.Column("refreshing_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("fanned_out", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_kind_at", ["kind", "occurred_at"], unique=False)
        batch_op.create_index(
            "ix_event_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text("fanned_out = 0"),
            postgresql_where=sa.text("NOT fanned_out"),
        )

    op.create_table(
        "throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.create_index("ix_throttle_window", ["window_start"], unique=False)

    op.create_table(
        "verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("genuine", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("merchant_id", sa.String(length=15), nullable=True),
        sa.Column("region", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("verification", schema=None) as batch_op:
        batch_op.create_index("ix_verification_at", ["at"], unique=False)
        batch_op.create_index("ix_verification_genuine", ["genuine", "at"], unique=False)

    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("secret_box", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("allow_private", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name="fk_web_session_user"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_web_session_token"),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index("ix_web_session_user", ["user_id"], unique=False)

    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name="fk_delivery_event"),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["webhook_subscription.id"], name="fk_delivery_subscription"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "subscription_id", name="uq_delivery_event"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_claim", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_delivery_subscription", ["subscription_id", "id"], unique=False)

    op.create_table(
        "webhook_topic",
        sa.Column("subscription_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["webhook_subscription.id"], name="fk_topic_subscription"
        ),
        sa.PrimaryKeyConstraint("subscription_id", "kind"),
    )
    with op.batch_alter_table("webhook_topic", schema=None) as batch_op:
        batch_op.create_index("ix_topic_kind", ["kind"], unique=False)

    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("worker", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["webhook_delivery.id"], name="fk_attempt_delivery"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempt_delivery", ["delivery_id"], unique=False)
        batch_op.create_index(
            "ix_webhook_attempt_subscription", ["subscription_id", "id"], unique=False
        )

    op.create_table(
        "terminal_flag",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(), nullable=False),
        sa.Column("replace_by", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.create_index("ix_terminal_status_serial", ["status", "serial"], unique=False)
        batch_op.create_index("ix_terminal_model_serial", ["model", "serial"], unique=False)


def downgrade() -> None:
    op.drop_table("terminal_flag")
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.drop_index("ix_terminal_model_serial")
        batch_op.drop_index("ix_terminal_status_serial")

    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempt_subscription")
        batch_op.drop_index("ix_webhook_attempt_delivery")

    op.drop_table("webhook_attempt")
    with op.batch_alter_table("webhook_topic", schema=None) as batch_op:
        batch_op.drop_index("ix_topic_kind")

    op.drop_table("webhook_topic")
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_subscription")
        batch_op.drop_index("ix_delivery_claim")

    op.drop_table("webhook_delivery")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index("ix_web_session_user")

    op.drop_table("web_session")
    op.drop_table("webhook_subscription")
    with op.batch_alter_table("verification", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_genuine")
        batch_op.drop_index("ix_verification_at")

    op.drop_table("verification")
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.drop_index("ix_throttle_window")

    op.drop_table("throttle")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_event_pending",
            sqlite_where=sa.text("fanned_out = 0"),
            postgresql_where=sa.text("NOT fanned_out"),
        )
        batch_op.drop_index("ix_event_kind_at")

    op.drop_table("event")
    op.drop_table("cached_value")
    op.drop_table("app_user")
    op.drop_table("api_token")
