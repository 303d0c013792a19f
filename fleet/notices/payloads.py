"""What each kind of notice carries: typed payloads, stored as JSON on the notice.

A producer (publishing, swaps) builds a :class:`FeeChange` or a :class:`SwapNotice` with
the types it knows (money in minor units with its currency, dates as dates); the outbox
stores :meth:`to_json`, and the texts read it back with :func:`payload_of`. The JSON keys
are the ones notices have always been stored with, so stored notices stay readable.

>>> p = payload_of("swap_done", {"swap": 3, "old": "PS1", "new": "PS2", "model": "PF-300",
...                              "tid": "T1", "date": "2026-12-01", "reason_code": "wear",
...                              "engineer": "", "version": 7})
>>> p.date, p.version, p.reason_code, payload_of("swap_done", p.to_json()) == p
(datetime.date(2026, 12, 1), 7, 'wear', True)

A payload carries a **reason code** (:mod:`fleet.notices.reasons`), never the operator's
free text: the texts word the code in the merchant's language. A notice stored before the
catalogue (a free-text ``reason`` key) reads as the generic code of its kind, so no
operator text queued earlier reaches a merchant either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

from fleet.core.errors import InputError

__all__ = [
    "KINDS",
    "LOOP_KINDS",
    "SWAP_KINDS",
    "FeeChange",
    "LoopNotice",
    "NoticePayload",
    "SwapNotice",
    "payload_of",
]

KINDS = ("fee_change", "swap_planned", "swap_done", "follow_up", "scam_warning", "opt_out_confirm")
SWAP_KINDS = ("swap_planned", "swap_done", "follow_up")


@dataclass(frozen=True, slots=True)
class FeeChange:
    """A merchant's fees change: the typical basket's fee before and after, in minor units
    of ``currency`` (ISO 4217 alphabetic)."""

    version: int
    old_version: int | None
    effective: datetime
    currency: str
    basket_old: int | None
    """None: the merchant had no table before."""
    basket_new: int
    direction: Literal["up", "down", "new"]
    reason_code: str = "fee_review"
    """A code of :mod:`fleet.notices.reasons` (the merchant reads its text)."""
    sales: int = 4
    basket_total: int | None = None
    kind: Literal["fee_change"] = "fee_change"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["kind"]
        doc["effective"] = self.effective.isoformat()
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeeChange:
        return cls(
            version=int(doc["version"]),
            old_version=doc.get("old_version"),
            effective=datetime.fromisoformat(doc["effective"]),
            currency=str(doc["currency"]),
            basket_old=doc["basket_old"],
            basket_new=int(doc["basket_new"]),
            direction=doc.get("direction", "new"),
            reason_code=str(doc.get("reason_code") or "fee_review"),
            sales=int(doc.get("sales", 4)),
            basket_total=doc.get("basket_total"),
        )


@dataclass(frozen=True, slots=True)
class SwapNotice:
    """A terminal swap: planned, done, or its follow-up."""

    kind: Literal["swap_planned", "swap_done", "follow_up"]
    swap: int
    old: str
    new: str | None
    model: str | None
    tid: str
    date: date
    """The visit (planned) or the swap (done), on the merchant's clock."""
    reason_code: str
    """A code of :mod:`fleet.notices.reasons` (the merchant reads its text)."""
    engineer: str = ""
    version: int | None = None
    """The fee table the new terminal carries (done and follow-up)."""

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["kind"]
        doc["date"] = self.date.isoformat()
        if self.kind == "swap_planned":
            del doc["version"]
        return doc

    @classmethod
    def from_json(cls, kind: str, doc: Mapping[str, Any]) -> SwapNotice:
        if kind not in SWAP_KINDS:
            raise InputError(f"unknown swap notice kind {kind!r}")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            swap=int(doc["swap"]),
            old=str(doc["old"]),
            new=doc.get("new"),
            model=doc.get("model"),
            tid=str(doc["tid"]),
            date=date.fromisoformat(str(doc["date"])[:10]),
            reason_code=str(doc.get("reason_code") or "other"),
            engineer=str(doc.get("engineer") or ""),
            version=doc.get("version"),
        )


LOOP_KINDS = ("scam_warning", "opt_out_confirm")


@dataclass(frozen=True, slots=True)
class LoopNotice:
    """What the loop sends on its own: a scam warning to a region's merchants, or the
    one confirmation of an SMS opt-out. No operator text: only the region's name."""

    kind: Literal["scam_warning", "opt_out_confirm"]
    region: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region}

    @classmethod
    def from_json(cls, kind: str, doc: Mapping[str, Any]) -> LoopNotice:
        if kind not in LOOP_KINDS:
            raise InputError(f"unknown notice kind {kind!r}")
        return cls(kind=kind, region=str(doc.get("region") or ""))  # type: ignore[arg-type]


NoticePayload = FeeChange | SwapNotice | LoopNotice


def payload_of(kind: str, doc: Mapping[str, Any]) -> NoticePayload:
    """The typed payload of a stored notice of ``kind`` (missing keys are errors)."""
    if kind == "fee_change":
        return FeeChange.from_json(doc)
    if kind in SWAP_KINDS:
        return SwapNotice.from_json(kind, doc)
    if kind in LOOP_KINDS:
        return LoopNotice.from_json(kind, doc)
    raise InputError(f"unknown notice kind {kind!r}")
