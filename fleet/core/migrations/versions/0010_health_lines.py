"""health lines: each wear counter's least-squares slope and intercept, kept beside its sums

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:45:00

* ``terminal_health``: ``<counter>_slope`` and ``<counter>_intercept`` for reader, printer
  and battery (none: no line, fewer than two distinct instants), what
  :meth:`fleet.replacements.wear.Fit.slope` and :meth:`~fleet.replacements.wear.Fit.intercept`
  give for the sums beside them. Flagging reads them instead of working the line out of
  five sums per counter and terminal. Existing rows are filled from their sums by the same
  arithmetic, in the same order (IEEE doubles on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("reader", "printer", "battery")


def upgrade() -> None:
    with op.batch_alter_table("terminal_health", schema=None) as batch_op:
        for c in _COUNTERS:
            batch_op.add_column(sa.Column(f"{c}_slope", sa.Float(), nullable=True))
            batch_op.add_column(sa.Column(f"{c}_intercept", sa.Float(), nullable=True))
    for c in _COUNTERS:
        n, sx, sxx, sy, sxy = (f"{c}_{s}" for s in ("n", "sx", "sxx", "sy", "sxy"))
        spread = f"({n} * {sxx} - {sx} * {sx})"
        scale = f"(CASE WHEN {n} * {sxx} > 1.0 THEN {n} * {sxx} ELSE 1.0 END)"
        op.execute(
            f"UPDATE terminal_health SET {c}_slope = CASE WHEN {n} >= 2 AND "
            f"{spread} > 1e-9 * {scale} THEN ({n} * {sxy} - {sx} * {sy}) / {spread} END"
        )
        op.execute(
            f"UPDATE terminal_health SET {c}_intercept = ({sy} - {c}_slope * {sx}) / {n} "
            f"WHERE {c}_slope IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("terminal_health", schema=None) as batch_op:
        for c in reversed(_COUNTERS):
            batch_op.drop_column(f"{c}_intercept")
            batch_op.drop_column(f"{c}_slope")
