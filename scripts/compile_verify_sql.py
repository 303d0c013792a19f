"""Write fleet/core/verify_sql.py: the SQL of `posfleet notices verify`, compiled by
SQLAlchemy from fleet.core.clauses.VERIFY_STATEMENTS for SQLite and PostgreSQL.

Run it after changing those statements or the clauses they use (the test
tests/fleet/core/test_verify_sql.py fails until you do): ``.venv/bin/python
scripts/compile_verify_sql.py``. ``--check`` only says whether the file is current (exit 1
when not).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fleet.core.clauses import render_verify_sql

TARGET = Path(__file__).resolve().parents[1] / "fleet" / "core" / "verify_sql.py"


def main(argv: list[str]) -> int:
    text = render_verify_sql()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if "--check" in argv:
        print(f"{TARGET}: {'current' if current == text else 'STALE: run without --check'}")
        return 0 if current == text else 1
    if current != text:
        TARGET.write_text(text, encoding="utf-8")
    print(f"{TARGET}: {'written' if current != text else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
