"""Imports on PostgreSQL go through COPY (psycopg 3) into a staging table, then one upsert:
hostile values (tabs, newlines, carriage returns, backslashes, quotes, COPY's own ``\\N``
and ``\\.`` markers, non-ASCII) must arrive exactly as written, on both databases."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from fleet.core import db
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.core.records import RejectedFileError
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.sample.seed import SampleFiles
from tests.fleet.conftest import pg_schema

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


def _schema_of(engine: Engine) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The terminal table's indexes and constraints, as PostgreSQL prints them."""
    with engine.connect() as conn:
        indexes = conn.execute(
            text(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'terminal'::regclass ORDER BY 1"
            )
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'terminal'::regclass ORDER BY 1"
            )
        ).all()
    return [tuple(r) for r in indexes], [tuple(r) for r in constraints]


def _terminals(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(TERMINALS).order_by(TERMINALS.c.serial))]


def test_load_into_an_empty_table_keeps_its_indexes_and_keys(
    engine: Engine, sample: SampleFiles
) -> None:
    """On PostgreSQL a load into an empty table drops its foreign keys and secondary
    indexes and makes them again at the end (``bulk_load``): the same ones, enforced, and
    the rows are what the row-by-row path (a table with rows) writes, on both databases."""
    import_catalog(engine, sample.catalog, actor="t")
    import_merchants(engine, sample.merchants, actor="t")
    pg = engine.dialect.name == "postgresql"
    before = _schema_of(engine) if pg else None
    import_terminals(engine, sample.terminals, actor="t", chunk=50)  # several chunks
    loaded = _terminals(engine)
    assert len(loaded) == 300
    if pg:
        assert _schema_of(engine) == before
        with engine.connect() as conn:  # the table's statistics were gathered
            stats = conn.execute(
                text("SELECT count(*) FROM pg_stats WHERE tablename = 'terminal'")
            ).scalar_one()
        assert stats > 0
        with pytest.raises(IntegrityError, match="fk_terminal_merchant"), engine.begin() as conn:
            conn.execute(update(TERMINALS).values(merchant_id="NO-SUCH"))
    # a first terminal row makes the next load go row by row: same rows in the end
    with engine.begin() as conn:
        conn.execute(delete(TERMINALS).where(TERMINALS.c.serial != loaded[0][0]))
    import_terminals(engine, sample.terminals, actor="t", chunk=50)
    assert _terminals(engine) == loaded


def test_bulk_load_backstop_names_the_refused_constraint(
    sample: SampleFiles, tmp_path: Path
) -> None:
    """PostgreSQL (bulk loads are its own): a foreign key the importer's checks know
    nothing of, made again at the end of a load, refuses the rows: the file is rejected in
    one line naming it, nothing is written, and the key is still there."""
    with pg_schema() as url:
        engine = db.connect(url)
        try:
            db.upgrade(engine)
            import_catalog(engine, sample.catalog, actor="t")
            import_merchants(engine, sample.merchants, actor="t")
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE test_tid (tid varchar(8) PRIMARY KEY)"))
                conn.execute(
                    text(
                        "ALTER TABLE terminal ADD CONSTRAINT fk_test_tid "
                        "FOREIGN KEY (tid) REFERENCES test_tid (tid)"
                    )
                )
            with pytest.raises(RejectedFileError) as caught:
                import_terminals(engine, sample.terminals, actor="t")
            (line,) = caught.value.row_lines()
            assert "the database refused the file: " in line
            assert 'foreign key constraint "fk_test_tid"' in line
            assert _terminals(engine) == []
            assert "fk_test_tid" in dict(_schema_of(engine)[1])
        finally:
            engine.dispose()


def test_a_unique_index_refuses_a_chunk_of_a_bulk_load(sample: SampleFiles) -> None:
    """PostgreSQL: a load into an empty table ``COPY``s straight into it; a unique index
    (kept through the load) refusing a row rejects the file, names the refusal, writes
    nothing."""
    with pg_schema() as url:
        engine = db.connect(url)
        try:
            db.upgrade(engine)
            import_catalog(engine, sample.catalog, actor="t")
            import_merchants(engine, sample.merchants, actor="t")
            with engine.begin() as conn:
                conn.execute(text("CREATE UNIQUE INDEX ix_test_one_per_model ON terminal (model)"))
            with pytest.raises(RejectedFileError) as caught:
                import_terminals(engine, sample.terminals, actor="t", chunk=50)
            assert caught.value.row_lines() == [
                f"{sample.terminals}:?: the database refused a chunk (constraint)"
            ]
            assert _terminals(engine) == []
        finally:
            engine.dispose()
