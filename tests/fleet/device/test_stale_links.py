"""Issue 13, "Robustness": a stale pty link. The demo's inventory kept ``/dev/pts/N`` links
after its terminals stopped, and a pty path is reused by the next process that opens one:
a push or sync must identify the peer (the sign-on's serial) before sending anything that
changes state, and refuse another terminal. Two real ``possim serve`` on ptys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import ATTEMPTS, MERCHANTS, TERMINALS
from protocols.mac import generate_master_key_file
from tests.fleet.device.test_sync import POSSIM, merchant_mcc, possim
from tests.fleet.test_wrong_results import CNY_FOR_ALL

runner = CliRunner()


def _row(engine: Engine, serial: str) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).one()._mapping
        )


def _terminal(engine: Engine, serial: str) -> dict[str, object]:
    row = _row(engine, serial)
    return {"serial": serial, "tid": row["tid"], "mid": row["mid"], "model": row["model"],
            "firmware": row["firmware"], "mcc": merchant_mcc(engine, row)}  # fmt: skip


def _tables(state_dir: Path) -> dict[str, object]:
    """A served terminal's fee tables (``possim show``): what a push changes."""
    shown = subprocess.run(
        [*POSSIM, "show", "--state-dir", str(state_dir), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if shown.returncode:  # never signed on to: no state yet
        assert "no terminal state here" in shown.stderr, shown.stderr
        return dict.fromkeys(("active", "pending", "partial_download"))
    doc = json.loads(shown.stdout)
    return {k: doc[k] for k in ("active", "pending", "partial_download")}


def test_a_stale_pty_link_reaching_another_terminal_is_refused_before_any_change(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    with loaded.connect() as conn:  # two deployed terminals of Chinese merchants (CNY)
        a, b = (
            conn.execute(
                select(TERMINALS.c.serial)
                .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
                .where(TERMINALS.c.status == "deployed", MERCHANTS.c.country == "CN")
                .order_by(TERMINALS.c.serial)
                .limit(2)
            )
            .scalars()
            .all()
        )
    table = tmp_path / "t.toml"
    table.write_text(CNY_FOR_ALL, encoding="utf-8")
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    base = ["--db", db_url]
    assert runner.invoke(app, [*base, "fees", "publish", str(table)]).exit_code == 0
    # b stands in for a (as a swap's new terminal does: a's TID, MID and MCC, its own serial)
    replacement = _terminal(loaded, a) | {"serial": b}
    with (
        possim(key, tmp_path / "a", port="pty", **_terminal(loaded, a)) as a_pty,  # type: ignore[arg-type]
        possim(key, tmp_path / "b", port="pty", **replacement) as b_pty,  # type: ignore[arg-type]
    ):
        # a's recorded link is the pty that b's process owns now
        assert runner.invoke(app, [*base, "terminals", "update", a, "--link", b_pty]).exit_code == 0
        before_b, before_a = _tables(tmp_path / "b"), _row(loaded, a)
        push = runner.invoke(
            app, [*base, "push", "--table", "1", "--terminal", a, "--key-file", str(key)]
        )
        assert push.exit_code == 1, push.output
        assert f"answers as serial {b}, not {a}" in " ".join(push.output.split())
        sync = runner.invoke(app, [*base, "sync", "--terminal", a])
        assert sync.exit_code == 1 and f"answers as serial {b}" in " ".join(sync.output.split())
        assert _tables(tmp_path / "b") == before_b  # no block, no commit reached b
        assert before_b["pending"] is None and before_b["partial_download"] is None
        after_a = _row(loaded, a)
        assert after_a["last_seen"] == before_a["last_seen"]
        assert after_a["active_version"] == before_a["active_version"]
        with loaded.connect() as conn:
            sent = (
                conn.execute(select(ATTEMPTS.c.blocks_sent).where(ATTEMPTS.c.serial == a))
                .scalars()
                .all()
            )
        assert all(n == 0 for n in sent)
        # on its own pty, the same push goes through
        assert runner.invoke(app, [*base, "terminals", "update", a, "--link", a_pty]).exit_code == 0
        push = runner.invoke(
            app, [*base, "push", "--table", "1", "--terminal", a, "--key-file", str(key)]
        )
        assert push.exit_code == 0, push.output
    assert _tables(tmp_path / "b") == before_b
