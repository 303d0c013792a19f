"""Rollouts: the list, one rollout's waves and jobs updating live (the page polls
``/api/v1/rollouts/{id}`` while it runs), and pause / resume / cancel for ops."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fleet import rollout
from fleet.access import Perm, Principal
from fleet.rollout.waves import share_text
from fleet.web.deps import DB, TEXT, Form, need
from fleet.web.problems import CONFLICT, PROBLEM_RESPONSES
from fleet.web.render import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["rollouts"], responses=PROBLEM_RESPONSES)

Reader = Annotated[Principal, Depends(need(Perm.ROLLOUTS))]
Controller = Annotated[Principal, Depends(need(Perm.ROLLOUT_CONTROL))]
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Action = Literal["pause", "resume", "cancel"]
ACTIONS = {"pause": rollout.pause, "resume": rollout.resume, "cancel": rollout.cancel}


def _status(engine: Any, rollout_id: int) -> dict[str, Any]:
    st = rollout.status(engine, rollout_id)
    doc = st.as_dict()
    totals = st.totals
    doc["terminals"] = st.terminals
    doc["totals"] = {
        k: totals.get(k, 0) for k in ("pending", "running", "done", "failed", "cancelled")
    }
    doc["over"] = st.status.over
    doc["wave_open"] = min(st.wave + 1, len(st.waves))
    doc["waves"] = [
        {"wave": w.wave, "share": share_text(w.share_ppm), "terminals": w.total,
         **{k: w.counts.get(k, 0) for k in ("pending", "running", "done", "failed", "cancelled")}}
        for w in st.waves
    ]  # fmt: skip
    for p in doc["problems"]:
        p["next_attempt_at"] = p["next_attempt_at"].isoformat() if p["next_attempt_at"] else None
    return doc


@pages.get("/rollouts")
def rollouts_page(request: Request, engine: DB, me: Reader) -> Response:
    return page(request, "rollouts.html", rollouts=rollout.list_rollouts(engine))


@pages.get("/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: RolloutId, engine: DB, me: Reader) -> Response:
    return page(request, "rollout.html", r=_status(engine, rollout_id))


@pages.post("/rollouts/{rollout_id}/{action}")
def rollout_action_page(
    rollout_id: RolloutId, action: Action, engine: DB, me: Controller, form: Form
) -> Response:
    ACTIONS[action](engine, rollout_id, actor=me.actor, reason=form.get("reason", "")[:500])
    return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)


class WaveRow(BaseModel):
    wave: int
    share: str
    terminals: int
    pending: int
    running: int
    done: int
    failed: int
    cancelled: int


class JobProblemRow(BaseModel):
    serial: str
    wave: int
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str | None


class RolloutDoc(BaseModel):
    id: int
    version: int
    status: str
    over: bool
    wave: int
    wave_open: int
    group: str
    max_failures: str
    created_at: str
    created_by: str
    terminals: int
    totals: dict[str, int]
    waves: list[WaveRow]
    problems: list[JobProblemRow]


class RolloutRow(BaseModel):
    id: int
    version: int
    status: str
    group: str
    terminals: int
    totals: dict[str, int]
    created_by: str


@api.get("/rollouts", response_model=list[RolloutRow], summary="Rollouts, newest first")
def rollouts_api(engine: DB, me: Reader) -> list[dict[str, Any]]:
    return rollout.list_rollouts(engine)


@api.get("/rollouts/{rollout_id}", response_model=RolloutDoc, summary="A rollout, live")
def rollout_api(rollout_id: RolloutId, engine: DB, me: Reader) -> dict[str, Any]:
    return _status(engine, rollout_id)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500, pattern=TEXT)


@api.post(
    "/rollouts/{rollout_id}/{action}", response_model=RolloutDoc, responses=CONFLICT,
    summary="Pause, resume, cancel",
)  # fmt: skip
def rollout_action_api(
    rollout_id: RolloutId, action: Action, body: Reason, engine: DB, me: Controller
) -> dict[str, Any]:
    ACTIONS[action](engine, rollout_id, actor=me.actor, reason=body.reason)
    return _status(engine, rollout_id)
