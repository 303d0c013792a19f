"""Key rings, the issued key versions, and the rules of a key rollout (no terminal here:
the wire is in tests/fleet/rollout/test_key_rollout_e2e.py)."""

from __future__ import annotations

import base64
import stat
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError
from fleet.core.models import AUDIT, ISSUED_KEYS, JOBS, ROLLOUTS, TERMINALS
from fleet.core.policy import ReplacementPolicy, RolloutPolicy
from fleet.device import (
    KeyFileError,
    KeyRing,
    MissingKeyError,
    UnissuedKeyError,
    attach,
    census,
    register,
)
from fleet.fees import Group, parse_group
from fleet.replacements import flag
from fleet.rollout import RolloutKind, cancel, create_key_rollout, status
from fleet.rollout.keys import key_targets, require_keys
from protocols.keys import KeyVersions
from protocols.mac import MasterKey, write_master_key_file

K1 = MasterKey(1, bytes(range(16)))
K2 = MasterKey(2, bytes(range(16, 32)))
K3 = MasterKey(3, bytes(range(32, 48)))


def _write(path: Path, master: MasterKey) -> Path:
    write_master_key_file(path, master)
    return path


def _secrets(*masters: MasterKey) -> list[str]:
    out = []
    for m in masters:
        out += [m.key.hex(), m.key.hex().upper(), base64.b64encode(m.key).decode()]
    return out


