"""reasons and follow-ups: a swap's reason code and the outcome of its follow-up (回访)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 04:40:00

* ``swap.reason_code``: why, as the merchant reads it (the catalogue of
  ``fleet.notices.reasons``); ``swap.reason`` stays the operator's note, never sent.
* ``swap.follow_up_state`` / ``follow_up_attempts`` / ``followed_up_at``: the follow-up
  call, retried by the policy while the merchant is not reached.
* ``swap.satisfaction`` (1–5), ``follow_up_issue`` and ``issue_open``: what the merchant
  said.

Swaps done before get ``follow_up_state = 'due'`` (their follow-up is still to be made).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("follow_up_state", sa.String(length=12), nullable=True))
        batch_op.add_column(
            sa.Column("follow_up_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("followed_up_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("satisfaction", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("follow_up_issue", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("issue_open", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_swap_follow_up", ["follow_up_state", "follow_up_on"])
    op.execute("UPDATE swap SET follow_up_state = 'due' WHERE status = 'done'")


def downgrade() -> None:
    with op.batch_alter_table("swap", schema=None) as batch_op:
        batch_op.drop_index("ix_swap_follow_up")
        for column in (
            "issue_open", "follow_up_issue", "satisfaction", "followed_up_at",
            "follow_up_attempts", "follow_up_state", "reason_code",
        ):  # fmt: skip
            batch_op.drop_column(column)
