"""The console's tables: migration 0004 creates exactly what the models declare (SQLite
and PostgreSQL), and downgrades cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import fleet.access.models
import fleet.core.cache
import fleet.core.events
import fleet.notices.verify_log
import fleet.replacements.flags
import fleet.webhooks.models  # noqa: F401 - the tables register on the metadata
from fleet.core import db
from fleet.core.models import metadata

CONSOLE_TABLES = {
    "app_user", "web_session", "api_token", "throttle", "event", "webhook_subscription",
    "webhook_topic", "webhook_delivery", "webhook_attempt", "verification", "cached_value",
    "terminal_flag",
}  # fmt: skip


def test_migration_matches_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []
    assert set(inspect(engine).get_table_names()) >= CONSOLE_TABLES


def test_downgrade_and_upgrade_again(engine: Engine) -> None:
    db.downgrade(engine, "0003")
    assert not CONSOLE_TABLES & set(inspect(engine).get_table_names())
    db.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= CONSOLE_TABLES
