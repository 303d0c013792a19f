"""Issue 13, "Robustness": one test per class, each named after its class, each failing
before the class was fixed at its root.

- one handler, one line, the right exit code: the database busy (another writer), not a
  database; ``--out`` (and every file a command writes) in a missing folder or onto a
  directory; files that are not UTF-8; documents nested too deeply or of the wrong shape
  (:mod:`fleet.core.files`); decimals out of range (:func:`fleet.core.money.parse_decimal`);
- bad usage exits 2 everywhere, a failed dispatch exits 1.
"""

from __future__ import annotations

import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.files import DocumentError, FileTextError, load_json, load_toml, read_text
from fleet.core.money import MoneyError, parse_decimal, parse_minor
from fleet.core.policy import Policy, PolicyError
from fleet.core.records import RejectedFileError, read_sections
from fleet.fees import parse_fee_toml, read_table_file
from fleet.fees.errors import FeeFileError
from fleet.fees.tablefile import parse_rate
from fleet.sample import SampleFiles

runner = CliRunner()

DEEP = "[" * 100_000 + "]" * 100_000


def _one_line(res: object, code: int) -> str:
    """The error line of a command that failed cleanly with ``code`` (no traceback)."""
    exception = getattr(res, "exception", None)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    stderr = str(getattr(res, "stderr", ""))
    assert getattr(res, "exit_code", None) == code, (code, getattr(res, "output", ""))
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr


# -- one handler: the database -------------------------------------------------------------


