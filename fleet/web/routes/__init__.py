"""One module per resource (or a few close ones); each has ``pages`` (HTML, for people)
and ``api`` (JSON under ``/api/v1``) routers, a few lines per route calling the domain.

=================  ================================================================
module             routes
=================  ================================================================
``auth``           sign-in/out, password, home, health, ``/api/v1/me``
``fleetview``      dashboard, terminals (keyset pages), one terminal's history
``rollouts``       rollouts, one rollout live, pause / resume / cancel
``callcentre``     verify, notices, contact events (complaint, opt-out, follow-up)
``records``        fee tables and diffs, replacements (+ CSV), swaps, audit (+ CSV)
``engineering``    sync a terminal, plan a swap
``admin``          users, API tokens, webhooks
``provider``       SMS provider callbacks and replies, bounces, scam complaints, call tasks
=================  ================================================================
"""

from __future__ import annotations

from fastapi import APIRouter

from fleet.web.routes import (
    admin,
    auth,
    callcentre,
    engineering,
    fleetview,
    provider,
    records,
    rollouts,
)

ROUTERS: list[APIRouter] = [
    router
    for module in (auth, fleetview, rollouts, callcentre, records, engineering, admin, provider)
    for router in (module.pages, module.api)
] + [provider.hooks]
