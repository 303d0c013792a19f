"""`make demo` end to end: terminals on ptys, a noisy cut line, a resumed push, sales that
match the fleet's own fee computation, and no process left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=280, check=False,
        env={"COLUMNS": "140", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert text.count("committed after") == 3
    assert "resumed at block" in text  # the cut line forced a resume
    assert text.count(" yes ") == 6 and " NO " not in text
    assert "no possim process left running" in text
    for serial in ("PF00000001", "PF00000002", "VX00000003"):
        assert (out / serial / "terminal.db").exists()
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True, check=False)
    assert left.stdout == "", f"processes left running: {left.stdout}"
