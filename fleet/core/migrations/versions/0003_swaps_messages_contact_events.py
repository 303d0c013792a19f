"""swaps, messages, contact events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:41:58.224242
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contact_event", schema=None) as batch_op:
        batch_op.create_index("ix_contact_merchant", ["merchant_id", "at"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sms_encoding", sa.String(length=8), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Integer(), nullable=True),
        sa.Column("cost_currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("transport", sa.String(length=200), nullable=True),
        sa.Column("provider_ref", sa.String(length=200), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", name="uq_message_code"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_claim", ["status", "not_before"], unique=False)
        batch_op.create_index(
            "ix_message_merchant", ["merchant_id", "channel", "created_at"], unique=False
        )

    op.create_table(
        "swap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("old_serial", sa.String(length=40), nullable=False),
        sa.Column("new_serial", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("tid", sa.String(length=8), nullable=False),
        sa.Column("mid", sa.String(length=15), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("planned_for", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("engineer", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("follow_up_on", sa.Date(), nullable=True),
        sa.Column("provision", sa.String(length=500), nullable=True),
        sa.CheckConstraint("status IN ('planned', 'done', 'cancelled')", name="ck_swap_status"),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant.id"],
        ),
        sa.ForeignKeyConstraint(
            ["new_serial"],
            ["terminal.serial"],
        ),
        sa.ForeignKeyConstraint(
            ["old_serial"],
            ["terminal.serial"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.create_index("ix_swap_old", ["old_serial"], unique=False)
        batch_op.create_index("ix_swap_status", ["status", "planned_for"], unique=False)

    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("note", sa.String(length=500), nullable=True))
        batch_op.drop_index("ix_notice_status")
        batch_op.create_index("ix_notice_status", ["status", "not_before"], unique=False)
        batch_op.create_index("ix_notice_message", ["message_id"], unique=False)
        batch_op.create_foreign_key("fk_notice_message", "message", ["message_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_constraint("fk_notice_message", type_="foreignkey")
        batch_op.drop_index("ix_notice_message")
        batch_op.drop_index("ix_notice_status")
        batch_op.create_index("ix_notice_status", ["status"], unique=False)
        batch_op.drop_column("note")
        batch_op.drop_column("message_id")
        batch_op.drop_column("channel")
        batch_op.drop_column("not_before")

    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.drop_index("ix_swap_status")
        batch_op.drop_index("ix_swap_old")

    op.drop_table("swap")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_merchant")
        batch_op.drop_index("ix_message_claim")

    op.drop_table("message")
    with op.batch_alter_table("contact_event", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_merchant")

    op.drop_table("contact_event")
