"""Issue 13, "Security", on the simulator's side: each test named after its class, each
failing before the fix.

- ``possim fleet --manifest`` path traversal: a serial is checked with the fleet's rule
  (:func:`protocols.values.check_serial`), so no terminal's state lands outside
  ``--state-dir``;
- a master key file readable by others is refused (as ssh refuses such a private key),
  unless ``--allow-open-key-file`` — by ``possim`` and ``posfleet`` alike.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet.cli import app
from protocols.errors import MacError
from protocols.mac import read_master_key
from tests.terminal_sim.conftest import MASTER

POSSIM = str(Path(sys.executable).with_name("possim"))
pytestmark = pytest.mark.timeout(120)

TRAVERSALS = ("../../escaped", "/tmp/posfleet-absolute", "..", "a/../../b", ".hidden", "x\ty")


def test_possim_manifest_path_traversal_is_refused(tmp_path: Path, master_key_file: Path) -> None:
    manifest = tmp_path / "terminals.csv"
    rows = [
        f"{serial},PF-200,1.0,TERM{n:04d},MERCHANT{n:07d},5411"
        for n, serial in enumerate(TRAVERSALS, 1)
    ]
    manifest.write_text("serial,model,firmware,tid,mid,mcc\n" + "\n".join(rows) + "\n")
    state = tmp_path / "deep" / "state"
    done = subprocess.run(
        [POSSIM, "fleet", "--manifest", str(manifest), "--key-file", str(master_key_file),
         "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    for line in range(2, 2 + len(TRAVERSALS)):
        assert f"{manifest}:{line}: not a valid serial" in done.stderr
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/posfleet-absolute").exists()
    assert not state.exists()


@pytest.mark.parametrize("serial", TRAVERSALS)
def test_possim_and_posfleet_share_one_serial_rule(serial: str) -> None:
    from fleet.core.values import parse_serial  # noqa: PLC0415
    from terminal_sim.terminal import TerminalConfig  # noqa: PLC0415

    with pytest.raises(ValueError, match="not a valid serial"):
        TerminalConfig(serial, "PF-200", "1.0", "TERM0001", "MERCHANT0000001", 5411, bytes(16))
    with pytest.raises(ValueError, match="not a valid serial"):
        parse_serial(serial)


def test_key_file_readable_by_others_is_refused(tmp_path: Path, master_key_file: Path) -> None:
    master_key_file.chmod(0o644)
    with pytest.raises(MacError, match="permissions 0644 are too open"):
        read_master_key(master_key_file)
    assert read_master_key(master_key_file, allow_open=True).key == MASTER
    # possim refuses it, in one line, unless told
    args = [POSSIM, "fleet", "--count", "1", "--key-file", str(master_key_file),
            "--state-dir", str(tmp_path / "state"), "--tcp", "127.0.0.1:0"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "too open" in done.stderr
    assert done.stderr.count("\n") == 1
    # posfleet refuses it before anything else
    res = CliRunner().invoke(
        app, ["--db", str(tmp_path / "none.db"), "push", "--table", "1", "--terminal", "PS1",
              "--key-file", str(master_key_file)],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "permissions 0644 are too open" in res.stderr and "--allow-open-key-file" in res.stderr
    master_key_file.chmod(0o600)
    assert read_master_key(master_key_file).key == MASTER
