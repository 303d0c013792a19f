"""`posfleet replacements` and `posfleet sync`.

The domain is imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from fleet.cli.common import (
    ForceOpt,
    Format,
    FormatOpt,
    OutOpt,
    TableJson,
    TableJsonOpt,
    counted_progress,
    emit,
    emit_json,
    err_console,
    fail,
    limit_option,
    option_date,
    option_days,
    out,
    state,
)

if TYPE_CHECKING:
    from fleet.replacements import Assessment, Replacement

FORECAST_COLUMNS = ["quarter", "units", "cost", "currency"]


def replacements(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Judge as of this date (default today)")
    ] = None,
    horizon: Annotated[
        str | None, typer.Option(help="Look-ahead, e.g. 180d, 26w, 6m (default: policy)")
    ] = None,
    fmt: FormatOpt = Format.TABLE,
    forecast_only: Annotated[
        bool, typer.Option("--forecast", help="Only the per-quarter forecast")
    ] = False,
    limit: Annotated[int, limit_option("Table: show the first N by priority")] = 50,
    out_file: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Terminals that need replacing: every reason, a priority, a replace-by date, and the
    forecast of units and cost per quarter."""
    from fleet.replacements import assess  # noqa: PLC0415
    from fleet.replacements.assess import CSV_COLUMNS, flat_row  # noqa: PLC0415

    day = option_date(as_of, "--as-of") or datetime.now(UTC).date()
    days = option_days(horizon, "--horizon")
    st = state(ctx)
    found = assess(st.engine(), st.policy().replacement, day, days)
    if forecast_only:
        rows = found.forecast.rows()
        emit(
            rows, FORECAST_COLUMNS, fmt, title="Replacement forecast", out_file=out_file,
            force=force,
        )  # fmt: skip
    elif fmt == Format.CSV:
        emit(map(flat_row, found.replacements), CSV_COLUMNS, fmt, out_file=out_file, force=force)
    elif fmt == Format.JSON:
        emit([found.as_dict()], [], fmt, out_file=out_file, force=force, json_doc=lambda r: r[0])
    else:
        _table(found, found.replacements[:limit])


def _table(found: Assessment, shown: list[Replacement]) -> None:
    from fleet.core.money import format_minor  # noqa: PLC0415

    day, horizon_days, total = found.as_of, found.horizon_days, len(found.replacements)
    if total == 0:
        out.print(f"No terminal needs replacing as of {day} (horizon {horizon_days} days).")
        return
    table = Table(
        title=f"Replacements as of {day}, horizon {horizon_days} days", title_justify="left"
    )
    table.add_column("P", no_wrap=True)
    table.add_column("serial", no_wrap=True)
    table.add_column("model / firmware")
    table.add_column("replace by", no_wrap=True)
    table.add_column("reasons", overflow="fold", ratio=1)
    styles = {1: "bold red", 2: "yellow", 3: "default"}
    for r in shown:
        table.add_row(
            Text(f"P{r.priority}", style=styles[r.priority]),
            r.serial,
            f"{r.model} {r.firmware}",
            r.replace_by.isoformat(),
            "\n".join(x.detail for x in r.reasons),
        )
    out.print(table)
    if total > len(shown):
        err_console.print(
            f"(first {len(shown)} of {total} by priority; --limit or --format csv for all)"
        )
    summary = ", ".join(f"P{p}: {n}" for p, n in sorted(found.by_priority.items()))
    reasons = ", ".join(f"{c}: {n}" for c, n in found.reasons().items())
    out.print(f"{total} terminals to replace ({summary}); reasons: {reasons}", highlight=False)
    forecast = found.forecast
    ftable = Table(title="Forecast by quarter of replace-by date", title_justify="left")
    for column in FORECAST_COLUMNS:
        ftable.add_column(column, justify="right" if column in ("units", "cost") else "left")
    for row in forecast.rows():
        ftable.add_row(row["quarter"], f"{row['units']:,}", row["cost"], row["currency"])
    for currency, amount in forecast.total_cost().items():
        ftable.add_row(
            "total",
            f"{forecast.total_units_in(currency):,}",
            format_minor(amount, currency),
            currency,
            style="bold",
        )
    out.print(ftable)


def sync_command(
    ctx: typer.Context,
    port: Annotated[
        str | None, typer.Option(help="Where the terminal is: socket://host:port, a device…")
    ] = None,
    terminal: Annotated[
        str | None, typer.Option("--terminal", "-t", help="Serial (default: by --port)")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every deployed or faulty terminal with a link")
    ] = False,
    baud: Annotated[int, typer.Option(help="Line speed")] = 115200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer (T2)")] = 5.0,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=256, help="--all: terminals at once")
    ] = 16,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Sign on to terminals (0800/001) and record model, firmware, versions and last seen."""
    if all_ == bool(port or terminal):
        raise fail("give --port and/or --terminal, or --all", 2)
    from fleet.device.sync import SyncError, sync, sync_many  # noqa: PLC0415
    from fleet.inventory import linked_serials  # noqa: PLC0415

    st = state(ctx)
    engine = st.engine()
    outcomes: list[Any]
    serials: list[str | None] = [terminal]
    if all_:
        serials = list(linked_serials(engine))
        with counted_progress("sync", len(serials)) as advance:
            outcomes = sync_many(
                engine, [s for s in serials if s], actor=st.actor, workers=jobs, baud=baud,
                t2=timeout, done=lambda _serial, outcome: advance(isinstance(outcome, SyncError)),
            )  # fmt: skip
    else:
        try:
            outcomes = [sync(engine, actor=st.actor, serial=terminal, port=port, baud=baud,
                             t2=timeout)]  # fmt: skip
        except SyncError as exc:
            outcomes = [exc]
    results: list[dict[str, Any]] = []
    failures = 0
    for serial, outcome in zip(serials, outcomes, strict=True):
        if isinstance(outcome, SyncError):
            failures += 1
            results.append({"serial": serial, "error": str(outcome), "reason": outcome.reason})
            fail(str(outcome))
            continue
        results.append(outcome.as_dict())
    if fmt == TableJson.JSON:
        emit_json(results)
    else:
        good = [r for r in results if "error" not in r]
        for r in good:
            r["changed"] = (
                "; ".join(f"{k}: {a or '∅'} → {b}" for k, (a, b) in r["changes"].items()) or "-"
            )
            r["tables"] = f"{r['active_version']}/{r['pending_version']}"
        emit(good, ["serial", "model", "firmware", "tables", "changed"], "table", title="Synced")
    if failures:
        raise typer.Exit(1)
