"""`posfleet health …`: poll terminals' health (many at once, with a progress bar) and
show a terminal's health history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.common import (
    FileFormatOpt,
    TableJson,
    TableJsonOpt,
    counted_progress,
    emit,
    emit_json,
    fail,
    out,
    state,
)

__all__ = ["health_app"]

health_app = typer.Typer(
    help="Terminal health: poll many terminals (0800/303), show a terminal's history.",
    no_args_is_help=True,
)


@health_app.command("poll")
def health_poll(
    ctx: typer.Context,
    serials: Annotated[
        list[str] | None, typer.Argument(help="Terminals (default: every deployed or faulty one)")
    ] = None,
    sign_on: Annotated[
        bool, typer.Option("--sign-on", help="Sign on (checks each serial) instead of 0800/303")
    ] = False,
    concurrency: Annotated[int, typer.Option(help="Links open at once (socket:// links)")] = 256,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer (T2)")] = 5.0,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Poll terminals' health and store it in their history; exit 1 if any failed."""
    from fleet.device.health import poll, poll_targets  # noqa: PLC0415

    if concurrency < 1:
        raise fail("--concurrency must be at least 1", 2)
    engine = state(ctx).engine()
    targets = poll_targets(engine, serials or None)
    with counted_progress("health", len(targets)) as advance:
        results = poll(
            engine, targets, sign_on=sign_on, concurrency=concurrency, t2=timeout,
            progress=lambda result: advance(not result.ok),
        )  # fmt: skip
    bad = [r for r in results if not r.ok]
    if fmt == TableJson.JSON:
        emit_json([r.as_dict() for r in results])
    else:
        tampered = sum(1 for r in results if r.health is not None and r.health.tampered)
        out.print(
            f"{len(results) - len(bad)} of {len(results)} terminals polled"
            + (f"; {tampered} tampered" if tampered else "")
            + (f"; {len(bad)} failed" if bad else ""),
            highlight=False,
        )
        for r in bad:
            fail(f"{r.serial}: {r.error}")
    if bad:
        raise typer.Exit(1)


@health_app.command("show")
def health_show(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    limit: Annotated[int, typer.Option(help="Most samples shown, newest first")] = 20,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """A terminal's health samples, newest first."""
    from fleet.core.errors import NotFoundError  # noqa: PLC0415
    from fleet.device.health import health_history  # noqa: PLC0415
    from fleet.inventory import get_terminal  # noqa: PLC0415

    engine = state(ctx).engine()
    with engine.connect() as conn:
        if get_terminal(conn, serial) is None:
            raise NotFoundError(f"unknown terminal {serial}")
        rows = health_history(conn, serial, limit)
    cells = [
        {
            "at": r["at"].isoformat(timespec="seconds"),
            "source": r["source"],
            "reader": r["chip"] + r["magstripe"],
            "contactless": r["contactless"],
            "printer_lines": "" if r["printer_lines"] is None else r["printer_lines"],
            "battery_cycles": "" if r["battery_cycles"] is None else r["battery_cycles"],
            "battery_health": "" if r["battery_health"] is None else r["battery_health"],
            "tamper": "TRIPPED" if r["tamper"] else "intact",
        }
        for r in rows
    ]
    if fmt == TableJson.JSON:
        emit_json(cells)
        return
    emit(cells, list(cells[0]) if cells else ["at"], "table", title=f"Health of {serial}")


@health_app.command("import")
def health_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Health history: CSV, JSON or TOML")],
    file_format: FileFormatOpt = None,
) -> None:
    """Import a health history (one sample per row). One bad row rejects the file.

    CSV columns: serial,at,chip,contactless,magstripe (required); printer_lines,paper,
    battery_level,battery_health,battery_cycles,tampered,tampered_at,uptime,last_reboot,
    free_storage (optional)."""
    from fleet.device.health import import_health  # noqa: PLC0415

    st = state(ctx)
    fmt = file_format.value if file_format else None
    stored = import_health(st.engine(), path, actor=st.actor, fmt=fmt)
    out.print(f"{path.name}: {stored} health samples stored", highlight=False)
