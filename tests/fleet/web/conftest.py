"""The console's fixtures: one seeded database and one real ``posfleet serve`` per test
module and backend (SQLite, PostgreSQL), shared by the module's tests.

The database holds the 300-terminal sample fleet, a rollout with jobs in every state,
notices of every kind composed and (some) sent, a merchant and a swap reason with HTML
in them, and one user of each role whose password is :func:`password_of` its role.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from fleet.access import add_user, create_token
from fleet.core import db
from fleet.core.db import writer
from fleet.core.models import MERCHANTS, MESSAGES, ROLLOUTS, SWAPS, TERMINALS, now
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.sample.seed import write_sample
from fleet.webhooks import add_subscription, generate_key_file
from tests.fleet.conftest import pg_schema
from tests.fleet.web.server import ROLES, Served, password_of, serve

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
"""Put into a merchant's name and a swap's reason: every page must show it as text."""


def seed(engine: Engine, tmp: Path) -> dict[str, object]:
    from tests.fleet.reports.test_reports import seed_rollout  # noqa: PLC0415
    from tests.fleet.reports.test_reports_browser import seed_notices  # noqa: PLC0415

    db.upgrade(engine)
    sample = write_sample(tmp / "sample", terminals=300)
    import_catalog(engine, sample.catalog, actor="test")
    import_merchants(engine, sample.merchants, actor="test")
    import_terminals(engine, sample.terminals, actor="test")
    with engine.connect() as conn:
        live = conn.scalars(
            select(TERMINALS.c.serial)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.merchant_id.is_not(None))
            .order_by(TERMINALS.c.serial)
            .limit(20)
        ).all()
    rollout_id = seed_rollout(engine, live, tmp)
    seed_notices(engine)
    with engine.connect() as conn:
        code = conn.execute(
            select(MESSAGES.c.code).where(MESSAGES.c.status == "sent").limit(1)
        ).scalar_one()
        hostile_serial, merchant, phone = conn.execute(
            select(TERMINALS.c.serial, MERCHANTS.c.id, MERCHANTS.c.phone)
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(TERMINALS.c.serial.in_(live), MERCHANTS.c.phone.is_not(None))
            .order_by(TERMINALS.c.serial)
            .limit(1)
        ).one()
    with writer(engine).begin() as conn:
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant).values(name=HOSTILE))
        conn.execute(update(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id).values(note=HOSTILE))
        conn.execute(
            SWAPS.insert().values(
                old_serial=hostile_serial, merchant_id=merchant, tid="T0000001", mid="M1",
                status="planned", reason=HOSTILE, engineer=HOSTILE,
                created_at=now(),
                created_by="test",
            )
        )  # fmt: skip
    tokens = {}
    for role in ROLES:
        add_user(engine, role, role, actor="test", password=password_of(role))
        tokens[role] = create_token(engine, role, 1, actor="test", name=f"{role}-script")[1]
    return {
        "tokens": tokens,
        "rollout": rollout_id,
        "code": code,
        "serial": hostile_serial,
        "merchant": merchant,
        "phone": phone,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'fleet.db'}"
        yield from _served(url, tmp)
        return
    with pg_schema() as url:
        yield from _served(url, tmp)


def _served(url: str, tmp: Path) -> Iterator[Served]:
    key = tmp / "secrets.key"
    box = generate_key_file(key)
    engine = db.connect(url)
    try:
        facts = seed(engine, tmp)
        add_subscription(
            engine, "http://127.0.0.1:9/hook", "*", box=box, actor="test",
            allow_private=True, description=HOSTILE,
        )  # fmt: skip
    finally:
        engine.dispose()
    env = {"POSFLEET_SECRETS_KEY_FILE": str(key)}
    with serve(url, tmp, extra_env=env, args=("--forwarded-allow-ips", "127.0.0.1")) as served:
        served.facts = facts
        yield served
