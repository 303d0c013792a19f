"""fleet inventory: catalog, merchants, terminals, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-23 03:10:49.827562
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_target", ["target"], unique=False)

    op.create_table(
        "merchant",
        sa.Column("id", sa.String(length=15), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("mcc", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=40), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("opt_out", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "terminal_model",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("vendor", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("end_of_sale", sa.Date(), nullable=True),
        sa.Column("end_of_support", sa.Date(), nullable=True),
        sa.Column("pts_version", sa.String(length=20), nullable=False),
        sa.Column("pts_expires_on", sa.Date(), nullable=True),
        sa.Column("chip", sa.Boolean(), nullable=False),
        sa.Column("contactless", sa.Boolean(), nullable=False),
        sa.Column("magstripe", sa.Boolean(), nullable=False),
        sa.Column("qr", sa.Boolean(), nullable=False),
        sa.Column("pin_pad", sa.Boolean(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("successor", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "advisory",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("published_on", sa.Date(), nullable=True),
        sa.Column("fixed_in", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_advisory_model"),
        sa.PrimaryKeyConstraint("id", "model"),
    )
    op.create_table(
        "firmware",
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("end_of_support", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_firmware_model"),
        sa.PrimaryKeyConstraint("model", "version"),
    )
    op.create_table(
        "advisory_firmware",
        sa.Column("advisory", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["advisory", "model"],
            ["advisory.id", "advisory.model"],
            name="fk_advfw_advisory",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model", "version"], ["firmware.model", "firmware.version"], name="fk_advfw_fw"
        ),
        sa.PrimaryKeyConstraint("advisory", "model", "version"),
    )
    op.create_table(
        "terminal",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("firmware", sa.String(length=40), nullable=False),
        sa.Column("tid", sa.String(length=8), nullable=True),
        sa.Column("mid", sa.String(length=15), nullable=True),
        sa.Column("merchant_id", sa.String(length=15), nullable=True),
        sa.Column("manufactured_on", sa.Date(), nullable=True),
        sa.Column("deployed_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("fault_count", sa.Integer(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("link", sa.String(length=200), nullable=True),
        sa.Column("active_version", sa.Integer(), nullable=False),
        sa.Column("pending_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"], name="fk_terminal_merchant"),
        sa.ForeignKeyConstraint(
            ["model", "firmware"], ["firmware.model", "firmware.version"], name="fk_terminal_fw"
        ),
        sa.ForeignKeyConstraint(["model"], ["terminal_model.code"], name="fk_terminal_model"),
        sa.CheckConstraint(
            "status IN ('in_stock', 'deployed', 'faulty', 'swapped_out', 'retired')",
            name="ck_terminal_status",
        ),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.create_index("ix_terminal_merchant", ["merchant_id"], unique=False)
        batch_op.create_index("ix_terminal_model_fw", ["model", "firmware"], unique=False)
        batch_op.create_index("ix_terminal_status", ["status"], unique=False)
        batch_op.create_index(
            "uq_terminal_live_tid",
            ["tid"],
            unique=True,
            sqlite_where=sa.text("status IN ('deployed', 'faulty')"),
            postgresql_where=sa.text("status IN ('deployed', 'faulty')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_terminal_live_tid",
            sqlite_where=sa.text("status IN ('deployed', 'faulty')"),
            postgresql_where=sa.text("status IN ('deployed', 'faulty')"),
        )
        batch_op.drop_index("ix_terminal_status")
        batch_op.drop_index("ix_terminal_model_fw")
        batch_op.drop_index("ix_terminal_merchant")

    op.drop_table("terminal")
    op.drop_table("advisory_firmware")
    op.drop_table("firmware")
    op.drop_table("advisory")
    op.drop_table("terminal_model")
    op.drop_table("merchant")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_target")
        batch_op.drop_index("ix_audit_at")

    op.drop_table("audit")
