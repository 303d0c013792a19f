"""The README's example outputs, from commands anyone can run.

A fenced block in ``README.md`` right after a marker such as

    <!-- example: posfleet replacements --as-of 2026-11-01 --limit 3 -->

is the output of that command on the sample fleet (``fleet/sample/seed.py``: 300 terminals,
seed 8583), printed at 100 columns, with the command as its first line (``$ posfleet …``).

    python scripts/readme_examples.py            # rewrite the marked blocks
    python scripts/readme_examples.py --check    # exit 1, with a diff, if any drifted
    python scripts/readme_examples.py --sample DIR   # the sample fleet in DIR/posfleet.db

``tests/test_readme_examples.py`` runs the check. Only what is legitimately variable is
normalised (instants of the clock, e.g. ``2026-12-01T04:36:00.783554+00:00``); an example
that depends on today's date names its ``--as-of``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COLUMNS = 100
SAMPLE_TERMINALS = 300

MARKED = re.compile(
    r"(?P<head><!-- example: (?P<command>posfleet [^\n]*?) -->\n```[^\n]*\n)(?P<body>.*?)(?=```)",
    re.S,
)
_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)")


def normalise(text: str) -> str:
    """``text`` with what changes from run to run (instants of the clock) made constant."""
    return _INSTANT.sub("<instant>", text)


def sample_database(directory: Path) -> str:
    """The sample fleet imported into ``directory/posfleet.db``; returns the ``--db``."""
    sys.path.insert(0, str(ROOT))
    from fleet.core import db  # noqa: PLC0415
    from fleet.inventory import import_catalog, import_merchants, import_terminals  # noqa: PLC0415
    from fleet.sample import write_sample  # noqa: PLC0415

    files = write_sample(directory / "sample", terminals=SAMPLE_TERMINALS)
    path = directory / "posfleet.db"
    engine = db.connect(str(path))
    try:
        db.upgrade(engine)
        import_catalog(engine, files.catalog, actor="readme")
        import_merchants(engine, files.merchants, actor="readme")
        import_terminals(engine, files.terminals, actor="readme")
    finally:
        engine.dispose()
    return str(path)


def output_of(command: str, database: str) -> str:
    """What ``command`` prints (stdout and stderr, as a terminal shows them) at
    :data:`COLUMNS` columns, after its ``$ command`` line."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from fleet.cli import app  # noqa: PLC0415

    args = shlex.split(command)[1:]
    env = {"COLUMNS": str(COLUMNS), "POSFLEET_POLICY": os.devnull, "POSFLEET_ACTOR": "readme"}
    result = CliRunner().invoke(app, ["--db", database, *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"{command}: {result.exception!r}") from result.exception
    lines = [line.rstrip() for line in result.output.splitlines()]
    return f"$ {command}\n" + "\n".join(lines) + "\n"


def examples(text: str, database: str) -> str:
    """``text`` with every marked block replaced by its command's output."""
    return MARKED.sub(lambda m: m["head"] + output_of(m["command"], database), text)


def drift(text: str, database: str) -> list[str]:
    """The unified diff of the marked blocks that differ from their command's output
    (normalised), empty when the README is true."""
    fresh = examples(text, database)
    if normalise(fresh) == normalise(text):
        return []
    return list(
        difflib.unified_diff(
            text.splitlines(), fresh.splitlines(), "README.md", "README.md (fresh)", lineterm=""
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on drift")
    parser.add_argument("--sample", type=Path, help="write the sample fleet's database here")
    args = parser.parse_args(argv)
    if args.sample is not None:
        args.sample.mkdir(parents=True, exist_ok=True)
        print(f"POSFLEET_DB={sample_database(args.sample)}")
        return 0
    text = README.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="posfleet-readme-") as tmp:
        database = sample_database(Path(tmp))
        if args.check:
            lines = drift(text, database)
            print("\n".join(lines) or "README examples are true")
            return 1 if lines else 0
        README.write_text(examples(text, database), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
