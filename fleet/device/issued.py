"""The master key versions the fleet issued (table ``key_version``), and which terminals
hold which: the database side of key rotation. Never a key: a version, its check value
(KCV), who registered it and when.

* :func:`register` records a master key version (``posfleet keys register``; a key
  rollout registers both of its keys). A version registered with another check value is
  refused: two different keys of one version would split the fleet.
* :func:`attach` checks a :class:`~fleet.device.keyring.KeyRing` against the registry
  (each key file's check value must be its version's) and gives it the issued versions, so
  that a session can tell a terminal on a version the fleet never issued.
* :func:`census` counts the live terminals per key version (current and pending next) and
  lists those on versions the fleet never issued: ``posfleet keys list``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select

from fleet.core import audit
from fleet.core.models import ISSUED_KEYS, TERMINALS, now
from fleet.device.keyring import KeyFileError, KeyRing
from fleet.fees.targets import LIVE
from protocols.mac import MasterKey

__all__ = ["IssuedKey", "KeyCensus", "VersionCount", "attach", "census", "register", "registered"]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    version: int
    check_value: str
    registered_at: datetime
    registered_by: str
    note: str


def registered(conn: Connection) -> dict[int, IssuedKey]:
    """Every issued version, by version."""
    return {
        r.version: IssuedKey(r.version, r.check_value, r.registered_at, r.registered_by, r.note)
        for r in conn.execute(select(ISSUED_KEYS).order_by(ISSUED_KEYS.c.version))
    }


def _mismatch(master: MasterKey, issued: IssuedKey, source: str) -> KeyFileError:
    return KeyFileError(
        f"{source} is master key version {master.version} with check value "
        f"{master.check_value}, but the fleet issued version {master.version} with check "
        f"value {issued.check_value} (registered {issued.registered_at:%Y-%m-%d} by "
        f"{issued.registered_by}): a different key"
    )


def register(
    conn: Connection, master: MasterKey, *, actor: str, note: str = "", source: str = ""
) -> bool:
    """Record ``master``'s version and check value as issued (audited). False when it was
    already, with the same check value; :class:`KeyFileError` when with another."""
    known = conn.execute(select(ISSUED_KEYS).where(ISSUED_KEYS.c.version == master.version)).first()
    if known is not None:
        issued = IssuedKey(
            known.version, known.check_value, known.registered_at, known.registered_by, ""
        )
        if issued.check_value != master.check_value:
            raise _mismatch(master, issued, source or f"key v{master.version}")
        return False
    at = now()
    conn.execute(
        insert(ISSUED_KEYS).values(
            version=master.version,
            check_value=master.check_value,
            registered_at=at,
            registered_by=actor,
            note=note,
        )
    )
    audit.record(
        conn,
        actor=actor,
        action="key",
        target=f"key:v{master.version}",
        details={"registered": True, "check_value": master.check_value},
        reason=note,
        at=at,
    )
    return True


def attach(conn: Connection, ring: KeyRing) -> KeyRing:
    """``ring`` with the issued versions, each of its keys checked against the registry
    (:class:`KeyFileError` for a key file whose check value is not its version's)."""
    issued = registered(conn)
    for version, master in ring.masters.items():
        known = issued.get(version)
        if known is not None and known.check_value != master.check_value:
            raise _mismatch(master, known, ring.files.get(version, f"key v{version}"))
    return ring.with_issued(issued)


@dataclass(frozen=True, slots=True)
class VersionCount:
    version: int
    issued: IssuedKey | None
    current: int
    """Live terminals using this version."""
    pending: int
    """Live terminals holding it as their next key, awaiting confirmation."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "issued": self.issued is not None,
            "check_value": self.issued.check_value if self.issued else None,
            "registered_at": self.issued.registered_at if self.issued else None,
            "registered_by": self.issued.registered_by if self.issued else None,
            "terminals": self.current,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class KeyCensus:
    versions: list[VersionCount]
    unreported: int
    """Live terminals that never reported a key version (never signed on since)."""
    unissued: list[dict[str, Any]] = field(default_factory=list)
    """Live terminals on a version the fleet never issued: serial, merchant, versions, last
    seen (empty while no version is registered: nothing to tell them by)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": [v.as_dict() for v in self.versions],
            "unreported": self.unreported,
            "unissued": self.unissued,
        }


def census(engine: Engine) -> KeyCensus:
    """Live terminals per key version, and those on versions never issued."""
    t = TERMINALS
    live = t.c.status.in_(LIVE)
    with engine.connect() as conn:
        issued = registered(conn)
        current: dict[int, int] = dict(
            conn.execute(
                select(t.c.key_version, func.count())
                .where(live, t.c.key_version.is_not(None))
                .group_by(t.c.key_version)
            ).all()
        )
        pending: dict[int, int] = dict(
            conn.execute(
                select(t.c.key_next, func.count())
                .where(live, t.c.key_next > 0)
                .group_by(t.c.key_next)
            ).all()
        )
        unreported = conn.execute(
            select(func.count()).where(live, t.c.key_version.is_(None))
        ).scalar_one()
        foreign: list[dict[str, Any]] = []
        if issued:
            ok = select(ISSUED_KEYS.c.version)
            rows = conn.execute(
                select(t.c.serial, t.c.merchant_id, t.c.key_version, t.c.key_next, t.c.last_seen)
                .where(
                    live,
                    or_(
                        t.c.key_version.not_in(ok),
                        and_(t.c.key_next > 0, t.c.key_next.not_in(ok)),
                    ),
                )
                .order_by(t.c.serial)
                .limit(1000)
            )
            foreign = [dict(r._mapping) for r in rows]
    versions = sorted(set(issued) | set(current) | set(pending))
    return KeyCensus(
        [
            VersionCount(v, issued.get(v), int(current.get(v, 0)), int(pending.get(v, 0)))
            for v in versions
        ],
        int(unreported),
        foreign,
    )
