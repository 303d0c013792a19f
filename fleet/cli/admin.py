"""`posfleet db …`, `posfleet policy …`, `posfleet audit …`.

The domain is imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.common import (
    ForceOpt,
    Format,
    FormatOpt,
    OutOpt,
    emit,
    err_console,
    fail,
    limit_option,
    out,
    state,
)
from fleet.core.actor import ACTIONS

db_app = typer.Typer(help="The database: schema migrations (Alembic).", no_args_is_help=True)
policy_app = typer.Typer(help="The fleet policy file (TOML).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: who changed what, when and why.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Create or migrate the schema (safe to run again)."""
    from fleet.core.db import current_revision, display_url, upgrade  # noqa: PLC0415

    engine = state(ctx).engine(current=False)
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
    from fleet.core.db import current_revision, display_url, head_revision  # noqa: PLC0415

    engine = state(ctx).engine(current=False)
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
    sys.stdout.write(state(ctx).policy().to_toml())


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
    from fleet.cli.outfile import atomic_text  # noqa: PLC0415
    from fleet.core.policy import DEFAULT_POLICY_FILE, Policy  # noqa: PLC0415

    path = path or state(ctx).policy_path or Path(DEFAULT_POLICY_FILE)
    with atomic_text(path, force=force, db=state(ctx).db) as fh:
        fh.write(Policy().to_toml())
    out.print(f"wrote {path}", highlight=False)


def _instant(text: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    from fleet.core.values import parse_instant  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_instant(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise fail(f"{name}: {exc}", 2) from None


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    fmt: FormatOpt = Format.TABLE,
    actor: Annotated[str | None, typer.Option(help="Only this actor")] = None,
    action: Annotated[
        str | None, typer.Option(help=f"Only this action ({', '.join(ACTIONS)})")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="terminal:SERIAL, or a prefix ending in *")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this date (UTC) or ISO instant")] = None,
    until: Annotated[
        str | None, typer.Option(help="Through this date (UTC) or before an instant")
    ] = None,
    limit: Annotated[int | None, limit_option("At most this many")] = None,
    out_file: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Audit entries, oldest first; `--format csv --out FILE` for auditors."""
    from fleet.core import audit  # noqa: PLC0415

    if action is not None and action not in ACTIONS:
        raise fail(f"--action must be one of {', '.join(ACTIONS)}", 2)
    start = _instant(since, "--since")
    end = _instant(until, "--until", end_of_day=True)
    flt = audit.AuditFilter(
        actor=actor, action=action, target=target, since=start, until=end, limit=limit
    )
    found = audit.query(state(ctx).engine(), flt)
    if fmt == Format.TABLE:
        rows = (
            audit.as_row(e) | {"at": f"{e.at:%Y-%m-%d %H:%M:%S}Z", "what": audit.summary(e)}
            for e in found
        )
        columns = ["at", "actor", "action", "target", "what", "reason"]
    else:
        rows = (audit.as_row(e) for e in found)
        columns = list(audit.CSV_COLUMNS)
    count = emit(rows, columns, fmt, title="Audit log", out_file=out_file, force=force)
    if out_file is not None:
        err_console.print(f"wrote {count} entries to {out_file}", highlight=False)
