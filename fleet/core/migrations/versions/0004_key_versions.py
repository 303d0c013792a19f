"""key versions: issued master key versions, each terminal's key versions, key rollouts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00

* ``key_version``: the master key versions the fleet issued (check value, who, when).
* ``terminal.key_version`` / ``key_next``: what the terminal reported at its last sign-on.
* ``rollout.kind`` (``fees`` or ``key``); ``version`` (the fee table) becomes optional;
  ``key_version`` / ``key_from`` for key rollouts; a check ties the columns to the kind.
* ``push_attempt.kind``: a fee-table push or a key change.

Existing rows are fee-table rollouts and pushes (``kind`` defaults to ``fees``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHECK = (
    "(kind = 'fees' AND version IS NOT NULL AND key_version IS NULL) OR "
    "(kind = 'key' AND version IS NULL AND key_version IS NOT NULL AND key_from IS NOT NULL)"
)


def upgrade() -> None:
    op.create_table(
        "key_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("check_value", sa.String(length=6), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("registered_by", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("key_next", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="fees")
        )
        batch_op.add_column(sa.Column("key_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("key_from", sa.Integer(), nullable=True))
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key("fk_rollout_key", "key_version", ["key_version"], ["version"])
        batch_op.create_foreign_key("fk_rollout_key_from", "key_version", ["key_from"], ["version"])
        batch_op.create_check_constraint("ck_rollout_kind", KIND_CHECK)
    with op.batch_alter_table("push_attempt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="fees")
        )


def downgrade() -> None:
    op.execute("DELETE FROM push_attempt WHERE kind <> 'fees'")
    with op.batch_alter_table("push_attempt", schema=None) as batch_op:
        batch_op.drop_column("kind")
    op.execute(
        "DELETE FROM push_attempt WHERE job_id IN (SELECT j.id FROM rollout_job j "
        "JOIN rollout r ON r.id = j.rollout_id WHERE r.kind <> 'fees')"
    )
    op.execute(
        "DELETE FROM rollout_job WHERE rollout_id IN (SELECT id FROM rollout WHERE kind <> 'fees')"
    )
    op.execute("DELETE FROM rollout WHERE kind <> 'fees'")
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.drop_constraint("ck_rollout_kind", type_="check")
        batch_op.drop_constraint("fk_rollout_key_from", type_="foreignkey")
        batch_op.drop_constraint("fk_rollout_key", type_="foreignkey")
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("key_from")
        batch_op.drop_column("key_version")
        batch_op.drop_column("kind")
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.drop_column("key_next")
        batch_op.drop_column("key_version")
    op.drop_table("key_version")
