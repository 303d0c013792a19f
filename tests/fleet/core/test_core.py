"""fleet.core: the schema check without Alembic, errors that say what and where, the policy
package, and a public face that costs a command nothing."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

import fleet.core
from fleet.core import db
from fleet.core.errors import FleetError, InputError, JobError
from fleet.core.policy import (
    FeePolicy,
    NoticePolicy,
    Policy,
    PolicyError,
    ReplacementPolicy,
    RolloutPolicy,
    SwapPolicy,
)
from fleet.core.records import RejectedFileError, RowError
from fleet.core.values import parse_instant


def test_head_revision_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    assert ScriptDirectory(str(db.MIGRATIONS)).get_current_head() == db.HEAD_REVISION


def test_schema_revision_without_alembic(db_url: str) -> None:
    engine = db.connect(db_url)
    try:
        assert db.current_revision(engine) is None
        with pytest.raises(db.SchemaNotCurrentError) as info:
            db.require_current(engine)
        assert info.value.current is None and info.value.message == "has no posfleet schema"
        assert info.value.where == db.display_url(engine.url) and info.value.exit_code == 1
        db.upgrade(engine, "0002")
        assert db.current_revision(engine) == "0002"
        with pytest.raises(
            db.SchemaNotCurrentError, match=f"at schema revision 0002, not {db.HEAD_REVISION}"
        ):
            db.require_current(engine)
        db.upgrade(engine)
        assert db.current_revision(engine) == db.HEAD_REVISION
        db.require_current(engine)
    finally:
        engine.dispose()


def test_database_errors_name_the_database(tmp_path: Path) -> None:
    with pytest.raises(db.DatabaseError) as info:
        db.connect("mysql://u:secret@h/x")
    assert (
        str(info.value) == "mysql://u:***@h/x: unsupported database 'mysql': SQLite or PostgreSQL"
    )
    assert isinstance(info.value, JobError)
    with pytest.raises(db.DatabaseError, match=r"directory .* does not exist"):
        db.connect(str(tmp_path / "no" / "x.db"))
    unreachable = db.connect("postgresql://127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    with pytest.raises(db.DatabaseError) as info:
        db.current_revision(unreachable)
    assert info.value.where == "postgresql+psycopg://127.0.0.1:1/none"


def _loaded_by(statement: str) -> set[str]:
    script = f"import json, sys; {statement}; print(json.dumps(list(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_the_core_face_is_light() -> None:
    loaded = {m.split(".")[0] for m in _loaded_by("import fleet.core")}
    assert loaded & {"sqlalchemy", "sqlmodel", "alembic", "phonenumbers", "pydantic"} == set()
    assert set(fleet.core.__all__) <= set(dir(fleet.core))
    for name in fleet.core.__all__:  # each name of the face comes from its own module
        assert getattr(fleet.core, name).__module__.startswith("fleet.core.")


def test_one_core_module_does_not_load_the_others() -> None:
    ours = {m for m in _loaded_by("import fleet.core.errors") if m.startswith("fleet.")}
    assert ours == {"fleet.core", "fleet.core.errors"}
    ours = {m for m in _loaded_by("from fleet.core import Policy") if m.startswith("fleet.")}
    assert "fleet.core.policy" in ours and "fleet.core.records" not in ours


def test_the_bare_clauses_match_the_models() -> None:
    from fleet.core import clauses  # noqa: PLC0415
    from fleet.core.models import metadata  # noqa: PLC0415

    for name in clauses.__all__:
        clause = getattr(clauses, name)
        if not hasattr(clause, "columns") or clause is clauses.VERSION_CLAUSE:
            continue  # (Alembic's own row: read against real databases in test_verify_sql.py)
        declared = metadata.tables[clause.name]
        for column in clause.columns:
            assert column.name in declared.c, f"{clause.name}.{column.name} is not in the models"
            model_type, here = declared.c[column.name].type, column.type
            same = (
                isinstance(model_type, type(here))  # the instant type: exactly it
                if isinstance(here, clauses.UTCDateTime)
                else model_type._type_affinity is here._type_affinity  # String, JSON, Integer
                and not isinstance(model_type, clauses.UTCDateTime)
            )
            assert same, f"{clause.name}.{column.name}: {here!r} here, {model_type!r} in the models"


def test_masking_loads_phonenumbers_only_when_used() -> None:
    assert fleet.core.mask_phone("+8613812345678") == "+86 138****5678"


# --- errors ----------------------------------------------------------------------------


def test_policy_errors_are_bad_input_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[rollout]\nwaves = "10%,5%"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        Policy.load(path)
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 2
    assert err.where == f"{path}: rollout.waves" and err.message == "waves must grow: 10%, 5%"
    assert str(err) == f"{path}: rollout.waves: waves must grow: 10%, 5%"
    again = pickle.loads(pickle.dumps(err))  # errors cross process pools whole
    assert type(again) is PolicyError and str(again) == str(err)
    assert PolicyError.__module__ == "fleet.core.policy"
    with pytest.raises(PolicyError) as info:
        Policy.load(tmp_path / "missing.toml")
    assert str(info.value) == f"{tmp_path / 'missing.toml'}: No such file or directory"


@pytest.mark.parametrize(
    ("toml", "text"),
    [
        ("[replacement]\nrequire = ['wifi']", "policy: replacement.require: unknown capability"),
        (
            "[swaps]\nfollow_up = 'letter'",
            "policy: swaps.follow_up: 'letter' (want call or notice)",
        ),
        ("[swaps]\nadvance_notice = 'soon'", "policy: swaps.advance_notice: not a duration"),
        ("[fees]\nbasket = []", "policy: fees.basket: the basket is empty"),
        ("[fees]\ntest_card = 3", "policy: fees.test_card: want a string"),
        ("[rollout]\nmax_attempts = 0", "policy: rollout.max_attempts: want a whole number ≥ 1"),
        ("[rollout]\nbackoff = 'fast'", "policy: rollout.backoff: not a duration: 'fast'"),
        ("[notices]\nwindow = '1 week'", "policy: notices.window: want a duration like 7d"),
        ("[notices]\nsms_price = '0.001'", "policy: notices.sms_price: 0.001 has more than 2"),
        ("replacement = 3", "policy: replacement: must be a table"),
        ("[x]\ny = 1", "policy: [x]: unknown section (known: replacement, fees, rollout"),
        ("nope", "policy: not TOML: "),
    ],
)
def test_policy_error_texts(toml: str, text: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(toml)
    assert str(info.value).startswith(text)


def test_every_section_round_trips_through_toml() -> None:
    policy = Policy(
        ReplacementPolicy(max_age_years=5, horizon_days=90, require=("qr",), fault_threshold=2),
        FeePolicy(notice_days=60, basket=(("10.00", "debit"),), test_amount="5.00"),
        RolloutPolicy(waves=(500_000, 1_000_000), max_failure_ppm=10_000, lease_s=30.0),
        NoticePolicy(hotline="+1 555 0100", quiet=(22 * 60, 6 * 60), digest_s=0, window_s=3600),
        SwapPolicy(advance_days=5, follow_up_days=3, follow_up="notice"),
    )
    again = Policy.from_toml(policy.to_toml(), "round-trip")
    for name in ("replacement", "fees", "rollout", "notices", "swaps"):
        assert getattr(again, name) == getattr(policy, name), name
    assert Policy().to_toml().startswith("# posfleet policy (from defaults)\n\n[replacement]\n")


def test_a_rejected_record_outside_a_file_names_the_record() -> None:
    error = RowError("terminal PS1", "", "tid", "TID T1 is in use by PS2")
    assert str(error) == "terminal PS1: tid: TID T1 is in use by PS2"
    rejected = RejectedFileError([error, RowError("terminal PS3", "", "", "gone")], where="links")
    assert str(rejected) == "links: 2 errors, nothing written" and rejected.exit_code == 2
    assert str(RejectedFileError([RowError("t.csv", 4, "", "bad")])) == (
        "t.csv: 1 error, nothing written"
    )
    assert isinstance(rejected, FleetError)


def test_parse_instant() -> None:
    assert parse_instant("2026-11-01 09:30") == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    for bad in ("2026-11-31", "2026-11-01T25:00", "yesterday"):
        with pytest.raises(ValueError, match="not a date"):
            parse_instant(bad)


def test_actions_and_status_stay_with_the_models(engine: Engine) -> None:
    from fleet.core import audit, models  # noqa: PLC0415
    from fleet.core.actor import ACTIONS  # noqa: PLC0415
    from fleet.core.status import Status  # noqa: PLC0415

    assert audit.ACTIONS is ACTIONS and models.Status is Status
    constraint = next(c for c in models.TERMINALS.constraints if c.name == "ck_terminal_status")
    assert all(f"'{s.value}'" in str(constraint.sqltext) for s in Status)  # type: ignore[attr-defined]
