"""Imports on PostgreSQL go through COPY (psycopg 3) into a staging table, then one upsert:
hostile values (tabs, newlines, carriage returns, backslashes, quotes, COPY's own ``\\N``
and ``\\.`` markers, non-ASCII) must arrive exactly as written, on both databases."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from fleet.core.models import MERCHANTS
from fleet.core.records import RejectedFileError
from fleet.inventory import import_merchants

HOSTILE = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "double \"quoted\" and 'single'",
    "comma, semicolon; pipe|",
    "\\t literally, \\\\ doubled",
    "北京 café ☕",
    "=cmd|' /C calc'!A0",
]


def _write(path: Path, names: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "mcc", "region", "tags"])
        for i, name in enumerate(names):
            w.writerow([f"M{i:03d}", name, "5411", name[:40].strip() or "x", f"a\tb;{name}"])


def _read(engine: Engine) -> dict[str, tuple[str, str | None, list[str]]]:
    with engine.connect() as conn:
        return {
            r.id: (r.name, r.region, r.tags)
            for r in conn.execute(
                select(MERCHANTS.c.id, MERCHANTS.c.name, MERCHANTS.c.region, MERCHANTS.c.tags)
            )
        }


def test_hostile_values_round_trip(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name == "postgresql":
        assert engine.dialect.driver == "psycopg", "the COPY path needs psycopg 3"
    f = tmp_path / "m.csv"
    _write(f, HOSTILE)
    result = import_merchants(engine, f, actor="t")
    assert result.inserted == len(HOSTILE)
    got = _read(engine)
    for i, name in enumerate(HOSTILE):
        stored_name, region, tags = got[f"M{i:03d}"]
        assert stored_name == name.strip(), repr(name)
        assert region == (name[:40].strip() or "x"), repr(name)
        assert tags == [p.strip() for p in f"a\tb;{name}".replace("|", ";").split(";") if p.strip()]
    # the same file again: an upsert that changes nothing; then new values replace the old
    again = import_merchants(engine, f, actor="t")
    assert (again.inserted, again.updated) == (0, len(HOSTILE))
    assert _read(engine) == got
    _write(f, [n + "\t2" for n in HOSTILE])
    import_merchants(engine, f, actor="t")
    assert {k: v[0] for k, v in _read(engine).items()} == {
        f"M{i:03d}": (n + "\t2").strip() for i, n in enumerate(HOSTILE)
    }


def test_copy_import_is_atomic_on_a_bad_row(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    _write(f, HOSTILE[:3])
    import_merchants(engine, f, actor="t")
    before = _read(engine)
    bad = tmp_path / "bad.csv"
    with bad.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "mcc"])
        w.writerow(["M000", "changed\twith tab", "5411"])
        w.writerow(["M999", "bad mcc", "54"])
    with pytest.raises(RejectedFileError, match="nothing written"):
        import_merchants(engine, bad, actor="t")
    assert _read(engine) == before