def test_a_ring_reads_files_and_directories(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    _write(keys / "v1.key", K1)
    _write(keys / "v2.key", K2)
    (keys / "notes.txt").write_text("not a key")
    extra = _write(tmp_path / "k3", K3)
    again = _write(tmp_path / "v2-copy.key", K2)  # the same key twice is one version
    ring = KeyRing.read([keys, extra, again])
    assert ring.versions == (1, 2, 3)
    assert ring.masters[2] == K2 and ring.files[3] == str(extra)
    assert repr(ring) == str(ring) == "KeyRing(versions=[1, 2, 3])"
    assert [k.version for k in ring.terminal_keys("PS00000001")] == [1, 2, 3]
    assert ring.terminal_key(2, "PS00000001") == K2.terminal_key("PS00000001")


@pytest.mark.parametrize("case", ["clash", "empty dir", "bad file", "missing"])
def test_bad_key_files_are_named_never_shown(tmp_path: Path, case: str) -> None:
    other = MasterKey(2, bytes(range(100, 116)))
    paths: list[Path]
    if case == "clash":
        paths = [_write(tmp_path / "a.key", K2), _write(tmp_path / "b.key", other)]
        match = rf"a\.key and .*b\.key are both master key version 2.*{K2.check_value}"
    elif case == "empty dir":
        (tmp_path / "d").mkdir()
        paths, match = [tmp_path / "d"], r"no \*\.key file in directory"
    elif case == "bad file":
        (tmp_path / "x.key").write_text(K1.key.hex()[:-1] + "g\n")
        (tmp_path / "x.key").chmod(0o600)
        paths, match = [tmp_path / "x.key"], r"x\.key.*not a hex digit"
    else:
        paths, match = [tmp_path / "gone.key"], r"gone\.key: cannot read"
    with pytest.raises(KeyFileError, match=match) as info:
        KeyRing.read(paths)
    assert info.value.exit_code == 2
    assert not any(s in str(info.value) for s in _secrets(K1, K2, other))


def test_which_versions_a_ring_can_sign_and_tell() -> None:
    ring = KeyRing.of(K1, K2)
    ring.check_signing("PS1", KeyVersions(1))
    ring.check_signing("PS1", KeyVersions(1, 2))
    ring.check_signing("PS1", KeyVersions(2))
    with pytest.raises(UnissuedKeyError, match="reports key version 9, which the fleet never"):
        ring.check_issued("PS1", KeyVersions(9))
    with pytest.raises(UnissuedKeyError, match=r"key version 1 \(next 9\)") as info:
        ring.check_signing("PS1", KeyVersions(1, 9))  # a change to a rogue key, unconfirmed
    assert info.value.reason == "unissued_key" and info.value.held == KeyVersions(1, 9)
    assert str(info.value).startswith("PS1: ") and not info.value.retryable
    issued = ring.with_issued([1, 2, 3])
    issued.check_issued("PS1", KeyVersions(3))
    with pytest.raises(MissingKeyError, match="needs master key version 3") as missing:
        issued.check_signing("PS1", KeyVersions(3))
    assert missing.value.reason == "missing_key"
    KeyRing().check_issued("PS1", KeyVersions(7))  # nothing known: nothing to tell by
    with pytest.raises(KeyFileError, match="two different master keys of version 2"):
        KeyRing.of(K2, MasterKey(2, bytes(16)))


def test_registering_and_attaching(engine: Engine, tmp_path: Path) -> None:
    with writer(engine).begin() as conn:
        assert register(conn, K1, actor="officer", note="the fleet's first key")
        assert not register(conn, K1, actor="officer")
        with pytest.raises(KeyFileError, match="a different key"):
            register(conn, MasterKey(1, bytes(16)), actor="officer", source="rogue.key")
        ring = attach(conn, KeyRing.of(K2))
        assert ring.issued == frozenset({1}) and ring.known == frozenset({1, 2})
        with pytest.raises(KeyFileError, match=r"v1\.key is master key version 1 with check"):
            attach(conn, KeyRing.read([_write(tmp_path / "v1.key", MasterKey(1, bytes(16)))]))
    with engine.connect() as conn:
        rows = conn.execute(select(ISSUED_KEYS)).all()
        audits = conn.execute(select(AUDIT).where(AUDIT.c.action == "key")).all()
    assert [(r.version, r.check_value, r.registered_by) for r in rows] == [
        (1, K1.check_value, "officer")
    ]
    assert len(audits) == 1 and audits[0].target == "key:v1"
    text = repr([tuple(r) for r in rows]) + repr([tuple(a) for a in audits])
    assert not any(s in text for s in _secrets(K1))


def _set_keys(engine: Engine, versions: dict[str, tuple[int, int]]) -> None:
    with writer(engine).begin() as conn:
        for serial, (current, nxt) in versions.items():
            conn.execute(
                update(TERMINALS)
                .where(TERMINALS.c.serial == serial)
                .values(key_version=current, key_next=nxt)
            )


def test_census_counts_versions_and_names_unissued_terminals(loaded: Engine) -> None:
    with loaded.connect() as conn:
        live = conn.execute(
            select(TERMINALS.c.serial)
            .where(TERMINALS.c.status.in_(("deployed", "faulty")))
            .order_by(TERMINALS.c.serial)
        ).scalars().all()  # fmt: skip
    _set_keys(loaded, {live[0]: (1, 0), live[1]: (1, 2), live[2]: (2, 0), live[3]: (1, 9)})
    _set_keys(loaded, {live[4]: (7, 0)})
    found = census(loaded)
    assert found.unissued == [], "nothing registered yet: nothing to tell by"
    with writer(loaded).begin() as conn:
        register(conn, K1, actor="t")
        register(conn, K2, actor="t")
    found = census(loaded)
    counts = {v.version: (v.issued is not None, v.current, v.pending) for v in found.versions}
    assert counts == {1: (True, 3, 0), 2: (True, 1, 1), 7: (False, 1, 0), 9: (False, 0, 1)}
    assert found.unreported == len(live) - 5
    assert [(u["serial"], u["key_version"], u["key_next"]) for u in found.unissued] == [
        (live[3], 1, 9),
        (live[4], 7, 0),
    ]
    assert found.as_dict()["versions"][0]["check_value"] == K1.check_value
    # the same terminals are replacements: P1, due today, whatever else they have
    today = date(2026, 12, 1)
    keyed = {
        r.serial: r
        for r in flag(loaded, ReplacementPolicy(), today)
        if any(x.code == "key" for x in r.reasons)
    }
    assert sorted(keyed) == [live[3], live[4]]
    assert {(r.priority, r.replace_by) for r in keyed.values()} == {(1, today)}
    assert keyed[live[3]].reasons[-1].detail == (
        "reported key version 1 (next 9), which the fleet never issued: it may be compromised"
    )


def test_key_rollout_rules(loaded: Engine) -> None:
    policy = RolloutPolicy()
    with pytest.raises(InputError, match="must be above the old key's version 2"):
        create_key_rollout(loaded, K2, K1, group=Group(), policy=policy, actor="t")
    with pytest.raises(InputError, match="hold the same key"):
        create_key_rollout(
            loaded, K1, MasterKey(2, K1.key), group=Group(), policy=policy, actor="t"
        )
    with pytest.raises(ConflictError, match="no deployed terminal with a link"):
        create_key_rollout(loaded, K1, K2, group=Group(), policy=policy, actor="t")
    with loaded.connect() as conn:
        assert key_targets(conn, Group()) == []
        assert conn.execute(select(ISSUED_KEYS)).all() == [], "a refused rollout registers nothing"
    with writer(loaded).begin() as conn:
        serials = conn.execute(
            select(TERMINALS.c.serial).where(TERMINALS.c.status == "deployed").limit(30)
        ).scalars().all()  # fmt: skip
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial.in_(serials))
            .values(link="socket://127.0.0.1:9")
        )
    rid, sizes = create_key_rollout(
        loaded, K1, K2, group=Group(), policy=policy, actor="t", waves=(100_000, 1_000_000)
    )
    assert sizes == [3, 27]
    info = status(loaded, rid)
    assert (info.kind, info.version, info.key_from, info.what) == (
        RolloutKind.KEY, 2, 1, "key v1 → v2",
    )  # fmt: skip
    assert info.as_dict()["kind"] == "key" and info.as_dict()["from_version"] == 1
    with pytest.raises(ConflictError, match=rf"key rollout {rid} \(v1 → v2\) is running"):
        create_key_rollout(loaded, K2, K3, group=Group(), policy=policy, actor="t")
    cancel(loaded, rid, actor="t")
    with pytest.raises(KeyFileError, match=r"issued version 2 with check value .*a different key"):
        create_key_rollout(
            loaded, K1, MasterKey(2, bytes(16)), group=Group(), policy=policy, actor="t"
        )
    rid2, _ = create_key_rollout(loaded, K2, K3, group=Group(), policy=policy, actor="t")
    cancel(loaded, rid2, actor="t")
    with pytest.raises(ConflictError, match="already issued key version 3: rotate to 3 or above"):
        create_key_rollout(loaded, K1, K2, group=Group(), policy=policy, actor="t")
    with loaded.connect() as conn:
        rows = conn.execute(select(ROLLOUTS).order_by(ROLLOUTS.c.id)).all()
        jobs = conn.execute(select(JOBS.c.serial).where(JOBS.c.rollout_id == rid2)).all()
        issued = conn.execute(select(ISSUED_KEYS.c.version)).scalars().all()
        audits = conn.execute(select(AUDIT.c.action, AUDIT.c.target, AUDIT.c.details)).all()
    assert [(r.kind, r.version, r.key_from, r.key_version) for r in rows] == [
        ("key", None, 1, 2),
        ("key", None, 2, 3),
    ]
    assert len(jobs) == 30 and sorted(issued) == [1, 2, 3]
    assert ("key", f"rollout:{rid}") in {(a.action, a.target) for a in audits}
    assert not any(s in repr(audits) for s in _secrets(K1, K2, K3))
    with loaded.connect() as conn:  # a group narrows the terminals as for fee tables
        some = key_targets(conn, parse_group("region=east"))
    assert 0 < len(some) < 30
    require_keys(KeyRing.of(K1, K2), 1, 1, 2)
    with pytest.raises(InputError, match=r"v1 is not among them \(versions given: 2, 3\)"):
        require_keys(KeyRing.of(K2, K3), 1, 1, 2)


def test_the_kind_check_holds_in_the_database(loaded: Engine) -> None:
    from sqlalchemy import insert  # noqa: PLC0415
    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    from fleet.core.models import now  # noqa: PLC0415

    base = {"group": {}, "waves": [1_000_000], "status": "running", "wave": 0,
            "created_at": now(), "created_by": "t", "note": ""}  # fmt: skip
    with pytest.raises(IntegrityError), writer(loaded).begin() as conn:
        conn.execute(insert(ROLLOUTS).values(kind="key", **base))  # no key versions
    with pytest.raises(IntegrityError), writer(loaded).begin() as conn:
        conn.execute(insert(ROLLOUTS).values(kind="fees", **base))  # no table


def test_key_files_are_written_private(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.key", K2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
