"""`posfleet catalog …`, `posfleet merchants …`, `posfleet terminals …`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from fleet.cli.common import check_format, emit, err_console, fail, handled, out, state
from fleet.core import audit
from fleet.core.models import (
    ADVISORIES,
    ADVISORY_FIRMWARE,
    FIRMWARE,
    MERCHANTS,
    MODELS,
    TERMINALS,
    Status,
)
from fleet.inventory.service import (
    TERMINAL,
    ImportResult,
    get_terminal,
    import_catalog,
    import_merchants,
    import_terminals,
    iter_terminals,
    terminal_cells,
    upsert_terminal,
)
from fleet.replacements.rules import format_money

catalog_app = typer.Typer(help="Terminal models, firmware and advisories.", no_args_is_help=True)
merchants_app = typer.Typer(help="Merchants and how to reach them.", no_args_is_help=True)
terminals_app = typer.Typer(help="The terminals of the fleet.", no_args_is_help=True)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv or json")]
FileFormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv, json or toml (default: from the suffix)")
]


def _report(result: ImportResult, fmt: str) -> None:
    if fmt == "json":
        out.print_json(json.dumps(result.as_dict()))
        return
    out.print(
        f"{result.kind}: {result.rows} rows from {result.path}: "
        f"{result.inserted} new, {result.updated} updated or unchanged",
        highlight=False,
    )


@catalog_app.command("import")
def catalog_import(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="JSON/TOML with models, firmware, advisories; or CSV")
    ],
    file_format: FileFormatOpt = None,
    output: Annotated[str, typer.Option("--output", help="text or json")] = "text",
) -> None:
    """Import (upsert) catalog records. One bad record rejects the whole file."""
    st = state(ctx)
    with handled():
        result = import_catalog(st.engine(), path, actor=st.actor, fmt=file_format)
    _report(result, output)


@catalog_app.command("list")
def catalog_list(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """Models with their dates, PTS approval, capabilities, price and firmware."""
    check_format(fmt)
    st = state(ctx)
    with handled():
        engine = st.engine()
        with engine.connect() as conn:
            models = [
                dict(r._mapping) for r in conn.execute(select(MODELS).order_by(MODELS.c.code))
            ]
            firmware = conn.execute(
                select(FIRMWARE).order_by(FIRMWARE.c.model, FIRMWARE.c.version)
            ).all()
            advisories = conn.execute(
                select(ADVISORIES, func.count(ADVISORY_FIRMWARE.c.version).label("versions"))
                .outerjoin(
                    ADVISORY_FIRMWARE,
                    (ADVISORY_FIRMWARE.c.advisory == ADVISORIES.c.id)
                    & (ADVISORY_FIRMWARE.c.model == ADVISORIES.c.model),
                )
                .group_by(*ADVISORIES.c)
                .order_by(ADVISORIES.c.model, ADVISORIES.c.id)
            ).all()
            counts: dict[str, int] = dict(
                conn.execute(
                    select(TERMINALS.c.model, func.count()).group_by(TERMINALS.c.model)
                ).all()
            )
    fw_by_model: dict[str, list[str]] = {}
    for fw in firmware:
        eos = f" (eos {fw.end_of_support})" if fw.end_of_support else ""
        fw_by_model.setdefault(fw.model, []).append(f"{fw.version}{eos}")
    rows: list[dict[str, Any]] = []
    for model in models:
        caps = [c for c in ("chip", "contactless", "magstripe", "qr", "pin_pad") if model[c]]
        rows.append(
            model
            | {
                "capabilities": caps,
                "price": format_money(model["unit_price"], model["currency"]),
                "firmware": fw_by_model.get(model["code"], []),
                "terminals": counts.get(model["code"], 0),
                "advisories": [
                    {"id": a.id, "severity": a.severity, "fixed_in": a.fixed_in, "title": a.title}
                    for a in advisories
                    if a.model == model["code"]
                ],
            }
        )
    if fmt == "table":
        short = {
            "chip": "chip",
            "contactless": "ctls",
            "magstripe": "msr",
            "qr": "qr",
            "pin_pad": "pin",
        }
        for row in rows:
            row["support until"] = row["end_of_support"]
            row["PTS"] = f"{row['pts_version']} {row['pts_expires_on'] or ''}".strip()
            row["caps"] = " ".join(short[c] for c in row["capabilities"])
            row["price"] = f"{row['price']} {row['currency']}"
        columns = [
            "code",
            "vendor",
            "support until",
            "PTS",
            "caps",
            "price",
            "firmware",
            "terminals",
        ]
        emit(rows, columns, fmt, title="Terminal models")
        if advisories:
            table = Table(title="Advisories", title_justify="left")
            for column in ("id", "model", "severity", "affects", "fixed in", "title"):
                table.add_column(column, overflow="fold")
            for a in advisories:
                table.add_row(
                    a.id, a.model, a.severity, str(a.versions), a.fixed_in or "none", a.title
                )
            out.print(table)
        return
    columns = [
        "code",
        "vendor",
        "name",
        "released_on",
        "end_of_sale",
        "end_of_support",
        "pts_version",
        "pts_expires_on",
        "capabilities",
        "price",
        "currency",
        "successor",
        "firmware",
        "terminals",
    ]
    emit(rows, [*columns, "advisories"] if fmt == "json" else columns, fmt)


@merchants_app.command("import")
def merchants_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or JSON of merchants")],
    file_format: FileFormatOpt = None,
    output: Annotated[str, typer.Option("--output", help="text or json")] = "text",
) -> None:
    """Import (upsert) merchants; phones are checked and stored as E.164."""
    st = state(ctx)
    with handled():
        result = import_merchants(st.engine(), path, actor=st.actor, fmt=file_format)
    _report(result, output)


MERCHANT_COLUMNS = [
    "id",
    "name",
    "mcc",
    "phone",
    "email",
    "language",
    "timezone",
    "country",
    "region",
    "tags",
    "channels",
    "opt_out",
]


@merchants_app.command("list")
def merchants_list(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
    mcc: Annotated[int | None, typer.Option(help="Only this MCC")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many")] = None,
) -> None:
    """Merchants, with their terminal count."""
    check_format(fmt)
    st = state(ctx)
    with handled():
        engine = st.engine()
        counts = (
            select(TERMINALS.c.merchant_id, func.count().label("n"))
            .where(TERMINALS.c.status.in_([Status.DEPLOYED, Status.FAULTY]))
            .group_by(TERMINALS.c.merchant_id)
            .subquery()
        )
        stmt = (
            select(MERCHANTS, func.coalesce(counts.c.n, 0).label("terminals"))
            .outerjoin(counts, counts.c.merchant_id == MERCHANTS.c.id)
            .order_by(MERCHANTS.c.id)
        )
        if mcc is not None:
            stmt = stmt.where(MERCHANTS.c.mcc == mcc)
        if region is not None:
            stmt = stmt.where(MERCHANTS.c.region == region)
        if limit:
            stmt = stmt.limit(limit)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
    columns = [*MERCHANT_COLUMNS, "terminals"]
    if fmt == "table":
        columns = [
            "id",
            "name",
            "mcc",
            "phone",
            "email",
            "language",
            "timezone",
            "channels",
            "terminals",
        ]
    emit(rows, columns, fmt, title="Merchants")


@merchants_app.command("show")
def merchants_show(
    ctx: typer.Context,
    merchant_id: Annotated[str, typer.Argument(help="Merchant id")],
    fmt: FormatOpt = "table",
) -> None:
    """One merchant, its contact data and its terminals."""
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        engine = st.engine()
        with engine.connect() as conn:
            row = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)).first()
            if row is None:
                raise fail(f"unknown merchant {merchant_id}")
            terminals = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        TERMINALS.c.serial,
                        TERMINALS.c.model,
                        TERMINALS.c.firmware,
                        TERMINALS.c.tid,
                        TERMINALS.c.status,
                        TERMINALS.c.active_version,
                    )
                    .where(TERMINALS.c.merchant_id == merchant_id)
                    .order_by(TERMINALS.c.serial)
                )
            ]
    merchant = dict(row._mapping)
    if fmt == "json":
        emit(
            [merchant | {"terminals": terminals}],
            MERCHANT_COLUMNS,
            "json",
            json_doc=lambda rows: rows[0],
        )
        return
    _show_record(f"Merchant {merchant_id}", merchant)
    emit(
        terminals,
        ["serial", "model", "firmware", "tid", "status", "active_version"],
        "table",
        title="Terminals",
    )


def _show_record(title: str, record: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        table.add_row(key, "" if text is None else str(text))
    out.print(table)


@terminals_app.command("import")
def terminals_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Inventory CSV or JSON")],
    file_format: FileFormatOpt = None,
    output: Annotated[str, typer.Option("--output", help="text or json")] = "text",
) -> None:
    """Import (upsert) an inventory. One bad row rejects the file; nothing is written.

    CSV columns: serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,
    status,link (required), fault_count,last_seen,active_version,pending_version (optional).
    """
    st = state(ctx)
    with handled():
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


TERMINAL_COLUMNS = [c.name for c in TERMINAL.columns]


@terminals_app.command("list")
def terminals_list(
    ctx: typer.Context,
    fmt: FormatOpt = "table",
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model")] = None,
    firmware: Annotated[str | None, typer.Option(help="Only this firmware version")] = None,
    merchant: Annotated[str | None, typer.Option(help="Only this merchant's")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (table: 100)")] = None,
) -> None:
    """Terminals, filtered."""
    check_format(fmt)
    if status is not None and status not in Status.__members__.values():
        raise fail(f"--status: unknown status {status!r}", 2)
    st = state(ctx)
    if fmt == "table" and limit is None:
        limit = 100
    with handled():
        rows = iter_terminals(
            st.engine(),
            limit=limit,
            status=status,
            model=model,
            firmware=firmware,
            merchant_id=merchant,
        )
        columns = TERMINAL_COLUMNS
        if fmt == "table":
            columns = [
                "serial",
                "model",
                "firmware",
                "tid",
                "merchant_id",
                "status",
                "fault_count",
                "last_seen",
                "active_version",
                "pending_version",
            ]
        shown = emit(rows, columns, fmt, title="Terminals")
    if fmt == "table" and limit and shown == limit:
        err_console.print(f"(first {limit}; --limit to see more, --format csv for all)")


@terminals_app.command("show")
def terminals_show(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    fmt: FormatOpt = "table",
) -> None:
    """One terminal, its model, merchant and its audit history."""
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        engine = st.engine()
        with engine.connect() as conn:
            row = get_terminal(conn, serial)
            if row is None:
                raise fail(f"unknown terminal {serial}")
            model = conn.execute(select(MODELS).where(MODELS.c.code == row["model"])).first()
        history = [
            audit.as_row(a)
            for a in audit.query(engine, audit.AuditFilter(target=f"terminal:{serial}"))
        ]
    cells = terminal_cells(row)
    if fmt == "json":
        doc = cells | {"model_info": dict(model._mapping) if model else None, "history": history}
        out.print_json(json.dumps(doc, default=str))
        return
    _show_record(f"Terminal {serial}", cells)
    if history:
        emit(history, ["at", "actor", "action", "reason", "details"], "table", title="History")


def _cells(**options: Any) -> dict[str, str]:
    return {k: str(v) for k, v in options.items() if v is not None}


ReasonOpt = Annotated[str, typer.Option(help="Why (kept in the audit log)")]


@terminals_app.command("add")
def terminals_add(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    model: Annotated[str, typer.Option(help="Model code (in the catalog)")],
    firmware: Annotated[str, typer.Option(help="Firmware version (in the catalog)")],
    status: Annotated[str, typer.Option(help="in_stock, deployed, faulty, …")] = "in_stock",
    tid: Annotated[str | None, typer.Option(help="Terminal ID, 8 characters")] = None,
    mid: Annotated[str | None, typer.Option(help="Merchant ID, 15 characters")] = None,
    merchant: Annotated[str | None, typer.Option(help="Merchant id")] = None,
    manufactured_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    deployed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    link: Annotated[str | None, typer.Option(help="socket://host:port or a device")] = None,
    reason: ReasonOpt = "",
) -> None:
    """Add one terminal (checked like an import row)."""
    st = state(ctx)
    changes = _cells(
        model=model,
        firmware=firmware,
        status=status,
        tid=tid,
        mid=mid,
        merchant_id=merchant,
        manufactured_on=manufactured_on,
        deployed_on=deployed_on,
        link=link,
    )
    with handled():
        upsert_terminal(st.engine(), serial, changes, actor=st.actor, reason=reason, create=True)
    out.print(f"added {serial}", highlight=False)


@terminals_app.command("update")
def terminals_update(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="Serial number")],
    status: Annotated[str | None, typer.Option(help="New status")] = None,
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
    st = state(ctx)
    changes = _cells(
        status=status,
        firmware=firmware,
        tid=tid,
        mid=mid,
        merchant_id=merchant,
        deployed_on=deployed_on,
        link=link,
        fault_count=fault_count,
    )
    with handled():
        engine = st.engine()
        if add_fault:
            with engine.connect() as conn:
                row = get_terminal(conn, serial)
            if row is None:
                raise fail(f"unknown terminal {serial}")
            changes["fault_count"] = str(int(changes.get("fault_count", row["fault_count"])) + 1)
        if not changes:
            raise fail("nothing to change: give at least one option", 2)
        before, after = upsert_terminal(
            engine, serial, changes, actor=st.actor, reason=reason, create=False
        )
    old, new = terminal_cells(before or {}), terminal_cells(after)
    changed = [f"{k}: {old[k] or '∅'} → {new[k] or '∅'}" for k in new if old[k] != new[k]]
    out.print(f"{serial}: " + ("; ".join(changed) if changed else "no change"), highlight=False)


@terminals_app.command("export")
def terminals_export(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json")] = "csv",
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="File (default stdout)")
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
) -> None:
    """Every terminal in the import's shape (`terminals import` reads it back)."""
    check_format(fmt, ("csv", "json"))
    st = state(ctx)
    with handled():
        rows = (terminal_cells(r) for r in iter_terminals(st.engine(), status=status))
        count = emit(rows, TERMINAL_COLUMNS, fmt, out_file=out_file)
    if out_file is not None:
        err_console.print(f"wrote {count} terminals to {out_file}", highlight=False)
