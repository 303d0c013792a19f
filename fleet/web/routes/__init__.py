"""One module per resource; each has ``pages`` (HTML, for people) and ``api`` (JSON under
``/api/v1``) routers, a few lines per route calling the domain."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.web.routes import auth

ROUTERS: list[APIRouter] = [auth.pages, auth.api]
