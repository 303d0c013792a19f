"""The call centre: verify a reference, notices, and what a merchant said (a complaint,
an opt-out, a follow-up outcome, a swap's follow-up: reached or not, satisfaction, issue).

Verifying is throttled per user and per client address (every check counts, so codes
cannot be enumerated through the console); each check is audited and logged, a NOT
GENUINE one kept for the scam report (:func:`fleet.notices.verify.verify`). Contacts
are masked for the roles that must not see them whole.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from fleet.access import Perm, Principal, ThrottledError, sees_contacts
from fleet.access import throttle as throttles
from fleet.core.db import writer
from fleet.core.errors import InputError
from fleet.core.policy import Policy
from fleet.notices.listing import list_notices, notice_detail
from fleet.notices.preferences import record_contact, record_follow_up
from fleet.notices.verify import verify
from fleet.swaps.followup import record_follow_up as record_swap_follow_up
from fleet.web.deps import DB, TEXT, Form, client_address, get_settings, need
from fleet.web.problems import CONFLICT, PROBLEM_RESPONSES
from fleet.web.render import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["call centre"], responses=PROBLEM_RESPONSES)

Verifier = Annotated[Principal, Depends(need(Perm.VERIFY))]
NoticeReader = Annotated[Principal, Depends(need(Perm.NOTICES))]
Recorder = Annotated[Principal, Depends(need(Perm.CONTACT))]
_MERCHANT = re.compile(r"[A-Za-z0-9]{1,15}")


def _throttled_verify(
    request: Request, engine: Engine, me: Principal, code: str, caller: str | None
) -> dict[str, Any]:
    limits = get_settings(request).limits
    address = client_address(request)
    with writer(engine).begin() as conn:
        by_user = throttles.hit(conn, f"verify:user:{me.actor}", limits.verify_user)
        by_addr = throttles.hit(conn, f"verify:addr:{address}", limits.verify_address)
    if by_user > limits.verify_user.limit or by_addr > limits.verify_address.limit:
        raise ThrottledError(
            "too many verifications: wait before checking more references",
            retry_after=limits.verify_user.retry_after(),
        )
    if caller is not None and not _MERCHANT.fullmatch(caller):
        raise InputError("a merchant id is 1-15 letters or digits", where="caller")
    if not code.strip() or len(code) > 40:
        raise InputError("type the reference as the merchant reads it", where="code")
    found = verify(engine, code, actor=me.actor, address=address, caller=caller or None)
    return found.as_dict()


@pages.get("/verify")
def verify_form(request: Request, me: Verifier) -> Response:
    return page(request, "verify.html", result=None, code="", caller="")


@pages.post("/verify")
def verify_page(request: Request, engine: DB, me: Verifier, form: Form) -> Response:
    code, caller = form.get("code", "")[:40], form.get("caller", "").strip()[:15]
    result = _throttled_verify(request, engine, me, code, caller or None)
    return page(request, "verify.html", result=result, code=code, caller=caller)


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1, max_length=40, pattern=TEXT, description="The reference, as read out"
    )
    caller: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]{1,15}$", description="The calling merchant's id"
    )


class VerifyAnswer(BaseModel):
    code: str
    genuine: bool
    merchant_id: str | None = None
    merchant: str | None = None
    channel: str | None = None
    to: str | None = None
    status: str | None = None
    composed_at: str | None = None
    sent_at: str | None = None
    kinds: list[str] | None = None
    subject: str | None = None
    body: str | None = None
    notices: list[dict[str, Any]] | None = None


@api.post("/verify", response_model=VerifyAnswer, summary="Is this reference one we sent?")
def verify_api(request: Request, body: VerifyRequest, engine: DB, me: Verifier) -> dict[str, Any]:
    return _throttled_verify(request, engine, me, body.code, body.caller)


Text = Annotated[str | None, Query(max_length=40, pattern=TEXT)]
NoticeStatus = Annotated[
    Literal["queued", "composed", "sent", "failed", "cancelled", ""] | None, Query()
]
NoticeKind = Annotated[
    Literal["fee_change", "swap_planned", "swap_done", "follow_up", ""] | None, Query()
]
Before = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def _notices(
    engine: Engine, me: Principal, status: str | None, kind: str | None, merchant: str | None,
    before: int | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    return list_notices(
        engine, status=status or None, kind=kind or None, merchant=merchant or None,
        limit=limit, before=before, mask=not sees_contacts(me.role),
    )  # fmt: skip


@pages.get("/notices")
def notices_page(
    request: Request, engine: DB, me: NoticeReader, status: NoticeStatus = None,
    kind: NoticeKind = None, merchant: Text = None, before: Before = None,
) -> Response:  # fmt: skip
    rows = _notices(engine, me, status, kind, merchant, before, 51)
    more = len(rows) > 50
    rows = rows[:50]
    filters = {"status": status or "", "kind": kind or "", "merchant": merchant or ""}
    nxt = rows[-1]["id"] if more and rows else None
    return page(request, "notices.html", rows=rows, filters=filters, next_before=nxt)


@pages.get("/notices/{notice_id}")
def notice_page(
    request: Request, notice_id: Annotated[int, Path(ge=1, le=2**31 - 1)], engine: DB,
    me: NoticeReader,
) -> Response:  # fmt: skip
    found = notice_detail(engine, notice_id, mask=not sees_contacts(me.role))
    return page(request, "notice.html", n=found)


class NoticeRow(BaseModel):
    id: int
    kind: str
    merchant_id: str
    ref: str
    status: str
    created_at: str
    code: str | None
    channel: str | None
    to: str
    sent_at: str | None
    error: str | None


@api.get("/notices", response_model=list[NoticeRow], summary="Notices, newest first")
def notices_api(
    engine: DB, me: NoticeReader, status: NoticeStatus = None, kind: NoticeKind = None,
    merchant: Text = None, before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = _notices(engine, me, status, kind, merchant, before, limit)
    for r in rows:
        for key in ("created_at", "sent_at"):
            r[key] = r[key].isoformat() if r.get(key) else None
    return rows


@api.get("/notices/{notice_id}", summary="One notice, its message and history")
def notice_api(
    notice_id: Annotated[int, Path(ge=1, le=2**31 - 1)], engine: DB, me: NoticeReader
) -> dict[str, Any]:
    from fleet.web.routes.fleetview import _jsonable  # noqa: PLC0415

    found: dict[str, Any] = _jsonable(
        notice_detail(engine, notice_id, mask=not sees_contacts(me.role))
    )
    return found


ContactKind = Literal["complaint", "opt_out", "opt_in", "follow_up"]


def _record(
    engine: Engine, merchant_id: str, kind: str, channel: str, note: str, actor: str
) -> None:
    if not _MERCHANT.fullmatch(merchant_id):
        raise InputError("a merchant id is 1-15 letters or digits", where="merchant")
    if kind == "follow_up":
        record_follow_up(engine, merchant_id, channel, actor=actor, note=note)
        return
    record_contact(engine, merchant_id, kind, [channel], actor=actor, note=note)


@pages.post("/merchants/{merchant_id}/contact")
def contact_page(
    merchant_id: Annotated[str, Path(max_length=15, pattern=TEXT)], engine: DB, me: Recorder,
    form: Form,
) -> Response:  # fmt: skip
    _record(engine, merchant_id[:15], form.get("kind", ""), form.get("channel", ""),
            form.get("note", "")[:500], me.actor)  # fmt: skip
    back = form.get("back", "")
    target = back if back.startswith("/") and not back.startswith("//") else "/verify"
    return RedirectResponse(target, status_code=303)


class ContactEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ContactKind
    channel: Literal["sms", "email", "call"]
    note: str = Field(min_length=1, max_length=500, description="What the merchant said, in a line")


@api.post("/merchants/{merchant_id}/contact-events", status_code=201, responses=CONFLICT,
          summary="Record a complaint, an opt-out/opt-in or a follow-up outcome")  # fmt: skip
def contact_api(
    merchant_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,15}$")], body: ContactEvent,
    engine: DB, me: Recorder,
) -> dict[str, str]:  # fmt: skip
    _record(engine, merchant_id, body.kind, body.channel, body.note, me.actor)
    return {"merchant_id": merchant_id, "recorded": body.kind}


SwapId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _swap_follow_up(
    request: Request, engine: Engine, swap_id: int, reached: bool, satisfaction: int | None,
    issue: str | None, actor: str,
) -> dict[str, Any]:  # fmt: skip
    """:func:`fleet.swaps.followup.record_follow_up` as the signed-in user (audited)."""
    policy = Policy.load(get_settings(request).policy_path)
    return record_swap_follow_up(
        engine, swap_id, reached=reached, satisfaction=satisfaction, issue=issue,
        actor=actor, policy=policy,
    ).as_dict()  # fmt: skip


def _form_reached(form: dict[str, str]) -> tuple[bool, int | None, str | None]:
    reached = form.get("reached", "")
    if reached not in ("yes", "no"):
        raise InputError("was the merchant reached? yes or no", where="reached")
    text = form.get("satisfaction", "").strip()
    if text and not (text.isdigit() and len(text) == 1):
        raise InputError(f"{text[:10]!r} (want 1 to 5)", where="satisfaction")
    issue = form.get("issue", "")[:501] or None
    return reached == "yes", int(text) if text else None, issue


@pages.post("/swaps/{swap_id}/follow-up")
def swap_follow_up_page(
    request: Request, swap_id: SwapId, engine: DB, me: Recorder, form: Form
) -> Response:
    reached, satisfaction, issue = _form_reached(form)
    if not reached:  # the form's other fields are for a merchant reached
        satisfaction, issue = None, None
    _swap_follow_up(request, engine, swap_id, reached, satisfaction, issue, me.actor)
    back = form.get("back", "")
    target = back if back.startswith("/") and not back.startswith("//") else "/verify"
    return RedirectResponse(target, status_code=303)


class SwapReached(BaseModel):
    """The merchant was reached: how satisfied they are, and an issue if they raised one."""

    model_config = ConfigDict(extra="forbid")

    reached: Literal[True]
    satisfaction: int = Field(ge=1, le=5, description="1 (unhappy) to 5 (very happy)")
    issue: str | None = Field(
        default=None, max_length=500, pattern=TEXT,
        description="An issue the merchant raised (open until closed)",
    )  # fmt: skip


class SwapNotReached(BaseModel):
    """The merchant was not reached: another try by the policy, or ``unreached``."""

    model_config = ConfigDict(extra="forbid")

    reached: Literal[False]


class SwapFollowUpAnswer(BaseModel):
    swap: int
    state: str
    attempts: int
    next_due: str | None
    satisfaction: int | None
    issue_open: bool


@api.post(
    "/swaps/{swap_id}/follow-up", status_code=201, response_model=SwapFollowUpAnswer,
    responses=CONFLICT, summary="Record a done swap's follow-up (回访): reached or not",
)  # fmt: skip
def swap_follow_up_api(
    request: Request, swap_id: SwapId, body: SwapReached | SwapNotReached, engine: DB,
    me: Recorder,
) -> dict[str, Any]:  # fmt: skip
    if isinstance(body, SwapReached):
        return _swap_follow_up(request, engine, swap_id, True, body.satisfaction, body.issue,
                               me.actor)  # fmt: skip
    return _swap_follow_up(request, engine, swap_id, False, None, None, me.actor)
