"""The 1 M-terminal benchmark's path (bench/fleet_scale.py), on 3,000 terminals."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import fleet_scale

pytestmark = pytest.mark.slow  # handed out first under xdist (tests/conftest.py)


def test_fleet_scale_path_small(tmp_path: Path) -> None:
    m = fleet_scale.measure(tmp_path, terminals=3_000, merchants=300)
    assert m["import"]["inserted"] == 3_000 and m["import"]["merchants"] == 300
    assert (m["reimport"]["inserted"], m["reimport"]["updated"]) == (0, 3_000)
    assert 0 < m["flag"]["flagged"] < 3_000
    assert m["flag"]["units"] == m["flag"]["flagged"]
    assert m["flag_sql"]["rows"] == m["flag"]["flagged"]
    assert m["floor"]["rows"] == 3_000
    assert m["report_replacements"]["rows"] == m["flag"]["flagged"]  # the CSV has them all
    assert m["report_fleet"]["bytes"] > 0 and m["fleet_floor"]["groups"] > 0
    lines = fleet_scale.report(m)
    assert any(line.startswith("  report replacements, CSV of all") for line in lines)
    assert lines[0].startswith("## fleet at scale: 3,000 terminals")
    assert all(m[step]["peak_mib"] > 0 for step in ("import", "flag", "reimport"))
