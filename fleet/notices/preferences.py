"""Contact preferences: opt-outs, opt-ins and complaints, per merchant and channel."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, insert, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import CONTACT_EVENTS, MERCHANTS, now
from fleet.core.values import CHANNELS

__all__ = ["CONTACT_KINDS", "ContactError", "record_contact", "record_follow_up"]

CONTACT_KINDS = ("opt_out", "opt_in", "complaint")


class ContactError(InputError):
    """A contact change that is not valid (an unknown kind or channel)."""


def record_contact(
    engine: Engine,
    merchant_id: str,
    kind: str,
    channels: Iterable[str],
    *,
    actor: str,
    note: str = "",
) -> list[str]:
    """Record an opt-out, opt-in or complaint on ``channels``; return the merchant's
    opted-out channels after it. A complaint about a channel stops its use, like an
    opt-out, and is kept as a complaint."""
    if kind not in CONTACT_KINDS:
        raise ContactError(f"{kind!r}: want opt_out, opt_in or complaint")
    chosen = list(dict.fromkeys(channels))
    bad = [c for c in chosen if c not in CHANNELS]
    if bad or not chosen:
        raise ContactError(f"channel {', '.join(bad) or '(none)'}: want {', '.join(CHANNELS)}")
    at = now()
    with writer(engine).begin() as conn:
        row = conn.execute(select(MERCHANTS.c.opt_out).where(MERCHANTS.c.id == merchant_id)).first()
        if row is None:
            raise NotFoundError(f"unknown merchant {merchant_id}")
        before = list(row.opt_out or [])
        if kind == "opt_in":
            after = [c for c in before if c not in chosen]
        else:
            after = before + [c for c in chosen if c not in before]
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(opt_out=after))
        conn.execute(
            insert(CONTACT_EVENTS),
            [
                {"merchant_id": merchant_id, "kind": kind, "channel": c, "note": note,
                 "at": at, "actor": actor}
                for c in chosen
            ],
        )  # fmt: skip
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"merchant:{merchant_id}",
            details={"contact": kind, "channels": chosen, "opt_out": [before, after]},
            reason=note,
            at=at,
        )
    return after


def record_follow_up(
    engine: Engine, merchant_id: str, channel: str, *, actor: str, note: str
) -> None:
    """Record a follow-up call's outcome (reached or not, satisfaction, an issue) as the
    agent wrote it: a ``follow_up`` contact event, audited; no preference changes."""
    if channel not in CHANNELS:
        raise ContactError(f"channel {channel}: want {', '.join(CHANNELS)}")
    if not note.strip():
        raise ContactError("a follow-up outcome needs a note (reached? satisfied? issue?)")
    at = now()
    with writer(engine).begin() as conn:
        if (
            conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.id == merchant_id)).first()
            is None
        ):
            raise NotFoundError(f"unknown merchant {merchant_id}")
        conn.execute(
            insert(CONTACT_EVENTS).values(
                merchant_id=merchant_id, kind="follow_up", channel=channel, note=note[:500],
                at=at, actor=actor,
            )
        )  # fmt: skip
        audit.record(
            conn, actor=actor, action="contact", target=f"merchant:{merchant_id}",
            details={"follow_up": channel}, reason=note[:500], at=at,
        )  # fmt: skip
