"""terminal index for keyset pages filtered by status and model

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:45:00

* ``ix_terminal_status_model_serial`` on ``terminal (status, model, serial)``: the
  console's and the API's page filtered by status and model
  (``/terminals?status=deployed&model=…``, keyset ``after`` on serial) reads exactly its
  page from it, in serial order, instead of walking ``ix_terminal_status_serial`` and
  dropping the rows of other models (about four in five of the deployed terminals on the
  bench fleet). Status alone and model alone keep ``ix_terminal_status_serial`` and
  ``ix_terminal_model_serial`` (0005).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_terminal_status_model_serial", ["status", "model", "serial"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.drop_index("ix_terminal_status_model_serial")
