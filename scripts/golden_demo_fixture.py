"""Make the fixture of the golden demo test (``tests/test_golden_demo.py``).

Runs the whole demo (``scripts/demo.py``, about 40 s) into a temporary directory, then
writes into ``--dest`` (default ``tests/golden_demo/fixture``):

- ``fleet.sql.gz``: the demo's SQLite database as SQL text (``sqlite3``'s ``iterdump``,
  the ``alembic_version`` row included), gzip'd reproducibly (no name, no time stamp);
- ``posfleet.toml``: the demo's policy file;
- ``as-of.txt``: the UTC day the demo ran, the ``--as-of`` of every golden report.

Then make the golden outputs from it with
``POSFLEET_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_demo.py`` and
review the diff. Usage: ``.venv/bin/python scripts/golden_demo_fixture.py [--dest DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dump(database: Path) -> bytes:
    """The database as SQL text: what ``sqlite3.Connection.executescript`` loads again."""
    conn = sqlite3.connect(database)
    try:
        text = "\n".join(conn.iterdump()) + "\n"
    finally:
        conn.close()
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "tests" / "golden_demo" / "fixture")
    dest: Path = parser.parse_args().dest
    with tempfile.TemporaryDirectory(prefix="posfleet-golden-") as tmp:
        out = Path(tmp) / "demo"
        day = datetime.now(UTC).date()
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(out)],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            print("error: the demo failed; no fixture written", file=sys.stderr)
            return 1
        if datetime.now(UTC).date() != day:
            print("error: the demo ran over midnight UTC; run it again", file=sys.stderr)
            return 1
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "fleet.sql.gz").write_bytes(dump(out / "fleet.db"))
        shutil.copyfile(out / "posfleet.toml", dest / "posfleet.toml")
        (dest / "as-of.txt").write_text(f"{day.isoformat()}\n", encoding="utf-8")
    print(f"fixture written to {dest} (as of {day.isoformat()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
