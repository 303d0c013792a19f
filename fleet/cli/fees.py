"""`posfleet fees …`: check, publish, list, show, diff. Each command parses its options,
calls :mod:`fleet.fees` and prints; domain modules load inside the command (quick start),
and what they raise is the root's to print (:mod:`fleet.cli`)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from fleet.cli.common import (
    Format,
    FormatOpt,
    TableJson,
    TableJsonOpt,
    emit,
    err_console,
    fail,
    hints,
    limit_option,
    out,
    reason_option,
    state,
)

__all__ = ["fees_app"]

fees_app = typer.Typer(help="Fee tables: check, publish, list, show, diff.", no_args_is_help=True)


class TableJsonToml(enum.StrEnum):
    """``fees show --format``: the rules as a table or JSON, or the TOML as published."""

    TABLE = "table"
    JSON = "json"
    TOML = "toml"


@fees_app.command("check")
def fees_check(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Fee table TOML")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Validate a fee-table file; show its rules, size and who it applies to."""
    from fleet.fees import describe_rule, read_table_file  # noqa: PLC0415
    from protocols.feetable import BLOCK_SIZE  # noqa: PLC0415

    _, parsed = read_table_file(path)
    table = parsed.table(1)
    raw = table.to_bytes()
    rules = [
        {"rule": i, "source": f"rules[{parsed.sources[i]}]", "meaning": describe_rule(r, table)}
        for i, r in enumerate(table.rules)
    ]
    if fmt == TableJson.JSON:
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
        err_console.print(
            Text.assemble(("warning:", "yellow"), f" {warning}"), highlight=False, soft_wrap=True
        )


@fees_app.command("publish")
@hints(NoticePeriodError="use --override-notice --reason TEXT")
def fees_publish(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Fee table TOML")],
    override_notice: Annotated[
        bool, typer.Option("--override-notice", help="Publish a raise inside the notice period")
    ] = False,
    reason: Annotated[str | None, reason_option("Why (required with --override-notice)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the impact; store nothing")
    ] = False,
    reason_code: Annotated[
        str,
        typer.Option(
            "--reason-code",
            help="Why, as merchants read it in their language: fee_review, scheme_fees, "
            "cost_change, other",
        ),
    ] = "fee_review",
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Publish a table as the next version: stored immutable, notices queued, audited."""
    from fleet.fees import plan, publish, read_table_file, sha256  # noqa: PLC0415

    if override_notice and not reason:
        raise fail("--override-notice needs --reason TEXT (it is audited)", 2)
    st = state(ctx)
    policy = st.policy().fees
    if dry_run:
        _, parsed = read_table_file(path)
        with st.engine().connect() as conn:
            p = plan(conn, parsed, policy, reason_code=reason_code)
    else:
        p = publish(
            st.engine(), path, actor=st.actor, policy=policy,
            override_reason=reason if override_notice else None, reason_code=reason_code,
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
        "notices": len(p.notices()),  # what the publication queues (would queue)
        "left_out_other_currency": len(p.foreign),
        "notice_ok": p.notice_ok,
        "reason_code": p.reason_code,
        "earliest_effective_for_a_raise": p.earliest_effective.isoformat(),
    }
    if fmt == TableJson.JSON:
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
        f"{summary['notices']} fee-change notices {'would be ' if dry_run else ''}queued",
        highlight=False,
    )
    if p.foreign:
        countries = sorted({c for _, c in p.foreign})
        out.print(
            f"{len(p.foreign)} merchants of the group pay in another currency than "
            f"{p.parsed.currency_alpha} ({', '.join(countries)}): the table does not apply "
            f"to them (e.g. {', '.join(m for m, _ in p.foreign[:3])})",
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
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Published tables, newest first, with the merchants and terminals they target."""
    from fleet.fees import load_tables, target_counts  # noqa: PLC0415

    with state(ctx).engine().connect() as conn:
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
        if fmt == Format.TABLE:
            row["effective"] = p.table.effective.isoformat()[:16].replace("T", " ")
            row["published"] = f"{p.published_at.isoformat()[:10]} {p.published_by}"
            row["raise"] = ("yes, overridden" if p.notice_override else "yes") if p.raises else "no"
            row["merchants"] = merchants
            row["terminals at it"] = f"{at_it}/{terminals}"
        rows.append(row)
    emit(
        rows, _LIST_TABLE if fmt == Format.TABLE else _LIST_ALL, fmt, title="Fee tables",
        drop_first=["terminals at it", "merchants", "published", "applies_to"],
    )  # fmt: skip


@fees_app.command("show")
def fees_show(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Version")],
    fmt: Annotated[TableJsonToml, typer.Option("--format", "-f", help="Output format")] = (
        TableJsonToml.TABLE
    ),
) -> None:
    """One published table: its rules, or its TOML source exactly as published."""
    from fleet.fees import source_of, table_doc  # noqa: PLC0415

    with state(ctx).engine().connect() as conn:
        doc = table_doc(conn, version)
        source = source_of(conn, version)
    if fmt == TableJsonToml.TOML:
        out.print(source, end="", markup=False, highlight=False)
        return
    rules = doc["rules"]
    if fmt == TableJsonToml.JSON:
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
    fmt: TableJsonOpt = TableJson.TABLE,
    limit: Annotated[int, limit_option("Table: merchants shown")] = 20,
) -> None:
    """Rule by rule, and each merchant's fee on the typical basket before and after."""
    from fleet.fees import fee_diff  # noqa: PLC0415

    st = state(ctx)
    with st.engine().connect() as conn:
        d = fee_diff(conn, old, new, st.policy().fees)
    impact = [
        {"merchant": m.merchant_id, "name": m.name, "mcc": f"{m.mcc:04d}",
         "before": d.money(m.before), "after": d.money(m.after), "change": d.money(m.change)}
        for m in d.merchants
    ]  # fmt: skip
    basket = d.basket_text()
    if fmt == TableJson.JSON:
        doc = {"old": old, "new": new, "rules": d.rules, "basket": basket, "merchants": impact}
        out.print_json(json.dumps(doc))
        return
    emit(d.rules, ["rule", "change", "old", "new"], "table", title=f"Rules v{old} → v{new}")
    up = sum(1 for m in d.merchants if m.direction == "up")
    first = sum(1 for m in d.merchants if m.direction == "new")
    out.print(
        f"typical basket ({basket}): {len(impact)} merchants change, {up} pay more"
        + (f", {first} get their first table" if first else ""),
        highlight=False,
    )
    columns = ["merchant", "name", "mcc", "before", "after", "change"]
    emit(impact[:limit], columns, "table", title="Fee on the typical basket")
