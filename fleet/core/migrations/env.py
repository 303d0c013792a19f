"""Alembic environment: posfleet passes its engine in ``config.attributes["engine"]``.

Run through ``posfleet db upgrade`` (or :func:`fleet.core.db.upgrade`), never with an
``alembic.ini``: the database URL is the one the fleet tool resolves.

On SQLite, batch mode changes a table by recreating it (copy, drop, rename), which
foreign keys pointing at that table forbid while they are enforced; and SQLite only
switches enforcement outside a transaction. So the migrations run with enforcement off,
every foreign key is checked afterwards (``PRAGMA foreign_key_check``: a violation fails
the upgrade before it commits), and enforcement is switched back on.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from fleet.core.models import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `posfleet db upgrade`")


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # On the DBAPI connection (in autocommit: fleet.core.db), outside any transaction.
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            _sqlite_foreign_keys(connection, on=True)