def test_database_busy_is_one_line_after_the_busy_timeout(
    tmp_path: Path, sample: SampleFiles
) -> None:
    path = tmp_path / "fleet.db"
    assert runner.invoke(app, ["--db", str(path), "db", "upgrade"]).exit_code == 0
    holder = sqlite3.connect(path, isolation_level=None)  # a second writer, mid-transaction
    holder.execute("BEGIN IMMEDIATE")
    try:
        res = runner.invoke(
            app,
            ["--db", str(path), "catalog", "import", str(sample.catalog)],
            env={"POSFLEET_BUSY_TIMEOUT": "0.2"},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = _one_line(res, 1)
    assert "busy" in line and "waited 0.2 s" in line and str(path) in line
    # once the other writer is done, the same command works
    res = runner.invoke(app, ["--db", str(path), "catalog", "import", str(sample.catalog)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("content", [b"hello, not a database" * 100, b"\x00" * 4096])
def test_db_that_is_not_a_database_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    for args in (["terminals", "list"], ["db", "upgrade"], ["catalog", "list"]):
        res = runner.invoke(app, ["--db", str(path), *args])
        line = _one_line(res, 1)
        assert "is not a database" in line and str(path) in line, line
    assert path.read_bytes() == content  # and it was left alone


# -- one handler: files a command writes ---------------------------------------------------

WRITERS = (
    ["report", "fleet", "--format", "csv", "--out", "{target}"],
    ["report", "replacements", "--format", "html", "--out", "{target}"],
    ["report", "rollout", "--format", "json", "--out", "{target}"],
    ["report", "notices", "--format", "csv", "--out", "{target}"],
    ["audit", "list", "--format", "csv", "--out", "{target}"],
    ["terminals", "export", "--out", "{target}"],
    ["replacements", "--format", "json", "--out", "{target}"],
    ["policy", "init", "{target}"],
    ["keys", "new", "{target}"],
    ["webhooks", "keygen", "{target}", "--force"],
)


@pytest.mark.parametrize("args", WRITERS, ids=lambda a: " ".join(a[:2]))
def test_out_to_a_directory_or_a_missing_folder_is_one_line_for_every_writer(
    tmp_path: Path, args: list[str]
) -> None:
    path = tmp_path / "fleet.db"
    assert runner.invoke(app, ["--db", str(path), "db", "upgrade"]).exit_code == 0
    folder = tmp_path / "reports"
    folder.mkdir()
    for target, words in (
        (folder, "is a directory"),
        (tmp_path / "missing" / "out.txt", "does not exist"),
    ):
        argv = [a.replace("{target}", str(target)) for a in args]
        res = runner.invoke(app, ["--db", str(path), *argv])
        assert words in _one_line(res, 2), argv
    assert list(folder.iterdir()) == []
    assert not (tmp_path / "missing").exists()


# -- one reader: text that is not UTF-8, documents too deep or of the wrong shape ----------

LATIN1_TABLE = (
    'name = "Caf\xe9 tariff"\ncurrency = "EUR"\neffective = 2027-01-01T00:00:00Z\n'
    '[[rules]]\ncard = "credit"\nrate = "0.6%"\n'
).encode("latin-1")


def test_files_that_are_not_utf8_are_typed_errors(tmp_path: Path) -> None:
    table = tmp_path / "fees.toml"
    table.write_bytes(LATIN1_TABLE)
    policy = tmp_path / "posfleet.toml"
    policy.write_bytes(b'[notices]\ncompany = "Caf\xe9"\n')
    inventory = tmp_path / "terminals.json"
    inventory.write_bytes(b'[{"serial": "PS\xff"}]')
    with pytest.raises(FileTextError, match="not UTF-8"):
        read_text(table)
    with pytest.raises(FeeFileError, match=r"fees.toml: not UTF-8 text \(byte"):
        read_table_file(table)
    with pytest.raises(PolicyError, match=r"posfleet\.toml: not UTF-8"):
        Policy.load(policy)
    with pytest.raises(RejectedFileError):
        read_sections(inventory)
    db = str(tmp_path / "fleet.db")
    assert runner.invoke(app, ["--db", db, "db", "upgrade"]).exit_code == 0
    for args in (
        ["fees", "check", str(table)],
        ["--policy", str(policy), "policy", "show"],
        ["--policy", str(policy), "replacements"],
        ["terminals", "import", str(inventory)],
    ):
        res = runner.invoke(app, ["--db", db, *args])
        assert "not UTF-8" in res.stderr, (args, res.output)
        assert res.exit_code == 2 and "Traceback" not in res.stderr


def test_deeply_nested_documents_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="nested too deeply"):
        load_json(DEEP)
    with pytest.raises(DocumentError, match="nested too deeply"):
        load_toml("a = " + DEEP)
    with pytest.raises(FeeFileError, match="nested too deeply"):
        parse_fee_toml("rules = " + DEEP, "deep.toml")
    with pytest.raises(PolicyError, match="nested too deeply"):
        Policy.from_toml("[replacement]\nrequire = " + DEEP, "deep.toml")
    db = str(tmp_path / "fleet.db")
    assert runner.invoke(app, ["--db", db, "db", "upgrade"]).exit_code == 0
    for name, text in (("deep.json", DEEP), ("deep.toml", "terminals = " + DEEP)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        res = runner.invoke(app, ["--db", db, "terminals", "import", str(path)])
        assert res.exit_code == 2 and "nested too deeply" in res.stderr, res.output


@pytest.mark.parametrize("scalar", ['"x"', "true", "42", "null", "1.5"])
def test_json_whose_top_level_is_a_scalar_is_a_rejected_file(tmp_path: Path, scalar: str) -> None:
    path = tmp_path / "terminals.json"
    path.write_text(scalar, encoding="utf-8")
    with pytest.raises(RejectedFileError) as info:
        read_sections(path)
    assert "want an object or an array" in info.value.report()


# -- one decimal parser: out of range is an error, never decimal.Overflow ------------------


@pytest.mark.parametrize("text", ["1E20000000", "-1E20000000", "1E-20000000", "9" * 40])
def test_decimals_out_of_range_are_typed_errors(text: str) -> None:
    with pytest.raises(MoneyError, match="out of range"):
        parse_decimal(text)
    with pytest.raises(MoneyError):
        parse_minor(text, "EUR")
    with pytest.raises(FeeFileError):
        parse_rate(f"{text}%")
    with pytest.raises(PolicyError):
        Policy.from_toml(f'[notices]\nsms_price = "{text}"\n', "p.toml")
    with pytest.raises(PolicyError):
        Policy.from_toml(f'[rollout]\nmax_failures = "{text}%"\n', "p.toml")
    assert parse_decimal("1E30") and parse_minor("1,234.50", "EUR") == 123450


# -- exit codes: bad usage exits 2 everywhere, a dispatch that could not send exits 1 ----

BAD_USAGE = (
    ["notices", "verify", ""],
    ["notices", "verify", " ", " "],
    ["replacements", "--limit", "-5"],
    ["report", "replacements", "--limit", "0"],
    ["terminals", "list", "--limit", "-1"],
    ["notices", "list", "--limit", "-5"],
    ["audit", "list", "--limit", "0"],
    ["merchants", "list", "--limit", "-2"],
    ["swap", "PS00000001", "PS00000002", "--reason", ""],
    ["swap", "PS00000001", "PS00000002", "--reason", "   "],
    ["terminals", "update", "PS00000001", "--status", "faulty", "--reason", ""],
    ["rollout", "pause", "1", "--reason", ""],
    ["fees", "publish", "t.toml", "--override-notice", "--reason", " "],
)


@pytest.mark.parametrize("args", BAD_USAGE, ids=" ".join)
def test_bad_usage_exits_2_everywhere(tmp_path: Path, args: list[str]) -> None:
    db = str(tmp_path / "fleet.db")
    assert runner.invoke(app, ["--db", db, "db", "upgrade"]).exit_code == 0
    line = _one_line(runner.invoke(app, ["--db", db, *args]), 2)
    assert "must not be empty" in line or "greater than or equal to 1" in line, line


def test_a_dispatch_that_could_not_send_exits_1_and_marks_nothing_sent(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    from fleet.core.db import writer  # noqa: PLC0415
    from fleet.core.models import MERCHANTS, MESSAGES, NOTICES  # noqa: PLC0415
    from tests.fleet.notices.test_notices import merchants, put  # noqa: PLC0415

    ids = merchants(loaded, 3)
    with writer(loaded).begin() as conn:
        conn.execute(
            update(MERCHANTS)
            .where(MERCHANTS.c.id.in_(ids))
            .values(channels=["email"], opt_out=[], email="m@example.com")
        )
    for m in ids:
        put(loaded, m, "swap_done", "swap:1", datetime.now(UTC) - timedelta(hours=1))
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[notices]\nquiet_hours = "00:00-00:00"\ndigest_window = "0m"\nmax_per_window = 100\n',
        encoding="utf-8",
    )
    with socket.socket() as held:  # bound, never listening, for the whole run: refused
        held.bind(("127.0.0.1", 0))
        down = f"smtp://127.0.0.1:{held.getsockname()[1]}"
        res = runner.invoke(
            app,
            ["--db", db_url, "--policy", str(policy), "notices", "dispatch",
             "--outbox", str(tmp_path / "outbox"), "--smtp", down],
        )  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.stderr, res.output
    [line] = [x for x in res.stderr.splitlines() if "error" in x]  # after the progress bar
    assert "3 messages not sent (3 to retry later, 0 failed)" in line, line
    assert "cannot connect" in line and "sent 0" in res.stdout
    with loaded.connect() as conn:
        assert conn.execute(select(MESSAGES.c.status).distinct()).scalars().all() == ["ready"]
        assert "sent" not in conn.execute(select(NOTICES.c.status).distinct()).scalars().all()
