"""`posfleet fees …`, `posfleet push`, `posfleet rollout …`."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import select

from fleet.cli.common import check_format, emit, err_console, fail, handled, out, state
from fleet.core.models import FEE_TABLES, MERCHANTS, TERMINALS
from fleet.core.policy import PolicyError, parse_waves, percent_ppm
from fleet.device.push import PushFailedError, load_target, push_terminal
from fleet.fees.publishing import (
    NoticePeriodError,
    load_tables,
    plan,
    publish,
    read_table_file,
    targeted_terminals,
    targets,
)
from fleet.fees.tablefile import (
    FeeFileError,
    Group,
    basket_fees,
    describe_rule,
    exponent_of,
    format_minor,
    parse_basket,
    parse_group,
    rule_diff,
    sha256,
)
from fleet.rollout.service import RolloutError, Worker, cancel, create, pause, resume, status
from protocols.errors import ProtocolError
from protocols.feetable import BLOCK_SIZE
from protocols.mac import load_master_key

fees_app = typer.Typer(help="Fee tables: check, publish, list, show, diff.", no_args_is_help=True)
rollout_app = typer.Typer(help="Staged rollouts of a fee table.", no_args_is_help=True)

KeyOpt = Annotated[
    Path,
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help="Fleet master key file"),
]


def _key(path: Path) -> bytes:
    try:
        return load_master_key(path)
    except (OSError, ProtocolError) as exc:
        raise fail(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


@fees_app.command("check")
def fees_check(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Fee table TOML")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Validate a fee-table file; show its rules, size and who it applies to."""
    check_format(fmt, ("table", "json"))
    try:
        _, parsed = read_table_file(path)
    except FeeFileError as exc:
        raise fail(str(exc)) from None
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
    check_format(fmt, ("table", "json"))
    if override_notice and not reason:
        raise fail("--override-notice needs --reason TEXT (it is audited)", 2)
    st = state(ctx)
    with handled():
        policy = st.policy().fees
        engine = st.engine()
        try:
            if dry_run:
                _, parsed = read_table_file(path)
                with engine.connect() as conn:
                    p = plan(conn, parsed, policy)
            else:
                p = publish(
                    engine,
                    path,
                    actor=st.actor,
                    policy=policy,
                    override_reason=reason if override_notice else None,
                )
        except (FeeFileError, NoticePeriodError) as exc:
            raise fail(str(exc)) from None
    changed = [i for i in p.impacts if i.changed]
    summary: dict[str, Any] = {
        "version": p.version,
        "published": not dry_run,
        "effective": p.table.effective.isoformat(),
        "sha256": sha256(p.table.to_bytes()),
        "bytes": len(p.table.to_bytes()),
        "merchants": len(p.impacts),
        "raised": len(p.raises),
        "lowered": sum(1 for i in p.impacts if i.old_fee is not None and i.new_fee < i.old_fee),
        "notices": len(changed) if not dry_run else 0,
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


@fees_app.command("list")
def fees_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Published tables, newest first, with the merchants and terminals they target."""
    check_format(fmt)
    st = state(ctx)
    with handled():
        engine = st.engine()
        with engine.connect() as conn:
            tables = load_tables(conn)
            merchant_target = targets(conn, tables)
            per_merchant: dict[int, int] = {}
            for v in merchant_target.values():
                per_merchant[v] = per_merchant.get(v, 0) + 1
            terminals: dict[int, tuple[int, int]] = {}
            for mid, active, pending in conn.execute(
                select(
                    TERMINALS.c.merchant_id, TERMINALS.c.active_version, TERMINALS.c.pending_version
                ).where(TERMINALS.c.status.in_(("deployed", "faulty")))
            ):
                target = merchant_target.get(mid)
                if target is None:
                    continue
                n, at = terminals.get(target, (0, 0))
                terminals[target] = (n + 1, at + (target in (active, pending)))
    rows: list[dict[str, Any]] = [
        {
            "version": p.version,
            "name": p.name,
            "effective": p.table.effective.isoformat(),
            "applies_to": p.group.describe(),
            "rules": len(p.table.rules),
            "published_at": p.published_at.isoformat(),
            "by": p.published_by,
            "raises": p.raises,
            "override": p.notice_override or "",
            "target_of_merchants": per_merchant.get(p.version, 0),
            "terminals": terminals.get(p.version, (0, 0))[0],
            "terminals_at_version": terminals.get(p.version, (0, 0))[1],
            "sha256": p.sha256,
        }
        for p in sorted(tables.values(), key=lambda t: -t.version)
    ]
    if fmt == "table":
        for row in rows:
            row["effective"] = row["effective"][:16].replace("T", " ")
            row["published"] = f"{row['published_at'][:10]} {row['by']}"
            row["raise"] = (
                ("yes, overridden" if row["override"] else "yes") if row["raises"] else "no"
            )
            row["merchants"] = row["target_of_merchants"]
            row["terminals at it"] = f"{row['terminals_at_version']}/{row['terminals']}"
        columns = [
            "version",
            "name",
            "effective",
            "applies_to",
            "rules",
            "published",
            "raise",
            "merchants",
            "terminals at it",
        ]
    else:
        columns = [
            "version",
            "name",
            "effective",
            "applies_to",
            "rules",
            "published_at",
            "by",
            "raises",
            "override",
            "target_of_merchants",
            "terminals",
            "terminals_at_version",
            "sha256",
        ]
    emit(rows, columns, fmt, title="Fee tables")


@fees_app.command("show")
def fees_show(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Version")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or toml")] = "table",
) -> None:
    """One published table: its rules, or its TOML source exactly as published."""
    check_format(fmt, ("table", "json", "toml"))
    st = state(ctx)
    with handled():
        engine = st.engine()
        with engine.connect() as conn:
            row = conn.execute(select(FEE_TABLES).where(FEE_TABLES.c.version == version)).first()
            tables = load_tables(conn) if row else {}
    if row is None:
        raise fail(f"fee table {version} is not published")
    p = tables[version]
    if fmt == "toml":
        out.print(row.source, end="", markup=False, highlight=False)
        return
    rules = [{"rule": i, "meaning": describe_rule(r, p.table)} for i, r in enumerate(p.table.rules)]
    doc = {
        "version": version,
        "name": p.name,
        "effective": p.table.effective.isoformat(),
        "applies_to": p.group.describe(),
        "sha256": p.sha256,
        "published_at": p.published_at.isoformat(),
        "published_by": p.published_by,
        "raises": p.raises,
        "notice_override": p.notice_override,
        "rules": rules,
    }
    if fmt == "json":
        out.print_json(json.dumps(doc))
        return
    out.print(
        f"fee table v{version} {p.name!r}: effective {doc['effective']}, for "
        f"{doc['applies_to']}; published {doc['published_at']} by {p.published_by}; "
        f"sha256 {p.sha256}",
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
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        policy = st.policy().fees
        engine = st.engine()
        with engine.connect() as conn:
            tables = load_tables(conn)
            for v in (old, new):
                if v not in tables:
                    raise fail(f"fee table {v} is not published")
            a, b = tables[old], tables[new]
            basket = parse_basket(policy.basket, b.table.currency)
            merchants = [
                row
                for row in conn.execute(
                    select(
                        MERCHANTS.c.id,
                        MERCHANTS.c.name,
                        MERCHANTS.c.mcc,
                        MERCHANTS.c.region,
                        MERCHANTS.c.tags,
                    ).order_by(MERCHANTS.c.id)
                )
                if a.group.includes(row.mcc, row.region, row.tags or [])
                or b.group.includes(row.mcc, row.region, row.tags or [])
            ]
    exp = exponent_of(b.table.currency)
    rules = rule_diff(a.table, b.table)
    impact = []
    for row in merchants:
        before = (
            basket_fees(a.table, row.mcc, basket)
            if a.group.includes(row.mcc, row.region, row.tags or [])
            else None
        )
        after = (
            basket_fees(b.table, row.mcc, basket)
            if b.group.includes(row.mcc, row.region, row.tags or [])
            else None
        )
        if before == after:
            continue
        impact.append(
            {
                "merchant": row.id,
                "name": row.name,
                "mcc": f"{row.mcc:04d}",
                "before": format_minor(before, exp) if before is not None else "",
                "after": format_minor(after, exp) if after is not None else "",
                "change": format_minor((after or 0) - (before or 0), exp),
            }
        )
    impact.sort(key=lambda r: -abs(int(r["change"].replace(".", "").replace("-", "") or 0)))
    basket_text = ", ".join(f"{format_minor(i.amount, exp)} {i.card.name.lower()}" for i in basket)
    if fmt == "json":
        out.print_json(
            json.dumps(
                {"old": old, "new": new, "rules": rules, "basket": basket_text, "merchants": impact}
            )
        )
        return
    emit(rules, ["rule", "change", "old", "new"], "table", title=f"Rules v{old} → v{new}")
    up = sum(1 for r in impact if not r["change"].startswith("-"))
    out.print(
        f"typical basket ({basket_text}): {len(impact)} merchants change, {up} pay more",
        highlight=False,
    )
    emit(
        impact[:limit],
        ["merchant", "name", "mcc", "before", "after", "change"],
        "table",
        title="Fee on the typical basket",
    )


def _push_progress() -> Progress:
    return Progress(
        TextColumn("{task.fields[serial]}", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err_console,
    )


def push_command(
    ctx: typer.Context,
    table: Annotated[int, typer.Option("--table", help="Published version to push")],
    key_file: KeyOpt,
    terminal: Annotated[str | None, typer.Option("--terminal", "-t", help="One terminal")] = None,
    group: Annotated[
        str | None, typer.Option(help="all, mcc=…, region=…, tag=… (';' joins)")
    ] = None,
    port: Annotated[str | None, typer.Option(help="Link URL (default: the recorded link)")] = None,
    baud: Annotated[int, typer.Option(help="Line speed")] = 115200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer (T2)")] = 5.0,
    retries: Annotated[int, typer.Option(help="New links after a broken one (resumes)")] = 3,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Push a table to a terminal or a group: sign on, skip terminals already at it, send,
    commit, verify with a status query and a test sale, record."""
    check_format(fmt, ("table", "json"))
    if (terminal is None) == (group is None):
        raise fail("give --terminal SERIAL or --group G", 2)
    if port and group is not None:
        raise fail("--port works with --terminal only", 2)
    st = state(ctx)
    master = _key(key_file)
    results: list[dict[str, Any]] = []
    with handled():
        policy = st.policy().fees
        engine = st.engine()
        if terminal is not None:
            serials = [terminal]
        else:
            try:
                chosen = parse_group(group or "all")
            except FeeFileError as exc:
                raise fail(str(exc), 2) from None
            serials = _group_terminals(engine, chosen, table)
            if not serials:
                raise fail(
                    f"no deployed terminal with a link has table {table} as its target "
                    f"in {chosen.describe()}"
                )
        with _push_progress() as progress:
            overall = progress.add_task("all", total=len(serials), serial="all", note="")
            for serial in serials:
                task = progress.add_task(serial, total=None, serial=serial, note="")

                def show(stored: int, count: int, task: TaskID = task) -> None:
                    progress.update(task, completed=stored, total=count)

                error = None
                for attempt in range(1, retries + 2):
                    try:
                        target = load_target(engine, serial, table, port)
                        done = push_terminal(
                            engine,
                            target,
                            master_key=master,
                            policy=policy,
                            actor=st.actor,
                            baud=baud,
                            t2=timeout,
                            progress=show,
                            worker="cli",
                        )
                        results.append(done.as_dict())
                        note = done.describe()
                        progress.update(task, note=note)
                        error = None
                        break
                    except PushFailedError as exc:
                        error = str(exc)
                        progress.update(task, note=f"[red]attempt {attempt}: {error}[/]")
                        if not exc.retryable:
                            break
                if error is not None:
                    results.append(
                        {"serial": serial, "version": table, "outcome": "error", "error": error}
                    )
                progress.advance(overall)
    failed = [r for r in results if r["outcome"] == "error"]
    if fmt == "json":
        out.print_json(json.dumps(results))
    else:
        out.print(
            f"{len(results) - len(failed)} of {len(results)} terminals at v{table}"
            + (f"; {len(failed)} failed" if failed else ""),
            highlight=False,
        )
    for r in failed:
        err_console.print(f"[bold red]error:[/] {r['serial']}: {r['error']}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _group_terminals(engine: Any, group: Group, version: int) -> list[str]:
    with engine.connect() as conn:
        return targeted_terminals(conn, version, group)


@rollout_app.command("create")
def rollout_create(
    ctx: typer.Context,
    table: Annotated[int, typer.Option("--table", help="Published version")],
    group: Annotated[str, typer.Option(help="all, mcc=…, region=…, tag=…")] = "all",
    waves: Annotated[str | None, typer.Option(help="Cumulative shares, e.g. 1%,10%,100%")] = None,
    max_failures: Annotated[str | None, typer.Option(help="Halt past this share, e.g. 5%")] = None,
    note: Annotated[str, typer.Option(help="Kept with the rollout")] = "",
) -> None:
    """Create a rollout: one job per terminal whose target is the table, in waves."""
    st = state(ctx)
    with handled():
        policy = st.policy().rollout
        try:
            chosen = parse_group(group)
            wave_list = parse_waves(waves, "--waves") if waves else None
            ppm = percent_ppm(max_failures, "--max-failures") if max_failures else None
        except (FeeFileError, PolicyError) as exc:
            raise fail(str(exc), 2) from None
        try:
            rid, sizes = create(
                st.engine(),
                table,
                group=chosen,
                policy=policy,
                actor=st.actor,
                waves=wave_list,
                max_failure_ppm=ppm,
                note=note,
            )
        except RolloutError as exc:
            raise fail(str(exc)) from None
    out.print(
        f"rollout {rid}: table v{table} to {sum(sizes)} terminals in waves of "
        + " + ".join(map(str, sizes)),
        highlight=False,
    )


@rollout_app.command("run")
def rollout_run(
    ctx: typer.Context,
    rollout_id: Annotated[int, typer.Argument(help="Rollout id")],
    key_file: KeyOpt,
    workers: Annotated[int, typer.Option(help="Pushers in this process")] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name in leases [host:pid]")] = None,
    baud: Annotated[int, typer.Option(help="Line speed")] = 115200,
    timeout: Annotated[float, typer.Option(help="T2 seconds")] = 5.0,
    t1_margin: Annotated[float, typer.Option(help="Extra seconds to wait for an ACK")] = 0.5,
    quiet: Annotated[bool, typer.Option(help="No progress display")] = False,
) -> None:
    """Work on a rollout until it is done, halted, paused or cancelled. Run as many of these,
    on as many machines, as you like (PostgreSQL)."""
    st = state(ctx)
    master = _key(key_file)
    with handled():
        engine = st.engine()
        try:
            info = status(engine, rollout_id)
        except RolloutError as exc:
            raise fail(str(exc)) from None
        total = sum(w["terminals"] for w in info["waves"])
        lock = threading.Lock()
        progress = _push_progress()
        overall = progress.add_task(
            "all", total=total, serial=f"rollout {rollout_id}", note=f"v{info['version']}"
        )
        progress.update(overall, completed=info["totals"].get("done", 0))
        tasks: dict[str, TaskID] = {}
        counts = {"done": 0, "failed": 0, "retry": 0}

        def on_event(kind: str, data: dict[str, Any]) -> None:
            with lock:
                serial = data.get("serial", "")
                if kind == "start":
                    note = f"attempt {data['attempt']}" + (
                        " (taken over)" if data["taken_over"] else ""
                    )
                    tasks[serial] = progress.add_task(serial, total=None, serial=serial, note=note)
                elif kind == "progress" and serial in tasks:
                    progress.update(tasks[serial], completed=data["stored"], total=data["count"])
                elif kind == "finish" and serial in tasks:
                    progress.remove_task(tasks.pop(serial))
                    if data["result"] == "done":
                        counts["done"] += 1
                        progress.advance(overall)
                    elif data["result"] == "failed":
                        counts["failed"] += 1
                        progress.advance(overall)
                        progress.console.print(f"[red]failed[/] {serial}: {data['error']}")
                    else:
                        counts["retry"] += 1
                elif kind == "wave":
                    progress.console.print(f"rollout {rollout_id}: wave {data['wave']} opened")
                elif kind == "halted":
                    progress.console.print(
                        f"[red]rollout {rollout_id}: halted[/], {data['failed']} of "
                        f"{data['of']} terminals failed"
                    )
                elif kind == "done":
                    progress.console.print(f"rollout {rollout_id}: every wave done")

        worker = Worker(
            engine,
            master_key=master,
            fee_policy=st.policy().fees,
            policy=st.policy().rollout,
            actor=st.actor,
            name=name,
            baud=baud,
            t2=timeout,
            t1_margin=t1_margin,
            on_event=on_event,
        )
        if quiet:
            final = worker.run(rollout_id, workers)
        else:
            with progress:
                final = worker.run(rollout_id, workers)
    out.print(
        f"rollout {rollout_id}: {final}; this worker: {counts['done']} done, "
        f"{counts['failed']} failed, {counts['retry']} retries",
        highlight=False,
    )
    if final == "halted":
        raise typer.Exit(1)


@rollout_app.command("status")
def rollout_status(
    ctx: typer.Context,
    rollout_id: Annotated[int, typer.Argument(help="Rollout id")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Progress per wave, and the failing terminals with their errors."""
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        try:
            info = status(st.engine(), rollout_id)
        except RolloutError as exc:
            raise fail(str(exc)) from None
    if fmt == "json":
        out.print_json(json.dumps(info, default=str))
        return
    out.print(
        f"rollout {info['id']}: table v{info['version']} to {info['group']}, "
        f"{info['status']}, wave {info['wave'] + 1} of {len(info['waves'])}, "
        f"halts past {info['max_failures']} failed",
        highlight=False,
    )
    table = Table(title="Waves", title_justify="left")
    for column in (
        "wave",
        "share",
        "terminals",
        "done",
        "running",
        "pending",
        "failed",
        "cancelled",
    ):
        table.add_column(column, justify="right")
    for w in info["waves"]:
        table.add_row(
            *(
                str(w.get(c, 0))
                for c in (
                    "wave",
                    "share",
                    "terminals",
                    "done",
                    "running",
                    "pending",
                    "failed",
                    "cancelled",
                )
            )
        )
    out.print(table)
    if info["problems"]:
        emit(
            info["problems"],
            ["serial", "wave", "status", "attempts", "last_error"],
            "table",
            title="Terminals with errors",
        )


def _change(ctx: typer.Context, rollout_id: int, action: Any, reason: str) -> None:
    st = state(ctx)
    with handled():
        try:
            action(st.engine(), rollout_id, actor=st.actor, reason=reason)
        except RolloutError as exc:
            raise fail(str(exc)) from None
    done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action.__name__]
    out.print(f"rollout {rollout_id}: {done}", highlight=False)


ReasonOpt = Annotated[str, typer.Option(help="Why (audited)")]


@rollout_app.command("pause")
def rollout_pause(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Stop claiming new jobs (running pushes finish)."""
    _change(ctx, rollout_id, pause, reason)


@rollout_app.command("resume")
def rollout_resume(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Resume a paused or halted rollout (failed jobs get fresh attempts)."""
    _change(ctx, rollout_id, resume, reason)


@rollout_app.command("cancel")
def rollout_cancel(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Cancel: pending jobs are dropped; terminals keep what they have."""
    _change(ctx, rollout_id, cancel, reason)
