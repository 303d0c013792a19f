"""`posfleet fees …`: check, publish, list, show, diff. Each command parses its options,
calls one domain function of :mod:`fleet.fees` and prints; domain modules load inside
the command (quick start)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.common import check_format, emit, err_console, fail, out, state
from fleet.cli.domain_errors import fleet_errors

fees_app = typer.Typer(help="Fee tables: check, publish, list, show, diff.", no_args_is_help=True)


@fees_app.command("check")
def fees_check(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Fee table TOML")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Validate a fee-table file; show its rules, size and who it applies to."""
    from fleet.fees import describe_rule, read_table_file  # noqa: PLC0415
    from protocols.feetable import BLOCK_SIZE  # noqa: PLC0415

    check_format(fmt, ("table", "json"))
    with fleet_errors():
        _, parsed = read_table_file(path)
    table = parsed.table(1)
    raw = table.to_bytes()
    rules = [
        {"rule": i, "source": f"rules[{parsed.sources[i]}]", "meaning": describe_rule(r, table)}
        for i, r in enumerate(table.rules)
    ]
    if fmt == "json":
        out.print_json(
            json.dumps(
                {
                    "file": str(path),
                    "name": parsed.name,
                    "currency": parsed.currency_alpha,
                    "effective": parsed.effective.isoformat(),
                    "applies_to": parsed.group.describe(),
                    "rules": rules,
                    "bytes": len(raw),
                    "blocks": len(table.blocks()),
                    "warnings": parsed.shadowed(),
                }
            )
        )
        return
    out.print(
        f"{path}: ok — {parsed.name or '(no name)'}, {parsed.currency_alpha}, effective "
        f"{parsed.effective.isoformat()}, for {parsed.group.describe()}",
        highlight=False,
    )
    emit(rules, ["rule", "source", "meaning"], "table")
    out.print(
        f"{len(raw)} bytes on the wire, {len(table.blocks())} blocks of {BLOCK_SIZE} B",
        highlight=False,
    )
    for warning in parsed.shadowed():
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def _override_hint(exc: Exception) -> str:
    from fleet.fees import NoticePeriodError  # noqa: PLC0415

    return " (use --override-notice --reason TEXT)" if isinstance(exc, NoticePeriodError) else ""


