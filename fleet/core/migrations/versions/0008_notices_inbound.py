"""notices inbound: delivery state on messages, providers, receipts, inbound replies,
call tasks, scam complaints, the merchant's reply on a planned swap

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("delivery_error", sa.String(length=200), nullable=True))
    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merchant_reply", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("replied_at", sa.DateTime(), nullable=True))
    op.create_table(
        "sms_provider",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_box", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "delivery_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "provider_id", "status", name="uq_receipt"),
    )
    with op.batch_alter_table("delivery_receipt", schema=None) as batch_op:
        batch_op.create_index("ix_receipt_message", ["message_id"], unique=False)
    op.create_table(
        "inbound_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_id", sa.String(length=80), nullable=False),
        sa.Column("from_number", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "provider_id", name="uq_inbound"),
    )
    with op.batch_alter_table("inbound_reply", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_merchant", ["merchant_id", "received_at"], unique=False)
    op.create_table(
        "call_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=60), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_task", schema=None) as batch_op:
        batch_op.create_index("ix_call_task_status", ["status", "created_at"], unique=False)
    op.create_table(
        "scam_complaint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=True),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scam_complaint", schema=None) as batch_op:
        batch_op.create_index("ix_scam_complaint_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("scam_complaint")
    op.drop_table("call_task")
    op.drop_table("inbound_reply")
    op.drop_table("delivery_receipt")
    op.drop_table("sms_provider")
    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.drop_column("replied_at")
        batch_op.drop_column("merchant_reply")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("delivery_error")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("delivery")
