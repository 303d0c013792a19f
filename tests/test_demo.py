"""`make demo` end to end: the seeded fleet, possim terminals on ptys, sync, replacements,
fee tables published and pushed, two swaps provisioned over ptys, notices in the outbox,
the HTML reports — and no process left behind."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from fleet.core.models import MESSAGES, NOTICES, ROLLOUTS, SWAPS, TERMINALS

pytestmark = pytest.mark.slow  # handed out first under xdist (tests/conftest.py)

ROOT = Path(__file__).resolve().parent.parent
STEPS = (
    "1. a seeded fleet in SQLite",
    "2. 8 emulated terminals on ptys",
    "3. sync",
    "4. what must be replaced",
    "5. fee tables: check and publish",
    "6. push the tables to the terminals",
    "7. swap 2 flagged terminals",
    "8. notices to the merchants",
    "9. ops reports",
    "10. the web console",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {
        "COLUMNS": "160",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=280, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out, done.stdout


def _count_by(out: Path, column: Any, *where: Any) -> dict[str, int]:
    """Rows of the demo's database per value of ``column`` (where ``where`` holds)."""
    engine = create_engine(f"sqlite:///{out / 'fleet.db'}")
    with engine.connect() as conn:
        rows = conn.execute(select(column, func.count()).where(*where).group_by(column)).all()
    engine.dispose()
    return {str(value): int(n) for value, n in rows}


@pytest.mark.timeout(300)
def test_every_step_runs_and_no_process_is_left(demo: tuple[Path, str]) -> None:
    out, text = demo
    positions = [text.find(step) for step in STEPS]
    assert -1 not in positions, [s for s, p in zip(STEPS, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "demo failed" not in text
    assert re.search(r"11 possim processes stopped, none left running", text)
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes left running: {left.stdout}"
    # the commands are shown as they run
    for command in ("$ posfleet sync --all", "$ posfleet rollout run 1", "$ posfleet push"):
        assert command in text


@pytest.mark.timeout(300)
def test_the_fleet_database_holds_what_the_demo_did(demo: tuple[Path, str]) -> None:
    out, text = demo
    engine = create_engine(f"sqlite:///{out / 'fleet.db'}")
    with engine.connect() as conn:
        linked = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.last_seen).where(
                TERMINALS.c.last_seen.is_not(None), TERMINALS.c.status == "deployed"
            )
        ).all()
        stale = conn.execute(
            select(TERMINALS.c.serial).where(TERMINALS.c.link.like("/dev/pts/%"))
        ).all()
        swaps = conn.execute(
            select(SWAPS.c.old_serial, SWAPS.c.new_serial, SWAPS.c.status, SWAPS.c.provision)
        ).all()
        olds = {s.old_serial for s in swaps}
        old_status = (
            conn.execute(select(TERMINALS.c.status).where(TERMINALS.c.serial.in_(olds)))
            .scalars()
            .all()
        )
        rollout = conn.execute(select(ROLLOUTS.c.status)).scalar_one()
    engine.dispose()
    by_status = _count_by(out, MESSAGES.c.status)
    kinds = _count_by(out, NOTICES.c.kind, NOTICES.c.status == "sent")
    # every served terminal still deployed, and both replacements, signed on (synced)
    assert len(linked) >= 8
    assert stale == []  # the demo stopped its terminals: their pty links are cleared
    assert {s.new_serial for s in swaps} <= {t.serial for t in linked}
    assert len(swaps) == 2 and all(s.status == "done" for s in swaps)
    assert all((s.provision or "").startswith("ok: synced; table") for s in swaps), swaps
    assert set(old_status) == {"swapped_out"}
    assert rollout == "done"
    assert set(by_status) == {"sent"} and by_status["sent"] > 100
    assert kinds["swap_done"] == 2 and kinds["fee_change"] > 100
    assert "GENUINE" in text  # the verify step found the code


@pytest.mark.timeout(300)
def test_outbox_and_reports(demo: tuple[Path, str]) -> None:
    out, _ = demo
    sms = list((out / "outbox" / "sms").rglob("*.txt"))
    emails = list((out / "outbox" / "email").rglob("*.eml"))
    sent = _count_by(out, MESSAGES.c.channel, MESSAGES.c.status == "sent")
    assert len(sms) == sent["sms"] and len(emails) == sent["email"]  # one file per message
    reports = {p.stem: p for p in (out / "reports").glob("*.html")}
    assert set(reports) == {"fleet", "replacements", "rollout", "notices"}
    with (out / "data" / "merchants.csv").open(encoding="utf-8") as fh:
        phones = [row["phone"] for row in csv.DictReader(fh) if row["phone"]]
    for name, path in reports.items():
        page = path.read_text(encoding="utf-8")
        assert page.count("<svg") >= 1, name
        assert "<script" not in page and " src=" not in page and "<link" not in page, name
        leaked = [p for p in phones if p in page or p[1:] in page]
        assert not leaked, f"{name}: whole phone numbers {leaked[:3]}"
    with (out / "reports" / "replacements.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"serial", "priority", "reasons", "cost_minor", "currency"} <= set(rows[0])
    assert all(r["priority"] in ("P1", "P2", "P3") for r in rows)
    assert re.fullmatch(r"[0-9a-fA-F]{32}", (out / "fleet.key").read_text().strip())


@pytest.mark.timeout(300)
def test_the_demo_ends_with_a_console_to_open(demo: tuple[Path, str]) -> None:
    from fleet.access import sign_in  # noqa: PLC0415
    from fleet.core import db  # noqa: PLC0415

    out, text = demo
    tail = text[text.index("open this fleet in the web console") :]
    assert f"--db {out / 'fleet.db'}" in tail and " serve --port 8000" in tail
    found = re.search(r"sign in as admin with the one-time password (\S+)", tail)
    assert found, tail
    engine = db.connect(str(out / "fleet.db"))
    user = sign_in(engine, "admin", found.group(1), address="127.0.0.1")
    engine.dispose()
    assert user.role.value == "admin" and user.must_change
