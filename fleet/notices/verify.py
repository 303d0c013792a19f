"""Verification: is a code one we sent, and what was sent to whom and when (the call
centre asks on every call; every check is audited).

Every check is also kept in the verification log (:mod:`fleet.notices.verify_log`:
who asked, from where, for which calling merchant), and a NOT GENUINE one emits the
``verify.not_genuine`` event in the same transaction (scam radar, webhooks).

It is the hot path of ``posfleet notices verify``: it reads and writes through the bare
clauses of :mod:`fleet.core.clauses` and imports nothing that builds SQLModel classes,
Jinja2 templates or fee tables (``tests/fleet/cli/test_cli_startup.py`` keeps it so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from fleet.core import audit

# The bare clauses under the models' names: the queries read as they do elsewhere.
from fleet.core.clauses import MERCHANT_CLAUSE as MERCHANTS
from fleet.core.clauses import MESSAGE_CLAUSE as MESSAGES
from fleet.core.clauses import NOTICE_CLAUSE as NOTICES
from fleet.core.clauses import now
from fleet.core.db import writer
from fleet.core.events import emit
from fleet.core.masking import mask_address
from fleet.notices.codes import normalise_code
from fleet.notices.verify_log import log_verification

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
    engine: Engine, code: str, *, actor: str, address: str = "", caller: str | None = None
) -> Verification:
    """Whether ``code`` is on a message we composed, and that message. Every check is
    audited (who asked about which code), so guessing shows up in the log; ``address``
    (where the check came from) and ``caller`` (the merchant calling, when the agent
    knows it) go into the verification log."""
    wanted = normalise_code(code)
    at = now()
    with writer(engine).begin() as conn:
        row = conn.execute(select(MESSAGES).where(MESSAGES.c.code == wanted)).first()
        audit.record(
            conn,
            actor=actor,
            action="verify",
            target=f"notice_code:{wanted}",
            details={"genuine": row is not None},
        )
        merchant_id = row.merchant_id if row is not None else caller
        region = (
            conn.execute(select(MERCHANTS.c.region).where(MERCHANTS.c.id == merchant_id)).scalar()
            if merchant_id
            else None
        )
        log_verification(
            conn, at=at, code=wanted, genuine=row is not None, actor=actor,
            message_id=row.id if row is not None else None, merchant_id=merchant_id,
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
            {"id": n.id, "kind": n.kind, "ref": n.ref, "queued_at": n.created_at.isoformat()}
            for n in conn.execute(
                select(NOTICES).where(NOTICES.c.message_id == row.id).order_by(NOTICES.c.id)
            )
        ]
        name = conn.execute(
            select(MERCHANTS.c.name).where(MERCHANTS.c.id == row.merchant_id)
        ).scalar_one()
    return Verification(wanted, True, dict(row._mapping), notices, name)
