"""`posfleet notices …` for the loop after sending: providers, bounces, call tasks, scam
complaints and warnings. Registered on :data:`fleet.cli.notices.notices_app`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.common import (
    Format,
    FormatOpt,
    TableJson,
    TableJsonOpt,
    emit,
    err_console,
    fail,
    out,
    state,
)

__all__ = ["provider_app", "register"]

provider_app = typer.Typer(
    help="SMS providers allowed to call posfleet back (status callbacks, replies).",
    no_args_is_help=True,
)


@provider_app.command("add")
def provider_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. twilio (a-z, 0-9, _ and -)")],
    hmac_key: Annotated[
        bool,
        typer.Option("--hmac", help="Also seal the secret (secrets key) to check HMAC signatures"),
    ] = False,
    rotate: Annotated[bool, typer.Option(help="Give an existing provider a new secret")] = False,
) -> None:
    """Add a provider; prints its secret once (posfleet keeps only its hash)."""
    from fleet.notices.providers import add_provider  # noqa: PLC0415

    st = state(ctx)
    secret = add_provider(st.engine(), name, actor=st.actor, hmac_key=hmac_key, rotate=rotate)
    err_console.print(
        f"provider {name}: callbacks to /api/v1/hooks/sms/{name}/status and /inbound; "
        "the secret below is shown once",
        highlight=False, soft_wrap=True, markup=False,
    )  # fmt: skip
    out.print(secret, highlight=False, soft_wrap=True, markup=False)


@provider_app.command("list")
def provider_list(ctx: typer.Context, fmt: TableJsonOpt = TableJson.TABLE) -> None:
    """The providers (never their secrets)."""
    from fleet.notices.providers import list_providers  # noqa: PLC0415

    rows = [
        {"name": p.name, "hmac": p.hmac, "created_at": p.created_at.isoformat()}
        for p in list_providers(state(ctx).engine())
    ]
    emit(rows, ["name", "hmac", "created_at"], fmt, title="SMS providers")


def notices_bounce(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="DSN files (.eml), as the server sent them")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Feed bounces back: each email marked failed and its notices fall back to a call task."""
    from fleet.core.errors import InputError  # noqa: PLC0415
    from fleet.notices.receipts import apply_bounce, parse_dsn  # noqa: PLC0415

    engine = state(ctx).engine()
    rows, bad = [], 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise fail(f"{path}: {exc.strerror or exc}", 2) from None
        try:
            found = parse_dsn(data, where=str(path))
        except InputError as exc:
            err_console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
            bad += 1
            continue
        outcome = apply_bounce(engine, found)
        rows.append({"file": str(path), **outcome.as_dict(), "dsn": found.status})
    emit(rows, ["file", "message", "status", "dsn", "applied", "duplicate", "fell_back"], fmt,
         title="Bounces")  # fmt: skip
    if bad:
        raise typer.Exit(2)


def notices_tasks(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Open call tasks from merchants' replies (their text as they wrote it)."""
    from fleet.core.escaping import terminal_text  # noqa: PLC0415
    from fleet.notices.inbound import open_tasks  # noqa: PLC0415

    rows = [
        {**t, "created_at": t["created_at"].isoformat(),
         "text": t["text"] if fmt == Format.JSON else terminal_text(t["text"])}
        for t in open_tasks(state(ctx).engine(), limit=limit)
    ]  # fmt: skip
    emit(rows, ["id", "kind", "merchant_id", "phone", "ref", "text", "created_at"], fmt,
         title="Call tasks")  # fmt: skip


def notices_scam_warning(
    ctx: typer.Context,
    region: Annotated[str, typer.Option("--region", help="The merchants' region")],
) -> None:
    """Send a scam_warning notice to every merchant of a region (through the outbox: the
    contact rules, caps and quiet hours apply; once a day per merchant)."""
    from fleet.notices.scams import queue_scam_warning  # noqa: PLC0415

    st = state(ctx)
    queued, already = queue_scam_warning(st.engine(), region, actor=st.actor)
    out.print(
        f"scam warning for {region}: {queued} notices queued ({already} already today); "
        "`posfleet notices dispatch` sends them",
        highlight=False, soft_wrap=True, markup=False,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(provider_app, name="provider")
    app.command("bounce")(notices_bounce)
    app.command("tasks")(notices_tasks)
    app.command("scam-warning")(notices_scam_warning)
