"""Issue 13, "Daily use": tables readable at 80 columns (one rule: fleet.cli.common.
fit_columns), the everyday commands that were missing, ``sync --all`` with progress and
many terminals at once."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from fleet.core.models import TERMINALS
from fleet.core.policy import Policy
from fleet.swaps import swap
from tests.fleet.test_wrong_results import CNY_FOR_ALL, _china_pair

runner = CliRunner()
_BOX = re.compile("[\u2500-\u257f]")


def _app():  # type: ignore[no-untyped-def]
    from fleet.cli import app  # noqa: PLC0415

    return app


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[\s,;]+", text) if w}


# -- tables at 80 columns: no word split --------------------------------------------------

LISTS = (
    ["terminals", "list"],
    ["swap", "list"],
    ["fees", "list"],
    ["notices", "list"],
)


@pytest.mark.parametrize("args", LISTS, ids=" ".join)
def test_tables_at_80_columns_split_no_word(
    loaded: Engine, db_url: str, tmp_path: Path, args: list[str]
) -> None:
    old, new = _china_pair(loaded)
    swap(loaded, old, new, reason="the card reader failed its self-test", actor="t",
         policy=Policy())  # fmt: skip
    table = tmp_path / "cny.toml"
    table.write_text(CNY_FOR_ALL, encoding="utf-8")
    base = ["--db", db_url]
    assert runner.invoke(_app(), [*base, "fees", "publish", str(table)]).exit_code == 0
    argv = [*base, *args, *(["--limit", "30"] if args[0] in ("terminals", "notices") else [])]
    shown = runner.invoke(_app(), argv, env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) > 4 and max(len(line) for line in lines) <= 80, shown.stdout
    wide = runner.invoke(_app(), argv, env={"COLUMNS": "400"})  # nothing to fold at 400
    whole = _words(_BOX.sub(" ", wide.stdout))
    split = _words(_BOX.sub(" ", shown.stdout)) - whole
    assert not split, f"words split at 80 columns: {sorted(split)[:10]}\n{shown.stdout}"
    if args[0] == "terminals":  # what was left out is said, on stderr
        assert "columns left out to fit 80 columns" in shown.stderr


# -- the everyday commands that were missing ------------------------------------------------


def test_missing_everyday_commands_rollout_list(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    table = tmp_path / "cny.toml"
    table.write_text(CNY_FOR_ALL, encoding="utf-8")
    base = ["--db", db_url]
    assert runner.invoke(_app(), [*base, "fees", "publish", str(table)]).exit_code == 0
    from fleet.core.models import MERCHANTS  # noqa: PLC0415
    from fleet.inventory import set_links  # noqa: PLC0415

    with loaded.connect() as conn:
        linked = (
            conn.execute(
                select(TERMINALS.c.serial)
                .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
                .where(TERMINALS.c.status == "deployed", MERCHANTS.c.country == "CN")
            )
            .scalars()
            .all()
        )
    set_links(loaded, dict.fromkeys(linked, "socket://127.0.0.1:9"), actor="test")
    made = runner.invoke(_app(), [*base, "rollout", "create", "--table", "1"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(_app(), [*base, "rollout", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [doc] = json.loads(listed.stdout)
    assert (doc["id"], doc["what"], doc["status"], doc["wave"]) == (1, "table v1", "running", "1/3")
    assert doc["terminals"] > 0 and doc["done"] == 0
    table_out = runner.invoke(_app(), [*base, "rollout", "list"], env={"COLUMNS": "80"})
    assert table_out.exit_code == 0 and "table v1" in table_out.stdout


def test_missing_everyday_commands_swap_cancel_and_reschedule(loaded: Engine, db_url: str) -> None:
    from fleet.core.models import AUDIT, NOTICES, SWAPS  # noqa: PLC0415

    old, _ = _china_pair(loaded)
    base = ["--db", db_url]
    day = (date.today() + timedelta(days=10)).isoformat()
    later = (date.today() + timedelta(days=20)).isoformat()
    planned = runner.invoke(_app(), [*base, "swap", "plan", old, "--on", day, "--reason", "worn"])
    assert planned.exit_code == 0, planned.output
    moved = runner.invoke(_app(), [*base, "swap", "reschedule", "1", "--date", later])
    assert moved.exit_code == 0, moved.output
    too_soon = runner.invoke(
        _app(), [*base, "swap", "reschedule", "1", "--date", date.today().isoformat()]
    )
    assert too_soon.exit_code == 1 and "too soon" in too_soon.stderr
    with loaded.connect() as conn:
        assert conn.execute(select(SWAPS.c.planned_for)).scalar_one().isoformat() == later
        notices = conn.execute(
            select(NOTICES.c.ref, NOTICES.c.status, NOTICES.c.payload).order_by(NOTICES.c.id)
        ).all()
    assert [(n.ref, n.status) for n in notices] == [
        ("swap:1", "cancelled"), (f"swap:1@{later}", "queued")
    ]  # fmt: skip
    assert notices[1].payload["date"] == later
    assert runner.invoke(_app(), [*base, "swap", "cancel", "1"]).exit_code == 2  # a reason
    cancelled = runner.invoke(_app(), [*base, "swap", "cancel", "1", "--reason", "shop closed"])
    assert cancelled.exit_code == 0 and "1 unsent notices cancelled" in cancelled.stdout
    again = runner.invoke(_app(), [*base, "swap", "cancel", "1", "--reason", "twice"])
    assert again.exit_code == 1 and "is cancelled, not planned" in again.stderr
    assert runner.invoke(_app(), [*base, "swap", "cancel", "99", "--reason", "x"]).exit_code == 2
    with loaded.connect() as conn:
        assert conn.execute(select(SWAPS.c.status)).scalar_one() == "cancelled"
        assert {n for (n,) in conn.execute(select(NOTICES.c.status))} == {"cancelled"}
        actions = conn.execute(
            select(AUDIT.c.action, AUDIT.c.reason).where(AUDIT.c.action.like("swap_%"))
        ).all()
    assert ("swap_cancel", "shop closed") in actions and ("swap_reschedule", "") in actions


def test_missing_everyday_commands_swap_reprovision(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    from fleet.core.models import SWAPS  # noqa: PLC0415
    from protocols.mac import generate_master_key_file  # noqa: PLC0415
    from tests.fleet.device.test_sync import merchant_mcc, possim  # noqa: PLC0415

    old, new = _china_pair(loaded)
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    base = ["--db", db_url]
    dead = ["--port", "socket://127.0.0.1:9", "--key-file", str(key)]
    done = runner.invoke(_app(), [*base, "swap", old, new, "--reason", "worn", *dead])
    assert done.exit_code == 1 and "provisioning failed" in done.output
    with loaded.connect() as conn:
        assert conn.execute(select(SWAPS.c.provision)).scalar_one().startswith("failed")
        row = dict(conn.execute(select(TERMINALS).where(TERMINALS.c.serial == new)).one()._mapping)
    terminal = {"serial": new, "tid": row["tid"], "mid": row["mid"], "model": row["model"],
                "firmware": row["firmware"], "mcc": merchant_mcc(loaded, row)}  # fmt: skip
    with possim(key, tmp_path / "sim", **terminal) as url:  # type: ignore[arg-type]
        again = runner.invoke(
            _app(), [*base, "swap", "reprovision", "1", "--port", url, "--key-file", str(key)]
        )
        assert again.exit_code == 0, again.output
        assert "provisioned: ok: synced" in again.stdout
        twice = runner.invoke(
            _app(), [*base, "swap", "reprovision", "1", "--port", url, "--key-file", str(key)]
        )
        assert twice.exit_code == 1 and "provisioned already" in twice.stderr
    with loaded.connect() as conn:
        assert conn.execute(select(SWAPS.c.provision)).scalar_one().startswith("ok: synced")


def test_missing_everyday_commands_terminals_not_seen_days(loaded: Engine, db_url: str) -> None:
    from fleet.core.models import now  # noqa: PLC0415

    with loaded.begin() as conn:
        serials = (
            conn.execute(select(TERMINALS.c.serial).order_by(TERMINALS.c.serial).limit(3))
            .scalars()
            .all()
        )
        for serial, days in zip(serials, (1, 10, 40), strict=True):
            conn.execute(
                update(TERMINALS)
                .where(TERMINALS.c.serial == serial)
                .values(last_seen=now() - timedelta(days=days))
            )
        total = conn.execute(select(func.count()).select_from(TERMINALS)).scalar_one()
    args = ["--db", db_url, "terminals", "list", "--format", "json", "--not-seen-days"]
    res = runner.invoke(_app(), [*args, "7"])
    assert res.exit_code == 0, res.output
    listed = {t["serial"] for t in json.loads(res.stdout)}
    assert serials[0] not in listed and {serials[1], serials[2]} <= listed
    assert len(listed) == total - 1  # never seen counts as not heard from
    month = {t["serial"] for t in json.loads(runner.invoke(_app(), [*args, "30"]).stdout)}
    assert serials[1] not in month and serials[2] in month
    assert runner.invoke(_app(), [*args, "0"]).exit_code == 2


def test_missing_everyday_commands_merchants_update(loaded: Engine, db_url: str) -> None:
    from fleet.core.models import AUDIT, MERCHANTS  # noqa: PLC0415

    with loaded.connect() as conn:
        merchant = conn.execute(
            select(MERCHANTS).where(MERCHANTS.c.country == "IE").order_by(MERCHANTS.c.id)
        ).first()
    assert merchant is not None
    base = ["--db", db_url, "merchants", "update", merchant.id]
    res = runner.invoke(
        _app(), [*base, "--phone", "01 555 0123", "--email", "shop@example.ie", "--language",
                 "en", "--reason", "called in"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    bad = runner.invoke(_app(), [*base, "--phone", "12", "--email", "not-an-email"])
    assert bad.exit_code == 2 and "phone" in bad.stderr and "email" in bad.stderr
    nobody = runner.invoke(_app(), [*base, "--phone", "", "--email", ""])
    assert nobody.exit_code == 2 and "needs a phone or an email" in nobody.stderr
    assert runner.invoke(_app(), [*base]).exit_code == 2
    assert runner.invoke(_app(), ["--db", db_url, "merchants", "update", "NOPE", "--email",
                                  "a@b.ie"]).exit_code == 2  # fmt: skip
    with loaded.connect() as conn:
        after = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant.id)).one()
        entry = conn.execute(
            select(AUDIT.c.details, AUDIT.c.reason).where(
                AUDIT.c.target == f"merchant:{merchant.id}", AUDIT.c.action == "update"
            )
        ).one()
    assert (after.phone, after.email) == ("+35315550123", "shop@example.ie")
    assert entry.reason == "called in" and entry.details["phone"][1] == "+35315550123"


# -- sync --all: a progress bar, many terminals at once ---------------------------------------


class _SilentHost:
    """A real TCP server whose connections are accepted and never answered (terminals that
    are unreachable in the slow way: every T1 resend waits); counts peak open connections."""

    def __init__(self) -> None:
        import socket  # noqa: PLC0415
        import threading  # noqa: PLC0415

        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.open: list[socket.socket] = []
        self.peak = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                self._reap()
                continue
            with self.lock:
                self.open.append(conn)
                self._reap()
                self.peak = max(self.peak, len(self.open))

    def _reap(self) -> None:
        import select as sel  # noqa: PLC0415

        for conn in list(self.open):
            readable, _, _ = sel.select([conn], [], [], 0)
            if readable and not conn.recv(4096, 0x40):  # MSG_DONTWAIT: closed by the host
                conn.close()
                self.open.remove(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.open:
            conn.close()
        self.server.close()


def test_sync_all_has_progress_and_many_terminals_at_once(loaded: Engine, db_url: str) -> None:
    from fleet.inventory import set_links  # noqa: PLC0415

    host = _SilentHost()
    try:
        with loaded.connect() as conn:
            serials = (
                conn.execute(
                    select(TERMINALS.c.serial)
                    .where(TERMINALS.c.status == "deployed")
                    .order_by(TERMINALS.c.serial)
                    .limit(8)
                )
                .scalars()
                .all()
            )
        set_links(loaded, dict.fromkeys(serials, f"socket://127.0.0.1:{host.port}"), actor="t")
        res = runner.invoke(_app(), ["--db", db_url, "sync", "--all", "--jobs", "8"])
    finally:
        host.close()
    assert res.exit_code == 1  # none answered
    assert "8/8" in res.stderr and "8 failed" in res.stderr, res.stderr  # the progress bar
    assert res.stderr.count("error: ") == 8
    assert host.peak >= 4, host.peak  # signed on to side by side, not one after another