@fees_app.command("publish")
def fees_publish(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Fee table TOML")],
    override_notice: Annotated[
        bool, typer.Option("--override-notice", help="Publish a raise inside the notice period")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why (required with --override-notice)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the impact; store nothing")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Publish a table as the next version: stored immutable, notices queued, audited."""
    from fleet.fees import plan, publish, read_table_file, sha256  # noqa: PLC0415

    check_format(fmt, ("table", "json"))
    if override_notice and not reason:
        raise fail("--override-notice needs --reason TEXT (it is audited)", 2)
    st = state(ctx)
    with fleet_errors(_override_hint):
        policy = st.policy().fees
        if dry_run:
            _, parsed = read_table_file(path)
            with st.engine().connect() as conn:
                p = plan(conn, parsed, policy)
        else:
            p = publish(
                st.engine(), path, actor=st.actor, policy=policy,
                override_reason=reason if override_notice else None,
            )  # fmt: skip
    wire = p.table.to_bytes()
    summary: dict[str, Any] = {
        "version": p.version,
        "published": not dry_run,
        "effective": p.table.effective.isoformat(),
        "sha256": sha256(wire),
        "bytes": len(wire),
        "merchants": len(p.impacts),
        "raised": len(p.raises),
        "lowered": len(p.lowered),
        "notices": len(p.notices()) if not dry_run else 0,
        "notice_ok": p.notice_ok,
        "earliest_effective_for_a_raise": p.earliest_effective.isoformat(),
    }
    if fmt == "json":
        out.print_json(json.dumps(summary))
        return
    verb = "would publish" if dry_run else "published"
    out.print(
        f"{verb} fee table v{p.version} ({summary['bytes']} B, sha256 "
        f"{summary['sha256'][:16]}…), effective {summary['effective']}",
        highlight=False,
    )
    out.print(
        f"{summary['merchants']} merchants: {summary['raised']} pay more, "
        f"{summary['lowered']} pay less on the typical basket; "
        f"{summary['notices']} fee-change notices queued",
        highlight=False,
    )
    if p.raises and not p.notice_ok:
        err_console.print(f"notice period overridden: {reason}", highlight=False)


_LIST_TABLE = ["version", "name", "effective", "applies_to", "rules", "published", "raise",
               "merchants", "terminals at it"]  # fmt: skip
_LIST_ALL = ["version", "name", "effective", "applies_to", "rules", "published_at", "by",
             "raises", "override", "target_of_merchants", "terminals", "terminals_at_version",
             "sha256"]  # fmt: skip


@fees_app.command("list")
def fees_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Published tables, newest first, with the merchants and terminals they target."""
    from fleet.fees import load_tables, target_counts  # noqa: PLC0415

    check_format(fmt)
    st = state(ctx)
    with fleet_errors(), st.engine().connect() as conn:
        tables = load_tables(conn)
        counts = target_counts(conn, tables)
    rows: list[dict[str, Any]] = []
    for p in sorted(tables.values(), key=lambda t: -t.version):
        merchants, terminals, at_it = counts.get(p.version, (0, 0, 0))
        row: dict[str, Any] = {
            "version": p.version, "name": p.name, "effective": p.table.effective.isoformat(),
            "applies_to": p.group.describe(), "rules": len(p.table.rules),
            "published_at": p.published_at.isoformat(), "by": p.published_by,
            "raises": p.raises, "override": p.notice_override or "",
            "target_of_merchants": merchants, "terminals": terminals,
            "terminals_at_version": at_it, "sha256": p.sha256,
        }  # fmt: skip
        if fmt == "table":
            row["effective"] = p.table.effective.isoformat()[:16].replace("T", " ")
            row["published"] = f"{p.published_at.isoformat()[:10]} {p.published_by}"
            row["raise"] = ("yes, overridden" if p.notice_override else "yes") if p.raises else "no"
            row["merchants"] = merchants
            row["terminals at it"] = f"{at_it}/{terminals}"
        rows.append(row)
    emit(rows, _LIST_TABLE if fmt == "table" else _LIST_ALL, fmt, title="Fee tables")


@fees_app.command("show")
def fees_show(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Version")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or toml")] = "table",
) -> None:
    """One published table: its rules, or its TOML source exactly as published."""
    from fleet.fees import source_of, table_doc  # noqa: PLC0415

    check_format(fmt, ("table", "json", "toml"))
    st = state(ctx)
    with fleet_errors(), st.engine().connect() as conn:
        doc = table_doc(conn, version)
        source = source_of(conn, version)
    if fmt == "toml":
        out.print(source, end="", markup=False, highlight=False)
        return
    rules = doc["rules"]
    if fmt == "json":
        out.print_json(json.dumps(doc))
        return
    out.print(
        f"fee table v{version} {doc['name']!r}: effective {doc['effective']}, for "
        f"{doc['applies_to']}; published {doc['published_at']} by {doc['published_by']}; "
        f"sha256 {doc['sha256']}",
        highlight=False,
    )
    emit(rules, ["rule", "meaning"], "table")


@fees_app.command("diff")
def fees_diff(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(help="Old version")],
    new: Annotated[int, typer.Argument(help="New version")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
    limit: Annotated[int, typer.Option(help="Table: merchants shown")] = 20,
) -> None:
    """Rule by rule, and each merchant's fee on the typical basket before and after."""
    from fleet.fees import fee_diff  # noqa: PLC0415

    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with fleet_errors(), st.engine().connect() as conn:
        d = fee_diff(conn, old, new, st.policy().fees)
    impact = [
        {"merchant": m.merchant_id, "name": m.name, "mcc": f"{m.mcc:04d}",
         "before": d.money(m.before), "after": d.money(m.after), "change": d.money(m.change)}
        for m in d.merchants
    ]  # fmt: skip
    basket = d.basket_text()
    if fmt == "json":
        doc = {"old": old, "new": new, "rules": d.rules, "basket": basket, "merchants": impact}
        out.print_json(json.dumps(doc))
        return
    emit(d.rules, ["rule", "change", "old", "new"], "table", title=f"Rules v{old} → v{new}")
    up = sum(1 for m in d.merchants if m.change >= 0)
    out.print(
        f"typical basket ({basket}): {len(impact)} merchants change, {up} pay more",
        highlight=False,
    )
    columns = ["merchant", "name", "mcc", "before", "after", "change"]
    emit(impact[:limit], columns, "table", title="Fee on the typical basket")


# The root app (fleet.cli) imports the three apps of the former fees module from here.
from fleet.cli.push import push_command  # noqa: E402
from fleet.cli.rollout import rollout_app  # noqa: E402

__all__ = ["fees_app", "push_command", "rollout_app"]
