"""`posfleet catalog …` and `posfleet merchants …`.

Each command reads its options, calls one function of :mod:`fleet.inventory` and prints
what it returns. The domain is imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fleet.cli.common import (
    FileFormatOpt,
    Format,
    FormatOpt,
    ImportOutput,
    ImportOutputOpt,
    TableJson,
    TableJsonOpt,
    emit,
    fail,
    limit_option,
    out,
    print_import,
    reason_option,
    show_record,
    state,
)

catalog_app = typer.Typer(help="Terminal models, firmware and advisories.", no_args_is_help=True)
merchants_app = typer.Typer(help="Merchants and how to reach them.", no_args_is_help=True)


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
    print_import(import_catalog(st.engine(), path, actor=st.actor, fmt=file_format), output)


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
    from fleet.core.money import format_minor  # noqa: PLC0415
    from fleet.inventory import list_catalog  # noqa: PLC0415

    models = list_catalog(state(ctx).engine())
    rows: list[dict[str, Any]] = []
    for info in models:
        m = info.model
        rows.append(
            m.model_dump()
            | {
                "capabilities": m.capabilities(),
                "price": format_minor(m.unit_price, m.currency),
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
    print_import(import_merchants(st.engine(), path, actor=st.actor, fmt=file_format), output)


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
    limit: Annotated[int | None, limit_option("At most this many")] = None,
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


@merchants_app.command("update")
def merchants_update(
    ctx: typer.Context,
    merchant_id: Annotated[str, typer.Argument(help="The merchant's id")],
    phone: Annotated[
        str | None, typer.Option(help="Phone number (+country code, or national) ('' clears)")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Email address ('' clears)")] = None,
    language: Annotated[
        str | None, typer.Option(help="Language of its notices (en, zh-CN…)")
    ] = None,
    reason: Annotated[str, reason_option("Why (kept in the audit log)")] = "",
) -> None:
    """Change a merchant's contact data without a re-import (checked, audited)."""
    from fleet.inventory import update_merchant  # noqa: PLC0415

    changes = {
        k: v
        for k, v in (("phone", phone), ("email", email), ("language", language))
        if v is not None
    }
    if not changes:
        raise fail("give --phone, --email or --language", 2)
    st = state(ctx)
    changed = update_merchant(st.engine(), merchant_id, changes, actor=st.actor, reason=reason)
    text = "; ".join(f"{k}: {a or '∅'} → {b or '∅'}" for k, (a, b) in changed.items())
    out.print(f"{merchant_id}: {text or 'unchanged'}", highlight=False, soft_wrap=True)
