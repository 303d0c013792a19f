"""The web console and the REST API (``posfleet serve``): a second front end over the same
domain functions as the CLI.

=====================  ===============================================================
module                 owns
=====================  ===============================================================
:mod:`.app`            ``create_app(settings)``: routers, handlers, middlewares, lifespan
:mod:`.routes`         one module per resource: a pages router and an ``/api/v1`` router
:mod:`.deps`           the engine, who is asking (session or token), permissions, CSRF
:mod:`.render`         Jinja2 pages (autoescaped), contacts masked by role
:mod:`.problems`       RFC 9457 problem documents, and their OpenAPI declarations
:mod:`.middleware`     the body limit and the security headers
:mod:`.settings`       what a process is configured with (options or environment)
=====================  ===============================================================

Importing this package builds no engine; the app makes one when it starts.
"""

from __future__ import annotations

from fleet.web.app import create_app

__all__ = ["create_app"]
