"""The demo's outputs, byte for byte, against golden copies: a change of code that a user
should not see (a reshape, a refactoring) must leave them as they are.

The fixture (``tests/golden_demo/fixture``) is a whole run of the demo: its SQLite
database as SQL text (``fleet.sql.gz``, loaded and then upgraded to the newest schema
revision, so later migrations keep it valid), its policy file and the day it ran (the
``--as-of`` of every report). From it, on SQLite and again on PostgreSQL (the same rows
copied over), the test makes

- the four reports (fleet, replacements, rollout, notices) as CSV, JSON and HTML, through
  the command line as the demo does, and compares them with ``tests/golden_demo/*.csv``,
  ``*.json`` and ``*.html``;
- every notice text: each stored message's subject, body, SMS encoding, segments and cost,
  composed again from its notices' payloads exactly as the dispatcher's compose step does
  (the merchant's name, template language and time zone, the policy, the message's code),
  compared with ``tests/golden_demo/messages.json`` and with what the message stores.

The goldens were made with the code before the domain reshape (commit 9b3f542), so a pass
says before == after. After an intended change of output, regenerate them with
``POSFLEET_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_demo.py`` (from the
SQLite run; the PostgreSQL run then compares against them) and review the diff. A new
fixture: ``.venv/bin/python scripts/golden_demo_fixture.py``, then the same.
"""

from __future__ import annotations

import difflib
import gzip
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, insert, select, text
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core import db
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES, metadata
from fleet.core.policy import NoticePolicy, Policy
from fleet.core.values import parse_money
from fleet.notices.sms import cost
from fleet.notices.text import NoticeItem, render, template_language
from tests.fleet.conftest import pg_schema

GOLDEN = Path(__file__).with_name("golden_demo")
FIXTURE = GOLDEN / "fixture"
POLICY = FIXTURE / "posfleet.toml"
AS_OF = (FIXTURE / "as-of.txt").read_text(encoding="utf-8").strip()
REPORTS = ("fleet", "replacements", "rollout", "notices")
FORMATS = ("csv", "json", "html")
UPDATE = bool(os.environ.get("POSFLEET_UPDATE_GOLDEN"))


# -- the fixture -----------------------------------------------------------------------------


def _load_sqlite(path: Path) -> Engine:
    """The fixture's database as a SQLite file, upgraded to the newest revision."""
    raw = sqlite3.connect(path)
    try:
        raw.executescript(gzip.decompress((FIXTURE / "fleet.sql.gz").read_bytes()).decode())
    finally:
        raw.close()
    engine = db.connect(f"sqlite:///{path}")
    db.upgrade(engine)
    return engine


def _copy(source: Engine, target: Engine) -> None:
    """Every row of every table, parents first; then each id sequence past its last id."""
    with source.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            rows = [dict(r) for r in src.execute(select(table)).mappings()]
            if rows:
                dst.execute(insert(table), rows)
            if "id" in table.c and isinstance(table.c.id.type, Integer):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE(MAX(id), 0) + 1, false) FROM {table.name}"
                    )
                )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of a database holding the demo's fixture."""
    path = tmp_path_factory.mktemp("golden-demo") / "fleet.db"
    source = _load_sqlite(path)
    if request.param == "sqlite":
        source.dispose()
        yield f"sqlite:///{path}"
        return
    with pg_schema() as url:
        target = db.connect(url)
        db.upgrade(target)
        _copy(source, target)
        source.dispose()
        target.dispose()
        yield url


# -- comparing -----------------------------------------------------------------------------


def _golden(name: str, actual: bytes, backend: str) -> None:
    path = GOLDEN / name
    if UPDATE and backend == "sqlite":
        path.write_bytes(actual)
    assert path.exists(), f"{path} missing: run with POSFLEET_UPDATE_GOLDEN=1"
    expected = path.read_bytes()
    if actual != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8", "replace").splitlines(),
            actual.decode("utf-8", "replace").splitlines(),
            f"golden/{name}",
            f"now/{name}",
            lineterm="",
        )
        shown = "\n".join(line[:200] for line in list(diff)[:60])
        pytest.fail(f"{name} ({backend}) differs from its golden copy:\n{shown}")


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


# -- the reports ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", REPORTS)
def test_reports_are_byte_identical(demo_db: str, name: str, tmp_path: Path) -> None:
    for fmt in FORMATS:
        out = tmp_path / f"{name}.{fmt}"
        args = ["--db", demo_db, "--policy", str(POLICY), "report", name, "--as-of", AS_OF]
        res = CliRunner().invoke(app, [*args, "--format", fmt, "--out", str(out)])
        assert res.exit_code == 0, res.output
        _golden(out.name, out.read_bytes(), _backend(demo_db))


# -- the notice texts ----------------------------------------------------------------------

STORED = ("subject", "body", "sms_encoding", "segments", "cost", "cost_currency")
"""What compose writes into a message from the rendered text."""


def _composed(
    merchant: Any, message: Any, notices: list[Any], policy: NoticePolicy
) -> dict[str, Any]:
    """The message's text made again, as ``fleet.notices.outbox._message`` makes it."""
    rendered = render(
        [NoticeItem(n.kind, n.payload) for n in notices],
        channel=message.channel,
        language=template_language(merchant.language),
        zone=merchant.timezone,
        merchant=merchant.name,
        code=message.code,
        policy=policy,
    )
    price = parse_money(policy.sms_price, policy.sms_currency)
    sms = rendered.sms
    return {
        "code": message.code,
        "merchant_id": merchant.id,
        "channel": message.channel,
        "language": template_language(merchant.language),
        "notices": [n.id for n in notices],
        "kinds": [n.kind for n in notices],
        "subject": rendered.subject,
        "body": rendered.body,
        "sms_encoding": sms.encoding if sms else None,
        "segments": sms.segments if sms else None,
        "cost": cost(sms, price) if sms else None,
        "cost_currency": policy.sms_currency if sms else None,
    }


def test_notice_texts_are_byte_identical(demo_db: str) -> None:
    policy = Policy.load(POLICY).notices
    engine = db.connect(demo_db)
    try:
        with engine.connect() as conn:
            merchants = {m.id: m for m in conn.execute(select(MERCHANTS))}
            messages = conn.execute(select(MESSAGES).order_by(MESSAGES.c.id)).all()
            carried: dict[int, list[Any]] = {}
            for n in conn.execute(
                select(NOTICES).where(NOTICES.c.message_id.is_not(None)).order_by(NOTICES.c.id)
            ):
                carried.setdefault(n.message_id, []).append(n)
    finally:
        engine.dispose()
    assert len(messages) > 200 and {m.channel for m in messages} == {"sms", "email"}
    made = []
    for m in messages:
        again = _composed(merchants[m.merchant_id], m, carried[m.id], policy)
        stored = {k: getattr(m, k) for k in STORED} | {"language": m.language, "kinds": m.kinds}
        assert stored == {k: again[k] for k in stored}, f"message {m.code} is not its re-render"
        made.append(again)
    actual = json.dumps(made, indent=2, ensure_ascii=False) + "\n"
    _golden("messages.json", actual.encode("utf-8"), _backend(demo_db))
