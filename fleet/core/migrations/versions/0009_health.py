"""health: each terminal's health samples, its latest health with the sums of its wear
counters' least-squares lines, and each model's rated life

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 04:30:00

* ``health_sample``: every health report (sign-on or health poll), keyed by terminal and
  the instant the fleet received it.
* ``terminal_health``: one row per terminal that ever reported health: its latest sample,
  and per wear counter (reader, printer, battery) n, Σx, Σx², Σy, Σxy over its history.
* ``terminal_model``: ``reader_rated_cycles``, ``printer_rated_lines``,
  ``battery_rated_cycles`` (none: not rated).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("reader", "printer", "battery")


def upgrade() -> None:
    with op.batch_alter_table("terminal_model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reader_rated_cycles", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("printer_rated_lines", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("battery_rated_cycles", sa.Integer(), nullable=True))
    op.create_table(
        "health_sample",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("battery_level", sa.Integer(), nullable=True),
        sa.Column("battery_health", sa.Integer(), nullable=True),
        sa.Column("battery_cycles", sa.Integer(), nullable=True),
        sa.Column("paper", sa.Integer(), nullable=True),
        sa.Column("printer_lines", sa.Integer(), nullable=True),
        sa.Column("chip", sa.Integer(), nullable=False),
        sa.Column("contactless", sa.Integer(), nullable=False),
        sa.Column("magstripe", sa.Integer(), nullable=False),
        sa.Column("tamper", sa.Boolean(), nullable=False),
        sa.Column("tampered_at", sa.DateTime(), nullable=True),
        sa.Column("uptime", sa.Integer(), nullable=False),
        sa.Column("last_reboot", sa.Integer(), nullable=False),
        sa.Column("free_storage", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["serial"], ["terminal.serial"], name="fk_health_terminal"),
        sa.PrimaryKeyConstraint("serial", "at"),
    )
    sums = [
        sa.Column(f"{c}_{s}", sa.Float(), nullable=False)
        for c in _COUNTERS
        for s in ("sx", "sxx", "sy", "sxy")
    ]
    op.create_table(
        "terminal_health",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("tamper", sa.Boolean(), nullable=False),
        sa.Column("tampered_at", sa.DateTime(), nullable=True),
        sa.Column("battery_level", sa.Integer(), nullable=True),
        sa.Column("battery_health", sa.Integer(), nullable=True),
        sa.Column("battery_cycles", sa.Integer(), nullable=True),
        sa.Column("paper", sa.Integer(), nullable=True),
        sa.Column("printer_lines", sa.Integer(), nullable=True),
        sa.Column("reader", sa.Integer(), nullable=False),
        sa.Column("contactless", sa.Integer(), nullable=False),
        sa.Column("uptime", sa.Integer(), nullable=False),
        sa.Column("last_reboot", sa.Integer(), nullable=False),
        sa.Column("free_storage", sa.BigInteger(), nullable=False),
        *[sa.Column(f"{c}_n", sa.Integer(), nullable=False) for c in _COUNTERS],
        *sums,
        sa.ForeignKeyConstraint(["serial"], ["terminal.serial"], name="fk_thealth_terminal"),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("terminal_health", schema=None) as batch_op:
        batch_op.create_index("ix_terminal_health_tamper", ["tamper"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("terminal_health", schema=None) as batch_op:
        batch_op.drop_index("ix_terminal_health_tamper")
    op.drop_table("terminal_health")
    op.drop_table("health_sample")
    with op.batch_alter_table("terminal_model", schema=None) as batch_op:
        batch_op.drop_column("battery_rated_cycles")
        batch_op.drop_column("printer_rated_lines")
        batch_op.drop_column("reader_rated_cycles")
