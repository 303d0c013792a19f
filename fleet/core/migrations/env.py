"""Alembic environment: posfleet passes its engine in ``config.attributes["engine"]``.

Run through ``posfleet db upgrade`` (or :func:`fleet.core.db.upgrade`), never with an
``alembic.ini``: the database URL is the one the fleet tool resolves.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from fleet.core.models import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `posfleet db upgrade`")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
