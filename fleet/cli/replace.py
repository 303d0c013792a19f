"""`posfleet replacements` and `posfleet sync`."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fleet.cli.common import (
    check_format,
    emit,
    err_console,
    fail,
    handled,
    option_date,
    option_days,
    out,
    state,
)
from fleet.device.sync import SyncError, sync
from fleet.inventory.service import iter_terminals
from fleet.replacements.rules import REASONS, Forecast, Replacement, flag, format_money

CSV_COLUMNS = [
    "serial",
    "model",
    "firmware",
    "merchant_id",
    "status",
    "priority",
    "replace_by",
    "reasons",
    "details",
    "replacement_model",
    "cost",
    "currency",
]
FORECAST_COLUMNS = ["quarter", "units", "cost", "currency"]


def _flat(r: Replacement) -> dict[str, Any]:
    return {
        "serial": r.serial,
        "model": r.model,
        "firmware": r.firmware,
        "merchant_id": r.merchant_id,
        "status": r.status,
        "priority": f"P{r.priority}",
        "replace_by": r.replace_by.isoformat(),
        "reasons": ";".join(x.code for x in r.reasons),
        "details": " | ".join(x.detail for x in r.reasons),
        "replacement_model": r.replacement_model,
        "cost": format_money(r.cost, r.currency),
        "currency": r.currency,
    }


def replacements(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Judge as of this date (default today)")
    ] = None,
    horizon: Annotated[
        str | None, typer.Option(help="Look-ahead, e.g. 180d, 26w, 6m (default: policy)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    forecast_only: Annotated[
        bool, typer.Option("--forecast", help="Only the per-quarter forecast")
    ] = False,
    limit: Annotated[int, typer.Option(help="Table: show the first N by priority")] = 50,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file")] = None,
) -> None:
    """Terminals that need replacing: every reason, a priority, a replace-by date, and the
    forecast of units and cost per quarter."""
    check_format(fmt)
    day = option_date(as_of, "--as-of") or datetime.now(UTC).date()
    days = option_days(horizon, "--horizon")
    st = state(ctx)
    with handled():
        policy = st.policy().replacement
        engine = st.engine()
        forecast = Forecast()
        by_reason: Counter[str] = Counter()
        by_priority: Counter[int] = Counter()
        found: list[Replacement] = []
        for r in flag(engine, policy, day, days):
            forecast.add(r)
            by_priority[r.priority] += 1
            by_reason.update(x.code for x in r.reasons)
            found.append(r)
    found.sort(key=Replacement.sort_key)
    horizon_days = policy.horizon_days if days is None else days
    if forecast_only:
        emit(
            forecast.rows(), FORECAST_COLUMNS, fmt, title="Replacement forecast", out_file=out_file
        )
        return
    if fmt == "csv":
        emit((_flat(r) for r in found), CSV_COLUMNS, fmt, out_file=out_file)
        return
    if fmt == "json":
        doc = {
            "as_of": day.isoformat(),
            "horizon_days": horizon_days,
            "policy": policy.__dict__
            | {"statuses": list(policy.statuses), "require": list(policy.require)},
            "summary": {
                "terminals": len(found),
                "by_priority": {f"P{p}": n for p, n in sorted(by_priority.items())},
                "by_reason": {code: by_reason[code] for code in REASONS if by_reason[code]},
                "cost": {c: format_money(v, c) for c, v in forecast.total_cost().items()},
            },
            "terminals": [r.as_dict() for r in found],
            "forecast": forecast.rows(),
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False)
        if out_file:
            out_file.write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return
    _table(found[:limit], len(found), forecast, by_priority, by_reason, day, horizon_days)


def _table(
    shown: list[Replacement],
    total: int,
    forecast: Forecast,
    by_priority: Counter[int],
    by_reason: Counter[str],
    day: Any,
    horizon_days: int,
) -> None:
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
            f"[{styles[r.priority]}]P{r.priority}[/]",
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
    summary = ", ".join(f"P{p}: {n}" for p, n in sorted(by_priority.items()))
    reasons = ", ".join(f"{c}: {by_reason[c]}" for c in REASONS if by_reason[c])
    out.print(f"{total} terminals to replace ({summary}); reasons: {reasons}", highlight=False)
    ftable = Table(title="Forecast by quarter of replace-by date", title_justify="left")
    for column in FORECAST_COLUMNS:
        ftable.add_column(column, justify="right" if column in ("units", "cost") else "left")
    for row in forecast.rows():
        ftable.add_row(row["quarter"], f"{row['units']:,}", row["cost"], row["currency"])
    for currency, amount in forecast.total_cost().items():
        ftable.add_row(
            "total",
            f"{forecast.total_units_in(currency):,}",
            format_money(amount, currency),
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
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Sign on to terminals (0800/001) and record model, firmware, versions and last seen."""
    check_format(fmt, ("table", "json"))
    if all_ == bool(port or terminal):
        raise fail("give --port and/or --terminal, or --all", 2)
    st = state(ctx)
    with handled():
        engine = st.engine()
        targets: list[tuple[str | None, str | None]]
        if all_:
            targets = [
                (r["serial"], None)
                for r in iter_terminals(engine)
                if r["link"] and r["status"] in ("deployed", "faulty")
            ]
        else:
            targets = [(terminal, port)]
        results: list[dict[str, Any]] = []
        failures = 0
        for serial, url in targets:
            try:
                result = sync(
                    engine, actor=st.actor, serial=serial, port=url, baud=baud, t2=timeout
                )
            except SyncError as exc:
                failures += 1
                results.append({"serial": serial, "error": str(exc)})
                err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
                continue
            results.append(result.as_dict())
    if fmt == "json":
        out.print_json(json.dumps(results))
    else:
        good = [r for r in results if "error" not in r]
        for r in good:
            r["changed"] = (
                "; ".join(f"{k}: {a or '∅'} → {b}" for k, (a, b) in r["changes"].items()) or "-"
            )
        for r in good:
            r["tables"] = f"{r['active_version']}/{r['pending_version']}"
        emit(
            good,
            ["serial", "model", "firmware", "tables", "changed"],
            "table",
            title="Synced",
        )
    if failures:
        raise typer.Exit(1)
