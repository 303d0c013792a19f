"""The CLI framework: what a command loads before it works, the lazy root, and the one
place that maps errors to a line and an exit code. (Timings are `make bench`'s, never a
test's: these check *which* modules load, which is what the time follows from.)"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleet.cli import COMMANDS, app
from fleet.cli.common import exit_code_for
from fleet.core.errors import ConflictError, FleetError, InputError, JobError, NotFoundError
from fleet.core.records import RejectedFileError, RowError
from protocols.errors import ProtocolError

runner = CliRunner()

HEAVY = (
    "sqlalchemy", "sqlmodel", "alembic", "matplotlib", "apprise", "jinja2", "phonenumbers",
    "cryptography", "construct", "psycopg", "serial", "babel", "pycountry",
)  # fmt: skip
"""Libraries a command may import only when it needs them."""

LIGHT_CLI = (
    "common", "admin", "inventory", "terminals", "replace", "report", "wire", "fees", "push",
    "rollout", "notices", "notices_loop", "swaps", "keys", "users", "webhooks", "serve", "outfile",
    "health",
)  # fmt: skip
"""CLI modules whose top level imports nothing heavy (the commands import the domain)."""

PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["posfleet", *args]
import fleet.cli
try:
    fleet.cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = [m for m in sys.modules if m.split(".")[0] in watched or m.startswith("fleet.")]
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run ``posfleet ARGS`` in a fresh interpreter: exit code, heavy and fleet modules it
    loaded, and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
    assert line, done.stderr
    found = json.loads(line[-1].removeprefix("PROBE "))
    return found["code"], set(found["loaded"]), done.stdout


def heavy(loaded: set[str]) -> set[str]:
    return {m.split(".")[0] for m in loaded} & set(HEAVY)


def test_help_loads_no_command_and_nothing_heavy() -> None:
    code, loaded, stdout = probe("--help")
    assert code == 0 and "Commands" in stdout
    assert heavy(loaded) == set()
    assert {m for m in loaded if m.startswith("fleet.cli.")} == {"fleet.cli.common"}
    for name, _, _ in COMMANDS:
        assert f" {name} " in stdout


def test_a_command_loads_its_own_module_only() -> None:
    code, loaded, _ = probe("wire", "decode", "0800")
    assert code == 1  # a body too short: a protocol error
    assert {m for m in loaded if m.startswith("fleet.cli.")} == {
        "fleet.cli.common",
        "fleet.cli.wire",
    }
    assert heavy(loaded) == {"construct"}  # the codec, which decoding needs


VERIFY_LOADS = {
    "fleet.cli.common", "fleet.cli.notices", "fleet.cli.notices_loop", "fleet.core.actor", "fleet.core.audit",
    "fleet.core.clock", "fleet.core.db", "fleet.core.dbapi", "fleet.core.errors",
    "fleet.core.escaping", "fleet.core.events", "fleet.core.masking", "fleet.core.verify_sql",
    "fleet.notices.codes", "fleet.notices.payloads", "fleet.notices.queue",
    "fleet.notices.verify", "fleet.notices.verify_log",
}  # fmt: skip
"""What ``posfleet notices verify`` may load of ours: its command, the verification, the
plain DB-API runner and the SQL compiled for it (not the clauses it is compiled from), the
audit entry, the verification log and the events outbox, the database's constants and
errors, the terminal-text escaping every console applies; no model, policy, fee or text
module."""


@pytest.mark.parametrize("genuine", [False, True])
def test_notices_verify_loads_no_sqlalchemy(tmp_path: Path, genuine: bool) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import insert  # noqa: PLC0415

    from fleet.core import db  # noqa: PLC0415
    from fleet.core.models import MERCHANTS, MESSAGES, NOTICES  # noqa: PLC0415

    path = tmp_path / "fleet.db"
    engine = db.connect(str(path))
    db.upgrade(engine)
    if genuine:
        at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(MERCHANTS).values(
                    id="M1", name="Shop", mcc=5411, region="N", tags=[], channels=[], opt_out=[]
                )
            )
            message = dict(
                id=7, code="AAAAA-BBBBB", merchant_id="M1", channel="email",
                address="shop@example.com", language="en", kinds=["swap_done"],
                subject="Your terminal", body="Hello", status="sent", not_before=at,
                created_at=at, sent_at=at,
            )  # fmt: skip
            notice = dict(
                kind="swap_done", merchant_id="M1", ref="swap:1", payload={}, created_at=at,
                status="sent", message_id=7,
            )  # fmt: skip
            conn.execute(insert(MESSAGES).values(**message))
            conn.execute(insert(NOTICES).values(**notice))
    engine.dispose()
    code, loaded, stdout = probe("--db", str(path), "notices", "verify", "aaaaa bbbbb")
    if genuine:
        assert code == 0 and stdout.startswith("GENUINE: reference AAAAA-BBBBB, email to Shop")
        assert "composed 2026-03-01T09:30:00+00:00" in stdout and "swap_done (swap:1)" in stdout
    else:
        assert code == 1 and stdout.startswith("NOT GENUINE")
    assert heavy(loaded) == set()
    ours = {m for m in loaded if m.startswith("fleet.")} - {
        "fleet.cli",
        "fleet.core",
        "fleet.notices",
    }
    assert ours == VERIFY_LOADS


def test_policy_show_needs_no_database(tmp_path: Path) -> None:
    code, loaded, stdout = probe("--db", str(tmp_path / "none.db"), "policy", "show")
    assert code == 0 and "[replacement]" in stdout
    assert heavy(loaded) == set()
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("name", LIGHT_CLI)
def test_cli_modules_import_nothing_heavy_at_their_top(name: str) -> None:
    script = f"import json, sys, fleet.cli.{name}; print(json.dumps(list(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert heavy(set(json.loads(done.stdout))) == set()


def test_every_cli_module_is_classified() -> None:
    root = Path(__file__).resolve().parents[3] / "fleet" / "cli"
    names = {p.stem for p in root.glob("*.py")} - {"__init__"}
    assert names == set(LIGHT_CLI)


def test_the_root_help_lines_are_the_commands_own() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert list(group.commands) == [name for name, _, _ in COMMANDS]
    for name, _, line in COMMANDS:
        pending = group.commands[name]
        loaded = pending.load()  # type: ignore[attr-defined]
        assert loaded.name == name
        first = inspect.cleandoc(loaded.help or "").split("\n\n")[0].strip()
        assert line == first, f"COMMANDS' help line for {name!r} is not its own help"


def test_help_shows_the_same_before_and_after_loading() -> None:
    before = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout
    runner.invoke(app, ["terminals", "--help"])  # loads one sub-app in this process
    after = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout
    assert before == after and "The terminals of the fleet." in before


# --- errors → one line and an exit code ------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputError("not a date", where="--as-of"), 2),
        (NotFoundError("unknown terminal", where="PS1"), 2),
        (RejectedFileError([RowError("t.csv", 2, "tid", "bad")]), 2),
        (ConflictError("not in stock", where="PS2"), 1),
        (JobError("link down", where="PS3"), 1),
        (ProtocolError("bad frame"), 1),
    ],
)
def test_exit_code_follows_the_error_class(
    error: FleetError | ProtocolError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code_for(error) == code
    err = capsys.readouterr().err
    assert err.endswith(f"error: {error}\n")
    if isinstance(error, RejectedFileError):
        assert err.splitlines()[0] == "t.csv:2: tid: bad"


def test_rejected_file_prints_at_most_200_rows(capsys: pytest.CaptureFixture[str]) -> None:
    errors = [RowError("t.csv", i, "tid", "bad") for i in range(2, 260)]
    assert exit_code_for(RejectedFileError(errors)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 202 and lines[-2] == "… and 58 more"
    assert lines[-1] == "error: t.csv: 258 errors, nothing written"


def test_a_domain_error_anywhere_in_a_command_is_one_line(db_url: str) -> None:
    from fleet.core import db  # noqa: PLC0415

    db.upgrade(db.connect(db_url))
    res = runner.invoke(app, ["--db", db_url, "merchants", "show", "NOPE"])
    assert res.exit_code == 2 and res.stderr == "error: NOPE: unknown merchant\n"
    res = runner.invoke(app, ["--db", db_url, "terminals", "show", "NOPE", "--format", "json"])
    assert res.exit_code == 2 and res.stderr == "error: NOPE: unknown terminal\n"


def test_schema_behind_says_what_to_run(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--db", str(tmp_path / "new.db"), "terminals", "list"])
    assert res.exit_code == 1
    assert res.stderr.endswith(": has no posfleet schema: run `posfleet db upgrade`\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["catalog", "list", "--format", "xml"],
            "--format must be one of table, csv, json, not 'xml'",
        ),
        (["terminals", "export", "-f", "table"], "--format must be one of csv, json, not 'table'"),
        (["terminals", "list", "--limit", "many"], "--limit: "),
        (
            ["audit", "list", "--out", "/nonexistent/dir/a.csv"],
            "--out: directory /nonexistent/dir does not exist",
        ),
        (
            ["terminals", "show"],
            "Missing argument 'serial'. (see `posfleet terminals show --help`)",
        ),
        (["terminals", "shwo"], "No such command 'shwo'. Did you mean 'show'?"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert message in res.stderr


def test_no_arguments_shows_the_help() -> None:
    res = runner.invoke(app, ["terminals"])
    assert "The terminals of the fleet." in res.output and "error" not in res.output


def test_key_file_option_loads_or_fails(tmp_path: Path) -> None:
    from fleet.cli.common import load_keys  # noqa: PLC0415
    from fleet.core.errors import InputError  # noqa: PLC0415
    from protocols.mac import generate_master_key_file  # noqa: PLC0415

    good = tmp_path / "k.key"
    generate_master_key_file(good, version=3)
    assert load_keys([good]).versions == (3,)
    with pytest.raises(InputError, match=r"missing\.key: cannot read") as info:
        load_keys([tmp_path / "missing.key"])
    assert info.value.exit_code == 2
