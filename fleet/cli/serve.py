"""`posfleet serve`: the web console and the REST API (uvicorn), one or many processes."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated

import typer

from fleet.cli.common import err_console, fail, handled, state


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Processes (SQLite: on this machine; PostgreSQL: anywhere)")
    ] = 1,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (when reached over https)")
    ] = False,
    deliver_webhooks: Annotated[
        bool, typer.Option(help="Also run the webhook sender in each process")
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Trust X-Forwarded-For from these proxies (comma-separated IPs)"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the console and the API (`/api/v1`, OpenAPI at `/api/openapi.json`)."""
    import uvicorn  # noqa: PLC0415

    from fleet.core.db import require_current  # noqa: PLC0415
    from fleet.web.settings import WebSettings  # noqa: PLC0415

    st = state(ctx)
    if workers < 1:
        raise fail("--workers must be 1 or more", 2)
    with handled():
        engine = st.engine()
        require_current(engine)
        engine.dispose()
    settings = replace(
        WebSettings.from_env(), db=st.db, policy_path=st.policy_path,
        secure_cookies=secure_cookies, deliver_webhooks=deliver_webhooks,
    )  # fmt: skip
    os.environ.update(settings.to_env())
    err_console.print(f"posfleet console on http://{host}:{port}/ ({workers} process"
                      f"{'es' if workers > 1 else ''})", highlight=False)  # fmt: skip
    uvicorn.run(
        "fleet.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )
