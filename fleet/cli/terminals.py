"""`posfleet terminals …`: import, list, show, add, update, export.

Each command reads its options, calls one function of :mod:`fleet.inventory` and prints
what it returns. The domain is imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.common import (
    CsvJson,
    CsvJsonOpt,
    FileFormatOpt,
    ForceOpt,
    Format,
    FormatOpt,
    ImportOutput,
    ImportOutputOpt,
    OutOpt,
    TableJson,
    TableJsonOpt,
    emit,
    emit_json,
    err_console,
    fail,
    limit_option,
    out,
    print_import,
    reason_option,
    show_record,
    state,
)
from fleet.core.status import Status

terminals_app = typer.Typer(help="The terminals of the fleet.", no_args_is_help=True)

StatusOpt = Annotated[Status | None, typer.Option(help="Only this status")]
ReasonOpt = Annotated[str, reason_option("Why (kept in the audit log)")]


# --- terminals -------------------------------------------------------------------------


@terminals_app.command("import")
def terminals_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Inventory CSV or JSON")],
    file_format: FileFormatOpt = None,
    output: ImportOutputOpt = ImportOutput.TEXT,
) -> None:
    """Import (upsert) an inventory. One bad row rejects the file; nothing is written.

    CSV columns: serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,
    status,link (required), fault_count,last_seen,active_version,pending_version (optional).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from fleet.inventory import import_terminals  # noqa: PLC0415

    st = state(ctx)
    engine = st.engine()
    with Progress(
        TextColumn("[bold]importing {task.fields[name]}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=None, name=path.name)
        result = import_terminals(
            engine,
            path,
            actor=st.actor,
            fmt=file_format,
            progress=lambda n: progress.update(task, completed=n),
        )
    print_import(result, output)


_TERMINAL_TABLE = [
    "serial", "model", "firmware", "tid", "merchant_id", "status", "fault_count", "last_seen",
    "active_version", "pending_version",
]  # fmt: skip


@terminals_app.command("list")
def terminals_list(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
    status: StatusOpt = None,
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    firmware: Annotated[str | None, typer.Option(help="Only this firmware version")] = None,
    merchant: Annotated[str | None, typer.Option(help="Only this merchant's")] = None,
    limit: Annotated[int | None, limit_option("At most this many (table: 100)")] = None,
    not_seen_days: Annotated[
        int | None,
        typer.Option(min=1, help="Only those not heard from (synced) in N days, or never"),
    ] = None,
) -> None:
    """Terminals, filtered."""
    from datetime import timedelta  # noqa: PLC0415

    from fleet.core.models import now  # noqa: PLC0415
    from fleet.inventory import TERMINAL_COLUMNS, iter_terminals  # noqa: PLC0415

    if fmt == Format.TABLE and limit is None:
        limit = 100
    rows = iter_terminals(
        state(ctx).engine(),
        limit=limit,
        not_seen_since=now() - timedelta(days=not_seen_days) if not_seen_days else None,
        status=status,
        model=model,
        firmware=firmware,
        merchant_id=merchant,
    )
    columns = _TERMINAL_TABLE if fmt == Format.TABLE else list(TERMINAL_COLUMNS)
    shown = emit(
        rows, columns, fmt, title="Terminals",
        drop_first=["pending_version", "active_version", "fault_count", "last_seen", "tid"],
    )  # fmt: skip
    if fmt == Format.TABLE and limit and shown == limit:
        err_console.print(f"(first {limit}; --limit to see more, --format csv for all)")


@terminals_app.command("show")
def terminals_show(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """One terminal, its model, merchant and its audit history."""
    from fleet.core import audit  # noqa: PLC0415
    from fleet.device.health import health_lines, health_summary  # noqa: PLC0415
    from fleet.inventory import terminal_cells, terminal_detail  # noqa: PLC0415

    found = terminal_detail(state(ctx).engine(), serial)
    t = found.terminal
    cells = terminal_cells(t) | {  # what it reported, not inventory cells: shown, not exported
        "key_version": "" if t["key_version"] is None else str(t["key_version"]),
        "key_next": str(t["key_next"]),
    }
    history = [audit.as_row(a) for a in found.history]
    engine = state(ctx).engine()
    with engine.connect() as conn:
        health = health_summary(conn, serial, t["model"], policy=state(ctx).policy().replacement)
    if fmt == TableJson.JSON:
        model = found.model.model_dump() if found.model else None
        emit_json(cells | {"model_info": model, "health": health, "history": history})
        return
    show_record(f"Terminal {serial}", cells)
    if health is not None:
        show_record("Health", health_lines(health))
    if history:
        emit(history, ["at", "actor", "action", "reason", "details"], "table", title="History")


def _cells(**options: Any) -> dict[str, str]:
    return {k: str(v) for k, v in options.items() if v is not None}


@terminals_app.command("add")
def terminals_add(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    model: Annotated[str, typer.Option(help="Model code (in the catalog)")],
    firmware: Annotated[str, typer.Option(help="Firmware version (in the catalog)")],
    status: Annotated[Status, typer.Option(help="Its status")] = Status.IN_STOCK,
    tid: Annotated[str | None, typer.Option(help="Terminal ID, 8 characters")] = None,
    mid: Annotated[str | None, typer.Option(help="Merchant ID, 15 characters")] = None,
    merchant: Annotated[str | None, typer.Option(help="Merchant id")] = None,
    manufactured_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    deployed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    link: Annotated[str | None, typer.Option(help="socket://host:port or a device")] = None,
    reason: ReasonOpt = "",
) -> None:
    """Add one terminal (checked like an import row)."""
    from fleet.inventory import add_terminal  # noqa: PLC0415

    st = state(ctx)
    cells = _cells(
        model=model,
        firmware=firmware,
        status=status.value,
        tid=tid,
        mid=mid,
        merchant_id=merchant,
        manufactured_on=manufactured_on,
        deployed_on=deployed_on,
        link=link,
    )
    add_terminal(st.engine(), serial, cells, actor=st.actor, reason=reason)
    out.print(f"added {serial}", highlight=False)


@terminals_app.command("update")
def terminals_update(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    status: Annotated[Status | None, typer.Option(help="New status")] = None,
    firmware: Annotated[str | None, typer.Option(help="New firmware version")] = None,
    tid: Annotated[str | None, typer.Option(help="Terminal ID")] = None,
    mid: Annotated[str | None, typer.Option(help="Merchant ID")] = None,
    merchant: Annotated[str | None, typer.Option(help="Merchant id ('' to clear)")] = None,
    deployed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    link: Annotated[str | None, typer.Option(help="socket://host:port or a device")] = None,
    fault_count: Annotated[int | None, typer.Option(help="Recorded faults")] = None,
    add_fault: Annotated[bool, typer.Option("--add-fault", help="Record one more fault")] = False,
    reason: ReasonOpt = "",
) -> None:
    """Change one terminal; the change and its reason go to the audit log."""
    from fleet.inventory import update_terminal  # noqa: PLC0415

    changes = _cells(
        status=status.value if status else None,
        firmware=firmware,
        tid=tid,
        mid=mid,
        merchant_id=merchant,
        deployed_on=deployed_on,
        link=link,
        fault_count=fault_count,
    )
    if not changes and not add_fault:
        raise fail("nothing to change: give at least one option", 2)
    st = state(ctx)
    change = update_terminal(
        st.engine(), serial, changes, actor=st.actor, reason=reason, add_fault=add_fault
    )
    changed = [f"{k}: {a or '∅'} → {b or '∅'}" for k, (a, b) in change.changed().items()]
    out.print(f"{serial}: " + ("; ".join(changed) if changed else "no change"), highlight=False)


@terminals_app.command("export")
def terminals_export(
    ctx: typer.Context,
    fmt: CsvJsonOpt = CsvJson.CSV,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    status: StatusOpt = None,
) -> None:
    """Every terminal in the import's shape (`terminals import` reads it back)."""
    from fleet.inventory import TERMINAL_COLUMNS, iter_terminals, terminal_cells  # noqa: PLC0415

    rows = (terminal_cells(r) for r in iter_terminals(state(ctx).engine(), status=status))
    count = emit(rows, TERMINAL_COLUMNS, fmt, out_file=out_file, force=force)
    if out_file is not None:
        err_console.print(f"wrote {count} terminals to {out_file}", highlight=False)
