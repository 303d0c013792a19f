"""`posfleet keys`: new, show, register, list and rotate's refusals (the rotation itself, over
the wire, is in tests/fleet/rollout/test_key_rollout_e2e.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from fleet.cli import app
from protocols.mac import MasterKey, read_master_key, write_master_key_file

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_keys_new_writes_a_private_versioned_file_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "fleet-v2.key"
    # wide: the temporary path is one long word, which a narrow terminal folds mid-word
    res = runner.invoke(app, ["keys", "new", str(path), "--version", "2"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    master = read_master_key(path)
    assert master.version == 2 and os.stat(path).st_mode & 0o777 == 0o600
    assert _flat(res.stdout) == (
        f"wrote {path}: master key version 2, check value {master.check_value} (mode 0600)"
    )
    assert master.key.hex() not in res.output.lower()
    again = runner.invoke(app, ["keys", "new", str(path), "--version", "3"])
    assert again.exit_code == 2 and "never overwritten" in again.output
    assert read_master_key(path) == master
    assert runner.invoke(app, ["keys", "new", str(path), "--force"]).exit_code == 2
    bad = runner.invoke(app, ["keys", "new", str(tmp_path / "v0.key"), "--version", "0"])
    assert bad.exit_code == 2 and "version 0 is not 1..4294967295" in bad.output
    assert not (tmp_path / "v0.key").exists()
    nowhere = runner.invoke(app, ["keys", "new", str(tmp_path / "no" / "k.key")])
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.output  # bad usage (issue 13)
    doc = json.loads(
        runner.invoke(app, ["keys", "new", str(tmp_path / "v1.key"), "-f", "json"]).stdout
    )
    assert doc == {
        "path": str(tmp_path / "v1.key"),
        "version": 1,
        "check_value": read_master_key(tmp_path / "v1.key").check_value,
    }
    assert (tmp_path / "v1.key").read_text().count("\n") == 1, "version 1 is the v1 format"


def test_keys_show_gives_versions_and_check_values_only(tmp_path: Path) -> None:
    a, b = MasterKey(1, bytes(range(16))), MasterKey(4, bytes(range(1, 17)))
    write_master_key_file(tmp_path / "a.key", a)
    write_master_key_file(tmp_path / "b.key", b)
    os.chmod(tmp_path / "b.key", 0o644)
    res = runner.invoke(
        app, ["keys", "show", str(tmp_path / "a.key"), str(tmp_path / "b.key"), "-f", "json"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["version"], r["check_value"], r["mode"]) for r in rows] == [
        (1, a.check_value, "0600"),
        (4, b.check_value, "0644 (others can read it)"),
    ]
    assert a.key.hex() not in res.output and b.key.hex() not in res.output
    (tmp_path / "c.key").write_text("xyz\n")
    bad = runner.invoke(app, ["keys", "show", str(tmp_path / "c.key")])
    assert bad.exit_code == 2 and "c.key" in bad.output and "not a hex digit" in bad.output


def test_register_list_and_rotate_refusals(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    def cli(*args: str) -> Result:
        return runner.invoke(app, ["--db", db_url, *args])

    v1, v2, v2b = tmp_path / "v1.key", tmp_path / "v2.key", tmp_path / "v2b.key"
    write_master_key_file(v1, MasterKey(1, bytes(range(16))))
    write_master_key_file(v2, MasterKey(2, bytes(range(16, 32))))
    write_master_key_file(v2b, MasterKey(2, bytes(range(32, 48))))
    res = cli("keys", "register", str(v1), "--note", "the fleet's first key")
    assert res.exit_code == 0 and "registered as issued" in res.output
    res = cli("keys", "register", str(v1))
    assert "was already registered" in res.output
    listed = json.loads(cli("keys", "list", "-f", "json").stdout)
    assert [(v["version"], v["issued"]) for v in listed["versions"]] == [(1, True)]
    assert listed["unreported"] > 0 and listed["unissued"] == []
    res = cli("keys", "rotate", "--from", str(v2), "--to", str(v1))
    assert res.exit_code == 2, res.output
    assert "must be above the old key's version 2" in _flat(res.output)
    res = cli("keys", "rotate", "--from", str(v1), "--to", str(v2))
    assert res.exit_code == 1
    assert "no deployed terminal with a link" in res.output
    res = cli("keys", "rotate", "--from", str(v1), "--to", str(v2), "--waves", "50%")
    assert res.exit_code == 2 and "--waves" in res.output
    cli("keys", "register", str(v2))
    res = cli("keys", "register", str(v2b))
    assert res.exit_code == 2
    assert "v2b.key is master key version 2 with check value" in _flat(res.output)
    res = cli("keys", "rotate", "--from", str(v1), "--to", str(v2b))
    assert res.exit_code == 2 and "a different key" in _flat(res.output)
