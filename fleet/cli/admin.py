"""`posfleet db …`, `posfleet policy …`, `posfleet audit …`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.common import check_format, emit, err_console, fail, handled, option_date, out, state
from fleet.core import audit
from fleet.core.db import current_revision, display_url, head_revision, upgrade
from fleet.core.policy import DEFAULT_POLICY_FILE, Policy

db_app = typer.Typer(help="The database: schema migrations (Alembic).", no_args_is_help=True)
policy_app = typer.Typer(help="The fleet policy file (TOML).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: who changed what, when and why.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Create or migrate the schema (safe to run again)."""
    st = state(ctx)
    with handled():
        engine = st.engine(current=False)
        before = current_revision(engine)
        upgrade(engine, revision)
        after = current_revision(engine)
    where = display_url(engine.url)
    if before == after:
        out.print(f"{where}: schema already at {after}", highlight=False)
    else:
        out.print(f"{where}: schema {before or 'empty'} → {after}", highlight=False)


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """The schema revision of the database, and the newest one."""
    st = state(ctx)
    with handled():
        engine = st.engine(current=False)
        current = current_revision(engine)
    head = head_revision()
    state_text = "current" if current == head else "behind: run `posfleet db upgrade`"
    out.print(
        f"{display_url(engine.url)}: {current or 'no schema'} (newest {head}, {state_text})",
        highlight=False,
    )


@policy_app.command("show")
def policy_show(ctx: typer.Context) -> None:
    """The effective policy as TOML: every key, defaults filled in."""
    with handled():
        policy = state(ctx).policy()
    sys.stdout.write(policy.to_toml())


@policy_app.command("init")
def policy_init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="Where to write it [--policy, POSFLEET_POLICY or ./posfleet.toml]"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
) -> None:
    """Write the default policy to a file to edit."""
    path = path or state(ctx).policy_path or Path(DEFAULT_POLICY_FILE)
    if path.exists() and not force:
        raise fail(f"{path} exists; pass --force to replace it", 2)
    path.write_text(Policy().to_toml(), encoding="utf-8")
    out.print(f"wrote {path}", highlight=False)


def _instant(text: str | None, name: str, *, end: bool = False) -> datetime | None:
    if text is None:
        return None
    if "T" in text or " " in text.strip():
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise fail(f"{name}: not a date or date-time: {text!r}", 2) from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    day = option_date(text, name)
    assert day is not None
    start = datetime.combine(day, time(), UTC)
    return start + timedelta(days=1) if end else start


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
    actor: Annotated[str | None, typer.Option(help="Only this actor")] = None,
    action: Annotated[
        str | None, typer.Option(help=f"Only this action ({', '.join(audit.ACTIONS)})")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="terminal:SERIAL, or a prefix ending in *")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this date (UTC) or ISO instant")] = None,
    until: Annotated[
        str | None, typer.Option(help="Through this date (UTC) or before an instant")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file")] = None,
) -> None:
    """Audit entries, oldest first; `--format csv --out FILE` for auditors."""
    check_format(fmt)
    if action is not None and action not in audit.ACTIONS:
        raise fail(f"--action must be one of {', '.join(audit.ACTIONS)}", 2)
    flt = audit.AuditFilter(
        actor=actor,
        action=action,
        target=target,
        since=_instant(since, "--since"),
        until=_instant(until, "--until", end=True),
        limit=limit,
    )
    st = state(ctx)
    with handled():
        found = audit.query(st.engine(), flt)
        if fmt == "table":
            rows = (
                audit.as_row(e) | {"at": f"{e.at:%Y-%m-%d %H:%M:%S}Z", "what": audit.summary(e)}
                for e in found
            )
            columns = ["at", "actor", "action", "target", "what", "reason"]
            count = emit(rows, columns, fmt, title="Audit log", out_file=out_file)
        else:
            rows = (audit.as_row(e) for e in found)
            count = emit(rows, list(audit.CSV_COLUMNS), fmt, title="Audit log", out_file=out_file)
    if out_file is not None:
        err_console.print(f"wrote {count} entries to {out_file}", highlight=False)
