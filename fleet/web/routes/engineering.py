"""What engineers do from the console: sync a terminal (sign on over its link and record
what it reports) and plan a swap (the merchant's advance notice is queued with it).

Pushing a fee table stays on the command line and in rollouts: it needs the fleet master
key, which the console process does not hold.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fleet.access import Perm, Principal
from fleet.core.errors import InputError
from fleet.core.policy import Policy
from fleet.core.values import parse_date
from fleet.device import resolve, sync
from fleet.notices.reasons import SWAP_CODES
from fleet.swaps import plan
from fleet.web.deps import DB, TEXT, Form, get_settings, need
from fleet.web.problems import CONFLICT, JOB_FAILED, PROBLEM_RESPONSES

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["engineering"], responses=PROBLEM_RESPONSES)

Device = Annotated[Principal, Depends(need(Perm.DEVICE))]
Swapper = Annotated[Principal, Depends(need(Perm.SWAP))]
Serial = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]


def _plan(request: Request, engine: Any, me: Principal, serial: str, on: date, reason: str,
          engineer: str, new_serial: str | None,
          reason_code: str | None = None) -> dict[str, Any]:  # fmt: skip
    policy = Policy.load(get_settings(request).policy_path)
    result = plan(
        engine, serial, on, reason=reason, actor=me.actor, policy=policy, engineer=engineer,
        new_serial=new_serial or None, reason_code=reason_code or None,
    )  # fmt: skip
    return result.as_dict()


def _sync(engine: Any, serial: str, actor: str) -> dict[str, Any]:
    """An unknown terminal, or one without a link, is bad input (404/422), not a failed
    job: it is resolved first; a terminal that cannot be reached is a failed job (502)."""
    with engine.connect() as conn:
        resolve(conn, serial, None)
    found: dict[str, Any] = sync(engine, actor=actor, serial=serial).as_dict()
    return found


@pages.post("/terminals/{serial}/sync")
def sync_page(serial: Serial, engine: DB, me: Device, form: Form) -> Response:
    _sync(engine, serial, me.actor)
    return RedirectResponse(f"/terminals/{serial}", status_code=303)


@pages.post("/terminals/{serial}/swap")
def swap_page(request: Request, serial: Serial, engine: DB, me: Swapper, form: Form) -> Response:
    try:
        on = parse_date(form.get("on", ""))
    except ValueError as exc:
        raise InputError(str(exc), where="on") from None
    _plan(request, engine, me, serial, on, form.get("reason", "")[:500],
          form.get("engineer", "")[:80], form.get("new_serial", "")[:40] or None,
          form.get("reason_code", "")[:32] or None)  # fmt: skip
    return RedirectResponse(f"/terminals/{serial}", status_code=303)


@api.post(
    "/terminals/{serial}/sync", responses=JOB_FAILED, summary="Sign on to a terminal, record it"
)
def sync_api(serial: Serial, engine: DB, me: Device) -> dict[str, Any]:
    return _sync(engine, serial, me.actor)


SwapReasonCode = Literal[
    "age", "pci_expiry", "model_eol", "firmware_eol", "security_advisory",
    "missing_payment_method", "faulty", "tamper", "wear", "upgrade", "merchant_request",
    "other",
]  # fmt: skip
"""The swap reason codes of the catalogue (:data:`fleet.notices.reasons.SWAP_CODES`)."""
assert get_args(SwapReasonCode) == SWAP_CODES


class SwapPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_serial: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    on: date
    reason: str = Field(min_length=1, max_length=500, pattern=TEXT)
    engineer: str = Field(default="", max_length=80, pattern=TEXT)
    new_serial: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    reason_code: SwapReasonCode | None = None
    """Why, as the merchant reads it (the reason catalogue); ``reason`` is the note."""


@api.post(
    "/swaps", status_code=201, responses=CONFLICT,
    summary="Plan a swap (queues the merchant's notice)",
)  # fmt: skip
def swap_api(request: Request, body: SwapPlan, engine: DB, me: Swapper) -> dict[str, Any]:
    return _plan(request, engine, me, body.old_serial, body.on, body.reason, body.engineer,
                 body.new_serial, body.reason_code)  # fmt: skip
