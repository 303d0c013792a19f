"""Verification: is a code one we sent, and what was sent to whom and when (the call
centre asks on every call; every check is audited).

Every check is also kept in the verification log (:mod:`fleet.notices.verify_log`:
who asked, from where, for which calling merchant), and a NOT GENUINE one emits the
``verify.not_genuine`` event in the same transaction (scam radar, webhooks).

It is the hot path of ``posfleet notices verify``: it runs on plain DB-API
(:mod:`fleet.core.dbapi`: sqlite3 or psycopg) the SQL that SQLAlchemy compiles from the
bare clauses of :mod:`fleet.core.clauses` (kept in :mod:`fleet.core.verify_sql`), and
imports neither SQLAlchemy nor anything that builds SQLModel classes, Jinja2 templates or
fee tables (``tests/fleet/cli/test_cli_startup.py`` keeps it so). Given an engine (the web
console), it runs the same statements on a connection of the engine's pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet.core import audit
from fleet.core.clock import now
from fleet.core.dbapi import QuickDatabase
from fleet.core.events import emit
from fleet.core.masking import mask_address
from fleet.notices.codes import normalise_code
from fleet.notices.verify_log import log_verification

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["Verification", "verify"]


@dataclass(frozen=True)
class Verification:
    code: str
    genuine: bool
    message: dict[str, Any] | None = None
    notices: list[dict[str, Any]] = field(default_factory=list)
    merchant: str = ""

    def as_dict(self) -> dict[str, Any]:
        if not self.genuine or self.message is None:
            return {"code": self.code, "genuine": False}
        m = self.message
        return {
            "code": self.code,
            "genuine": True,
            "merchant_id": m["merchant_id"],
            "merchant": self.merchant,
            "channel": m["channel"],
            "to": mask_address(m["address"]),
            "status": m["status"],
            "composed_at": m["created_at"].isoformat(),
            "sent_at": m["sent_at"].isoformat() if m["sent_at"] else None,
            "kinds": m["kinds"],
            "subject": m["subject"],
            "body": m["body"],
            "notices": self.notices,
        }


def verify(
    db: Engine | QuickDatabase,
    code: str,
    *,
    actor: str,
    address: str = "",
    caller: str | None = None,
) -> Verification:
    """Whether ``code`` is on a message we composed, and that message. Every check is
    audited (who asked about which code), so guessing shows up in the log; ``address``
    (where the check came from) and ``caller`` (the merchant calling, when the agent
    knows it) go into the verification log. The check, its audit entry, its log row and
    (NOT GENUINE) its event are one transaction."""
    wanted = normalise_code(code)
    at = now()
    quick = db if isinstance(db, QuickDatabase) else QuickDatabase.from_engine(db)
    try:
        with quick.begin() as conn:
            row = conn.first("message_by_code", code=wanted)
            audit.record(
                conn,
                actor=actor,
                action="verify",
                target=f"notice_code:{wanted}",
                details={"genuine": row is not None},
            )
            merchant_id = row["merchant_id"] if row is not None else caller
            region = conn.scalar("merchant_region", id=merchant_id) if merchant_id else None
            log_verification(
                conn, at=at, code=wanted, genuine=row is not None, actor=actor,
                message_id=row["id"] if row is not None else None, merchant_id=merchant_id,
                region=region, address=address,
            )  # fmt: skip
            if row is None:
                emit(
                    conn,
                    "verify.not_genuine",
                    {"code": wanted, "caller": caller, "region": region, "checked_by": actor},
                    at=at,
                )
                return Verification(wanted, False)
            notices = [
                {"id": n["id"], "kind": n["kind"], "ref": n["ref"],
                 "queued_at": n["created_at"].isoformat()}
                for n in conn.rows("notices_of_message", message_id=row["id"])
            ]  # fmt: skip
            name = conn.scalar_one("merchant_name", id=row["merchant_id"])
    finally:
        if quick is not db:
            quick.close()
    return Verification(wanted, True, row, notices, name)
