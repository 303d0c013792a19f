"""`posfleet`: the fleet tool's command line. One Typer sub-app per noun, joined here.

Root options apply to every command: ``--db`` (or ``POSFLEET_DB``; default the SQLite
file ``posfleet.db``), ``--actor`` (or ``POSFLEET_ACTOR``; default the OS user) for the
audit log, and ``--policy`` (or ``POSFLEET_POLICY``; default ``./posfleet.toml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.admin import audit_app, db_app, policy_app
from fleet.cli.common import State
from fleet.cli.fees import fees_app, push_command, rollout_app
from fleet.cli.inventory import catalog_app, merchants_app, terminals_app
from fleet.cli.notices import notices_app
from fleet.cli.replace import replacements, sync_command
from fleet.cli.report import report_app
from fleet.cli.serve import serve_command
from fleet.cli.swaps import swap_app
from fleet.cli.users import tokens_app, users_app
from fleet.cli.webhooks import webhooks_app
from fleet.cli.wire import keys_app, wire_app
from fleet.core.audit import default_actor

__all__ = ["app", "main"]

app = typer.Typer(
    name="posfleet",
    help="POS terminal fleet manager: inventory, replacements, fee tables, rollouts, notices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", envvar="POSFLEET_DB", help="Database URL or SQLite file [posfleet.db]"
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor", envvar="POSFLEET_ACTOR", help="Who is acting (audit log) [OS user]"
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", envvar="POSFLEET_POLICY", help="Policy TOML [./posfleet.toml]"),
    ] = None,
) -> None:
    ctx.obj = State(db=db, actor=actor or default_actor(), policy_path=policy)


app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(merchants_app, name="merchants")
app.add_typer(terminals_app, name="terminals")
app.command("replacements")(replacements)
app.command("sync")(sync_command)
app.add_typer(fees_app, name="fees")
app.command("push")(push_command)
app.add_typer(rollout_app, name="rollout")
app.add_typer(swap_app, name="swap")
app.add_typer(notices_app, name="notices")
app.add_typer(report_app, name="report")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(wire_app, name="wire")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(webhooks_app, name="webhooks")
app.command("serve")(serve_command)


def main() -> None:
    app()
