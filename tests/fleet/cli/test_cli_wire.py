"""`posfleet wire` and `posfleet keys`: decode captures, make master keys, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fleet.cli import app
from protocols.codec import encode
from protocols.framing import encode_frame
from protocols.mac import load_master_key
from tests.protocols.catalog import CATALOG

runner = CliRunner()


def test_decode_a_captured_frame_as_json() -> None:
    msg = CATALOG["0810/001 sign-on"]
    capture = (
        encode_frame(encode(CATALOG["0800/001 sign-on"])) + b"\x06" + encode_frame(encode(msg))
    )
    result = runner.invoke(app, ["wire", "decode", capture.hex(" "), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [d["mti"] for d in doc] == ["0800", "0810"]
    assert doc[1]["fields"]["42"] == "MERCHANT0000001"
    assert doc[1]["fields"]["62"] == msg.binary(62).hex(" ")


def test_decode_a_body_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(encode(CATALOG["0200 sale"]))
    result = runner.invoke(app, ["wire", "decode", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "MTI 0200" in result.output
    assert "Terminal ID (TID)" in result.output


def test_decode_errors_are_one_line_and_exit_1() -> None:
    body = encode(CATALOG["0800/360 block"])[:-50]
    result = runner.invoke(app, ["wire", "decode", body.hex()])
    assert result.exit_code == 1
    assert "field 62 at byte 62: LLLVAR data needs 900 bytes, only 858 left" in result.output
    frame = bytearray(encode_frame(b"0800"))
    frame[-1] ^= 0xFF
    result = runner.invoke(app, ["wire", "decode", bytes(frame).hex()])
    assert result.exit_code == 1
    assert "LRC" in result.output


def test_bad_usage_exits_2() -> None:
    assert runner.invoke(app, ["wire", "decode", "zz"]).exit_code == 2
    assert runner.invoke(app, ["wire", "decode"]).exit_code == 2
    assert runner.invoke(app, ["wire", "decode", "00", "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["no-such-noun"]).exit_code == 2


def test_keys_new_writes_a_private_key_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    assert runner.invoke(app, ["keys", "new", str(path)]).exit_code == 0
    key = load_master_key(path)
    assert len(key) == 16
    assert os.stat(path).st_mode & 0o777 == 0o600
    result = runner.invoke(app, ["keys", "new", str(path)])
    assert result.exit_code == 2
    assert load_master_key(path) == key
    assert runner.invoke(app, ["keys", "new", str(path), "--force"]).exit_code == 0
    assert load_master_key(path) != key


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("posfleet")
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert "wire" in done.stdout and "keys" in done.stdout
