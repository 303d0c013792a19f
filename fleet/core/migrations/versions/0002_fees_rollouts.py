"""fee tables, notices outbox, rollouts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:26:32.484526
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fee_table",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.Integer(), nullable=False),
        sa.Column("effective", sa.DateTime(), nullable=False),
        sa.Column("group", sa.JSON(), nullable=False),
        sa.Column("wire", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=80), nullable=False),
        sa.Column("raises", sa.Boolean(), nullable=False),
        sa.Column("notice_override", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("merchant_id", sa.String(length=15), nullable=False),
        sa.Column("ref", sa.String(length=60), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "merchant_id", "ref", name="uq_notice_event"),
    )
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.create_index("ix_notice_status", ["status"], unique=False)

    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("group", sa.JSON(), nullable=False),
        sa.Column("waves", sa.JSON(), nullable=False),
        sa.Column("max_failure_ppm", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["fee_table.version"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "rollout_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
        ),
        sa.ForeignKeyConstraint(
            ["serial"],
            ["terminal.serial"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rollout_id", "serial", name="uq_job_terminal"),
    )
    with op.batch_alter_table("rollout_job", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_claim", ["rollout_id", "status", "wave", "next_attempt_at"], unique=False
        )

    op.create_table(
        "push_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=80), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("resumed_from", sa.Integer(), nullable=False),
        sa.Column("blocks_sent", sa.Integer(), nullable=False),
        sa.Column("test_fee", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["rollout_job.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("push_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_attempt_job", ["job_id"], unique=False)
        batch_op.create_index("ix_attempt_serial", ["serial"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("push_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_attempt_serial")
        batch_op.drop_index("ix_attempt_job")

    op.drop_table("push_attempt")
    with op.batch_alter_table("rollout_job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_claim")

    op.drop_table("rollout_job")
    op.drop_table("rollout")
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_index("ix_notice_status")

    op.drop_table("notice")
    op.drop_table("fee_table")
