"""What comes back after a notice: provider callbacks, bounces, replies, scam complaints.

==============================================  ===============================================
route                                           does
==============================================  ===============================================
``POST /api/v1/hooks/sms/{provider}/status``    a status callback (Twilio's form or JSON):
                                                the message's delivery state, once
``POST /api/v1/hooks/sms/{provider}/inbound``   a merchant's SMS reply (Twilio's form or JSON)
``POST /api/v1/hooks/mail/{provider}/bounce``   a bounce (the DSN as ``message/rfc822`` text)
``POST /api/v1/scam-complaints``                the call centre records a scam complaint
``GET /api/v1/call-tasks``                      open call tasks from replies
==============================================  ===============================================

The hooks are not for people or tokens: each proves it comes from the provider it names
(:func:`fleet.notices.providers.authenticate`: the provider's secret, or its HMAC
signature); anything else is 401, the same for an unknown provider. They answer 200
with what was done (a duplicate says so), 400 for what cannot be read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from fleet.access import NotSignedInError, Perm, Principal
from fleet.core.escaping import terminal_text
from fleet.core.policy import Policy
from fleet.web.deps import DB, TEXT, get_engine, get_settings, need
from fleet.web.problems import PROBLEM_RESPONSES

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["notices loop"], responses=PROBLEM_RESPONSES)
hooks = APIRouter(prefix="/api/v1/hooks", include_in_schema=False)

ProviderName = Annotated[str, Path(max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Recorder = Annotated[Principal, Depends(need(Perm.CONTACT))]
NoticeReader = Annotated[Principal, Depends(need(Perm.NOTICES))]
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _policy(request: Request) -> Policy:
    policy = getattr(request.app.state, "loop_policy", None)
    if policy is None:
        policy = Policy.load(get_settings(request).policy_path)
        request.app.state.loop_policy = policy
    assert isinstance(policy, Policy)
    return policy


async def _authenticated(request: Request, provider: str) -> tuple[Engine, bytes]:
    from fleet.notices.providers import ProviderAuthError, authenticate  # noqa: PLC0415

    engine = get_engine(request)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        await run_in_threadpool(authenticate, engine, provider, headers, body)
    except ProviderAuthError:
        raise NotSignedInError("the provider's secret or signature does not hold") from None
    return engine, body


@hooks.post("/sms/{provider}/status")
async def status_callback(request: Request, provider: ProviderName) -> Response:
    from fleet.notices.receipts import apply_receipt, parse_callback  # noqa: PLC0415

    engine, body = await _authenticated(request, provider)
    receipt = parse_callback(request.headers.get("content-type", ""), body)
    outcome = await run_in_threadpool(apply_receipt, engine, provider, receipt)
    return JSONResponse(outcome.as_dict())


@hooks.post("/sms/{provider}/inbound")
async def inbound_sms(request: Request, provider: ProviderName) -> Response:
    from fleet.notices.inbound import handle_reply, parse_inbound  # noqa: PLC0415

    engine, body = await _authenticated(request, provider)
    ctype = request.headers.get("content-type", "")
    reply = parse_inbound(ctype, body)
    policy = _policy(request)
    outcome = await run_in_threadpool(
        lambda: handle_reply(engine, provider, reply, policy=policy.inbound, notices=policy.notices)
    )
    if "json" not in ctype and "twiml" in request.query_params:
        return Response(TWIML_EMPTY, media_type="text/xml")  # Twilio: no auto-answer
    return JSONResponse(outcome.as_dict())


@hooks.post("/mail/{provider}/bounce")
async def bounce(request: Request, provider: ProviderName) -> Response:
    from fleet.notices.receipts import apply_bounce, parse_dsn  # noqa: PLC0415

    engine, body = await _authenticated(request, provider)
    found = parse_dsn(body, where="body")
    outcome = await run_in_threadpool(apply_bounce, engine, found)
    return JSONResponse(outcome.as_dict())


class ScamComplaint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["call", "sms", "email", "visit"]
    merchant_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,15}$")
    region: str | None = Field(default=None, min_length=1, max_length=40, pattern=TEXT)
    note: str = Field(default="", max_length=500, pattern=TEXT)


@api.post("/scam-complaints", status_code=201, summary="Record a merchant's scam complaint")
def scam_complaint(body: ScamComplaint, engine: DB, me: Recorder) -> dict[str, Any]:
    from fleet.notices.scams import record_complaint  # noqa: PLC0415

    cid = record_complaint(
        engine, channel=body.channel, actor=me.actor, region=body.region,
        merchant_id=body.merchant_id, note=body.note,
    )  # fmt: skip
    return {"id": cid, "recorded": "scam_complaint"}


class CallTaskRow(BaseModel):
    id: int
    merchant_id: str | None
    kind: str
    ref: str
    text: str
    created_at: str


@api.get("/call-tasks", response_model=list[CallTaskRow], summary="Open call tasks from replies")
def call_tasks(
    engine: DB, me: NoticeReader, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    from fleet.notices.inbound import open_tasks  # noqa: PLC0415

    return [
        {"id": t["id"], "merchant_id": t["merchant_id"], "kind": t["kind"], "ref": t["ref"],
         "text": terminal_text(t["text"]), "created_at": t["created_at"].isoformat()}
        for t in open_tasks(engine, limit=limit)
    ]  # fmt: skip
