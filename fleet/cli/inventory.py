"""`posfleet catalog …`, `posfleet merchants …`, `posfleet terminals …`.

Each command reads its options, calls one function of :mod:`fleet.inventory` and prints
what it returns. The domain is imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fleet.cli.common import (
    CsvJson,
    CsvJsonOpt,
    Format,
    FormatOpt,
    OutOpt,
    TableJson,
    TableJsonOpt,
    emit,
    emit_json,
    err_console,
    fail,
    out,
    show_record,
    state,
)
from fleet.core.status import Status

if TYPE_CHECKING:
    from fleet.inventory import ImportResult

catalog_app = typer.Typer(help="Terminal models, firmware and advisories.", no_args_is_help=True)
merchants_app = typer.Typer(help="Merchants and how to reach them.", no_args_is_help=True)
terminals_app = typer.Typer(help="The terminals of the fleet.", no_args_is_help=True)


class FileFormat(enum.StrEnum):
    CSV = "csv"
    JSON = "json"
    TOML = "toml"


class ImportOutput(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


FileFormatOpt = Annotated[
    FileFormat | None,
    typer.Option("--format", help="File format (default: from the suffix)"),
]
ImportOutputOpt = Annotated[
    ImportOutput, typer.Option("--output", help="What to print: a line or JSON")
]
StatusOpt = Annotated[Status | None, typer.Option(help="Only this status")]
ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the audit log)")]


def _report(result: ImportResult, output: ImportOutput) -> None:
    if output == ImportOutput.JSON:
        emit_json(result.as_dict())
        return
    out.print(
        f"{result.kind}: {result.rows} rows from {result.path}: "
        f"{result.inserted} new, {result.updated} updated or unchanged",
        highlight=False,
    )


# --- catalog ---------------------------------------------------------------------------


@catalog_app.command("import")
def catalog_import(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="JSON/TOML with models, firmware, advisories; or CSV")
    ],
    file_format: FileFormatOpt = None,
    output: ImportOutputOpt = ImportOutput.TEXT,
) -> None:
    """Import (upsert) catalog records. One bad record rejects the whole file."""
    from fleet.inventory import import_catalog  # noqa: PLC0415

    st = state(ctx)
    _report(import_catalog(st.engine(), path, actor=st.actor, fmt=file_format), output)


_CAPS_SHORT = {
    "chip": "chip",
    "contactless": "ctls",
    "magstripe": "msr",
    "qr": "qr",
    "pin_pad": "pin",
}
_CATALOG_COLUMNS = [
    "code", "vendor", "name", "released_on", "end_of_sale", "end_of_support", "pts_version",
    "pts_expires_on", "capabilities", "price", "currency", "successor", "firmware", "terminals",
]  # fmt: skip
_CATALOG_TABLE = [
    "code", "vendor", "support until", "PTS", "caps", "price", "firmware", "terminals",
]  # fmt: skip


@catalog_app.command("list")
def catalog_list(ctx: typer.Context, fmt: FormatOpt = Format.TABLE) -> None:
    """Models with their dates, PTS approval, capabilities, price and firmware."""
    from fleet.inventory import list_catalog  # noqa: PLC0415
    from fleet.replacements.rules import format_money  # noqa: PLC0415

    models = list_catalog(state(ctx).engine())
    rows: list[dict[str, Any]] = []
    for info in models:
        m = info.model
        rows.append(
            m.model_dump()
            | {
                "capabilities": m.capabilities(),
                "price": format_money(m.unit_price, m.currency),
                "firmware": [
                    f"{f.version} (eos {f.end_of_support})" if f.end_of_support else f.version
                    for f in info.firmware
                ],
                "terminals": info.terminals,
                "advisories": [
                    {"id": a.id, "severity": a.severity, "fixed_in": a.fixed_in, "title": a.title}
                    for a in info.advisories
                ],
            }
        )
    if fmt != Format.TABLE:
        columns = [*_CATALOG_COLUMNS, "advisories"] if fmt == Format.JSON else _CATALOG_COLUMNS
        emit(rows, columns, fmt)
        return
    for row in rows:
        row["support until"] = row["end_of_support"]
        row["PTS"] = f"{row['pts_version']} {row['pts_expires_on'] or ''}".strip()
        row["caps"] = " ".join(_CAPS_SHORT[c] for c in row["capabilities"])
        row["price"] = f"{row['price']} {row['currency']}"
    emit(rows, _CATALOG_TABLE, fmt, title="Terminal models")
    advisories = [a for info in models for a in info.advisories]
    if advisories:
        table = Table(title="Advisories", title_justify="left")
        for column in ("id", "model", "severity", "affects", "fixed in", "title"):
            table.add_column(column, overflow="fold")
        for a in advisories:
            table.add_row(a.id, a.model, a.severity, str(a.versions), a.fixed_in or "none", a.title)
        out.print(table)


# --- merchants -------------------------------------------------------------------------


@merchants_app.command("import")
def merchants_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or JSON of merchants")],
    file_format: FileFormatOpt = None,
    output: ImportOutputOpt = ImportOutput.TEXT,
) -> None:
    """Import (upsert) merchants; phones are checked and stored as E.164."""
    from fleet.inventory import import_merchants  # noqa: PLC0415

    st = state(ctx)
    _report(import_merchants(st.engine(), path, actor=st.actor, fmt=file_format), output)


MERCHANT_COLUMNS = [
    "id", "name", "mcc", "phone", "email", "language", "timezone", "country", "region",
    "tags", "channels", "opt_out",
]  # fmt: skip
_MERCHANT_TABLE = [
    "id", "name", "mcc", "phone", "email", "language", "timezone", "channels", "terminals",
]  # fmt: skip


@merchants_app.command("list")
def merchants_list(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
    mcc: Annotated[int | None, typer.Option(help="Only this MCC")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many")] = None,
) -> None:
    """Merchants, with their terminal count."""
    from fleet.inventory import list_merchants  # noqa: PLC0415

    found = list_merchants(state(ctx).engine(), mcc=mcc, region=region, limit=limit)
    rows = [m.merchant.model_dump() | {"terminals": m.terminals} for m in found]
    columns = _MERCHANT_TABLE if fmt == Format.TABLE else [*MERCHANT_COLUMNS, "terminals"]
    emit(rows, columns, fmt, title="Merchants")


@merchants_app.command("show")
def merchants_show(
    ctx: typer.Context,
    merchant_id: Annotated[str, typer.Argument(help="Merchant id")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """One merchant, its contact data and its terminals."""
    from fleet.inventory import get_merchant  # noqa: PLC0415

    found = get_merchant(state(ctx).engine(), merchant_id)
    merchant = found.merchant.model_dump()
    terminals = [
        {
            "serial": t.serial,
            "model": t.model,
            "firmware": t.firmware,
            "tid": t.tid,
            "status": t.status,
            "active_version": t.active_version,
        }
        for t in found.terminals
    ]
    if fmt == TableJson.JSON:
        emit([merchant | {"terminals": terminals}], [], "json", json_doc=lambda rows: rows[0])
        return
    show_record(f"Merchant {merchant_id}", merchant)
    columns = ["serial", "model", "firmware", "tid", "status", "active_version"]
    emit(terminals, columns, "table", title="Terminals")


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
    _report(result, output)


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
    limit: Annotated[int | None, typer.Option(help="At most this many (table: 100)")] = None,
) -> None:
    """Terminals, filtered."""
    from fleet.inventory import TERMINAL_COLUMNS, iter_terminals  # noqa: PLC0415

    if fmt == Format.TABLE and limit is None:
        limit = 100
    rows = iter_terminals(
        state(ctx).engine(),
        limit=limit,
        status=status,
        model=model,
        firmware=firmware,
        merchant_id=merchant,
    )
    columns = _TERMINAL_TABLE if fmt == Format.TABLE else list(TERMINAL_COLUMNS)
    shown = emit(rows, columns, fmt, title="Terminals")
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
    from fleet.inventory import terminal_cells, terminal_detail  # noqa: PLC0415

    found = terminal_detail(state(ctx).engine(), serial)
    cells = terminal_cells(found.terminal)
    history = [audit.as_row(a) for a in found.history]
    if fmt == TableJson.JSON:
        model = found.model.model_dump() if found.model else None
        emit_json(cells | {"model_info": model, "history": history})
        return
    show_record(f"Terminal {serial}", cells)
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
    status: StatusOpt = None,
) -> None:
    """Every terminal in the import's shape (`terminals import` reads it back)."""
    from fleet.inventory import TERMINAL_COLUMNS, iter_terminals, terminal_cells  # noqa: PLC0415

    rows = (terminal_cells(r) for r in iter_terminals(state(ctx).engine(), status=status))
    count = emit(rows, TERMINAL_COLUMNS, fmt, out_file=out_file)
    if out_file is not None:
        err_console.print(f"wrote {count} terminals to {out_file}", highlight=False)
