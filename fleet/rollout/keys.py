"""Key rollouts: move the live terminals (of a group, or all) to a new MAC key version, in
waves, with the same workers, leases, failure threshold, controls, status and report as a
fee-table rollout (:mod:`.jobs`, :mod:`.worker`); each job is
:func:`fleet.device.rotate.rotate_terminal`.

:func:`create_key_rollout` checks the two master keys, registers both versions as issued
(:mod:`fleet.device.issued`: check values, never keys) and writes the rollout and its jobs
in one transaction. Working on it takes the key files of both versions (the terminals are
changed with the old key and confirmed with the new one).
"""

from __future__ import annotations

import hmac

from sqlalchemy import Connection, Engine, or_, select

from fleet.core.db import writer
from fleet.core.errors import ConflictError, InputError
from fleet.core.models import MERCHANTS, ROLLOUTS, TERMINALS
from fleet.core.policy import RolloutPolicy
from fleet.device.issued import register, registered
from fleet.device.keyring import KeyRing
from fleet.fees.group import Group
from fleet.fees.targets import LIVE, group_clause
from fleet.rollout.jobs import RolloutKind, RolloutState, insert_rollout
from protocols.mac import MasterKey

__all__ = ["create_key_rollout", "key_targets", "require_keys"]

_UNFINISHED = (RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.HALTED)


def key_targets(conn: Connection, group: Group) -> list[str]:
    """Serials (sorted) of the deployed and faulty terminals with a link whose merchant is
    in ``group`` (every such terminal, merchant or not, for all)."""
    t = TERMINALS
    stmt = (
        select(t.c.serial)
        .select_from(t.outerjoin(MERCHANTS, MERCHANTS.c.id == t.c.merchant_id))
        .where(t.c.status.in_(LIVE), t.c.link.is_not(None), t.c.link != "")
        .order_by(t.c.serial)
    )
    if not group.everyone:
        stmt = stmt.where(group_clause(group, conn.dialect.name))
    return list(conn.execute(stmt).scalars())


def _unfinished_key_rollout(conn: Connection) -> str | None:
    row = conn.execute(
        select(ROLLOUTS.c.id, ROLLOUTS.c.key_from, ROLLOUTS.c.key_version, ROLLOUTS.c.status)
        .where(
            ROLLOUTS.c.kind == RolloutKind.KEY, or_(*(ROLLOUTS.c.status == s for s in _UNFINISHED))
        )
        .order_by(ROLLOUTS.c.id)
    ).first()
    if row is None:
        return None
    return f"key rollout {row.id} (v{row.key_from} → v{row.key_version}) is {row.status}"


def create_key_rollout(
    engine: Engine,
    old: MasterKey,
    new: MasterKey,
    *,
    group: Group,
    policy: RolloutPolicy,
    actor: str,
    waves: tuple[int, ...] | None = None,
    max_failure_ppm: int | None = None,
    note: str = "",
    sources: tuple[str, str] = ("the old key", "the new key"),
) -> tuple[int, list[int]]:
    """Create a rollout moving terminals from master key ``old`` to ``new``; returns (id,
    terminals per wave). ``sources`` name the two keys in errors (their files).

    Refused: a new version not above the old one, the same key twice, a key whose version
    the fleet issued with another check value, a version below the newest issued, and a
    second key rollout while one is unfinished (running, paused or halted).
    """
    if new.version <= old.version:
        raise InputError(
            f"{sources[1]} is key version {new.version}: it must be above the old key's "
            f"version {old.version}"
        )
    if hmac.compare_digest(old.key, new.key):
        raise InputError(f"{sources[0]} and {sources[1]} hold the same key")
    with writer(engine).begin() as conn:
        busy = _unfinished_key_rollout(conn)
        if busy:
            raise ConflictError(f"{busy}: let it finish, or cancel it, first")
        newest = max(registered(conn), default=0)
        if new.version < newest:
            raise ConflictError(
                f"the fleet already issued key version {newest}: rotate to {newest} or above, "
                f"not to {new.version}"
            )
        register(conn, old, actor=actor, source=sources[0])
        register(conn, new, actor=actor, source=sources[1])
        serials = key_targets(conn, group)
        if not serials:
            raise ConflictError(
                "no deployed terminal with a link"
                + ("" if group.everyone else f" in {group.describe()}")
            )
        return insert_rollout(
            conn,
            {"kind": RolloutKind.KEY, "key_version": new.version, "key_from": old.version},
            serials,
            group=group,
            policy=policy,
            actor=actor,
            waves=waves,
            max_failure_ppm=max_failure_ppm,
            note=note,
            audit_as=(
                "key",
                {
                    "from_version": old.version,
                    "to_version": new.version,
                    "check_values": [old.check_value, new.check_value],
                },
            ),
        )


def require_keys(ring: KeyRing, rollout_id: int, old: int, new: int) -> None:
    """A worker on key rollout ``rollout_id`` (``old`` → ``new``) needs both keys: the
    change is signed with the old one, the confirmation with the new one."""
    missing = [v for v in (old, new) if v not in ring.masters]
    if missing:
        listed = " and ".join(f"v{v}" for v in missing)
        held = ", ".join(map(str, ring.versions)) or "none"
        raise InputError(
            f"rollout {rollout_id} changes terminals from key v{old} to v{new}: it needs the "
            f"key files of both, and {listed} is not among them (versions given: {held})"
        )
