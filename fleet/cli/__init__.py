"""`posfleet`: the fleet tool's command line. One Typer sub-app per noun, joined here.

Root options apply to every command: ``--db`` (or ``POSFLEET_DB``; default the SQLite
file ``posfleet.db``), ``--actor`` (or ``POSFLEET_ACTOR``; default the OS user) for the
audit log, and ``--policy`` (or ``POSFLEET_POLICY``; default ``./posfleet.toml``).

Quick to start: the root knows its commands by name and help line (:data:`COMMANDS`) and
imports a command's module only to run it, so ``posfleet --help`` loads none of them and
``posfleet notices verify`` loads only ``fleet.cli.notices`` (whose commands import the
domain they need when they run). The root is also the one place where an error becomes a
line on stderr and an exit code (:func:`fleet.cli.common.exit_code_for`; a usage error
exits 2).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from fleet.cli.common import State, exit_code_for, fail
from fleet.core.actor import default_actor
from fleet.core.errors import FleetError, JobError
from protocols.errors import ProtocolError

__all__ = ["COMMANDS", "app", "main"]

COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "replacements",
        "fleet.cli.replace:replacements",
        "Terminals that need replacing: every reason, a priority, a replace-by date, and the\n"
        "forecast of units and cost per quarter.",
    ),
    (
        "sync",
        "fleet.cli.replace:sync_command",
        "Sign on to terminals (0800/001) and record model, firmware, versions and last seen.",
    ),
    (
        "push",
        "fleet.cli.push:push_command",
        "Push a table to a terminal or a group: sign on, skip terminals already at it, send,\n"
        "commit, verify with a status query and a test sale, record.",
    ),
    (
        "health",
        "fleet.cli.health:health_app",
        "Terminal health: poll many terminals (0800/303), show a terminal's history.",
    ),
    ("db", "fleet.cli.admin:db_app", "The database: schema migrations (Alembic)."),
    ("catalog", "fleet.cli.inventory:catalog_app", "Terminal models, firmware and advisories."),
    ("merchants", "fleet.cli.inventory:merchants_app", "Merchants and how to reach them."),
    ("terminals", "fleet.cli.terminals:terminals_app", "The terminals of the fleet."),
    ("fees", "fleet.cli.fees:fees_app", "Fee tables: check, publish, list, show, diff."),
    (
        "rollout",
        "fleet.cli.rollout:rollout_app",
        "Staged rollouts of a fee table (or of a key change: `posfleet keys rotate`).",
    ),
    (
        "swap",
        "fleet.cli.swaps:swap_app",
        "Terminal swaps: `posfleet swap OLD NEW --reason-code …`, plan, sheet, list.",
    ),
    (
        "notices",
        "fleet.cli.notices:notices_app",
        "Merchant notices: dispatch, verify, list, opt-outs and complaints, templates.",
    ),
    (
        "report",
        "fleet.cli.report:report_app",
        "Ops reports (fleet, replacements, rollout, notices) as a table, CSV, JSON or one "
        "HTML file.",
    ),
    ("policy", "fleet.cli.admin:policy_app", "The fleet policy file (TOML)."),
    ("audit", "fleet.cli.admin:audit_app", "The audit log: who changed what, when and why."),
    ("wire", "fleet.cli.wire:wire_app", "Inspect wire traffic: frames and ISO 8583 messages."),
    (
        "keys",
        "fleet.cli.keys:keys_app",
        "Fleet master keys: versions, rotation over the wire, which terminal holds which.",
    ),
    ("users", "fleet.cli.users:users_app", "Console users and their roles."),
    ("tokens", "fleet.cli.users:tokens_app", "API tokens for scripts (Authorization: Bearer)."),
    (
        "webhooks",
        "fleet.cli.webhooks:webhooks_app",
        "Webhooks: signed event deliveries to other systems.",
    ),
    (
        "serve",
        "fleet.cli.serve:serve_command",
        "Serve the console and the API (`/api/v1`, OpenAPI at `/api/openapi.json`).",
    ),
)
"""Every command of the root: name, ``module:attribute`` (a Typer sub-app or a command
function) and the help line ``posfleet --help`` shows for it (the sub-app's own help or
the function's first paragraph; ``tests/fleet/cli/test_cli_startup.py`` keeps them equal)."""


class _Pending(TyperCommand):
    """A command not loaded yet: its name and help line, for ``posfleet --help``."""

    def __init__(self, name: str, target: str, help_line: str) -> None:
        super().__init__(name=name, help=help_line)
        self.target = target

    def load(self) -> Any:
        """The real command: the sub-app as a group, or the function as a command."""
        module, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            group = typer.main.get_group(found)
            group.name = self.name
            return group
        single = typer.Typer()
        single.command(self.name)(found)
        return typer.main.get_command(single)


class _Root(TyperGroup):
    """Loads a command when it is run; maps what it raises to one line and an exit code."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, target, help_line in COMMANDS:
            self.commands.setdefault(name, _Pending(name, target, help_line))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Pending):
            assert name is not None
            command = self.commands[name] = command.load()
        return name, command, rest

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (FleetError, ProtocolError) as exc:
            raise typer.Exit(exit_code_for(exc)) from None
        except typer.Exit:
            raise
        except Exception as exc:
            usage = _usage_line(exc)
            if usage is not None:
                raise fail(usage, 2) from None
            typed = _environment_error(ctx, exc)
            if typed is None:
                raise
            raise typer.Exit(exit_code_for(typed)) from None


def _environment_error(ctx: Any, exc: Exception) -> FleetError | None:
    """What the world did to a command, as a typed error (``None``: a bug, which keeps its
    traceback): the database busy, not a database or unusable (:func:`fleet.core.db.
    translate`, when a command loaded it), a file that can't be read or written."""
    db = sys.modules.get("fleet.core.db")
    if db is not None:
        where = None
        with contextlib.suppress(FleetError):
            root = ctx.find_root().obj
            where = db.display_url(db.resolve_url(getattr(root, "db", None)))
        typed: FleetError | None = db.translate(exc, where)
        if typed is not None:
            return typed
    if isinstance(exc, OSError) and exc.filename is not None:
        return JobError(exc.strerror or str(exc), where=str(exc.filename))
    return None


_NOT_ONE_OF = re.compile(r"(?:Value error, )?(?P<value>.*) is not one of (?P<choices>.*)\.")


def _usage_line(exc: Exception) -> str | None:
    """A Typer/Click usage error of a command, as one line (``None``: not a usage error;
    asking for help with no arguments is left to Typer, which shows the help).

    A bad option value reads ``--format must be one of table, csv, json, not 'xml'`` or
    ``--out: directory nope does not exist``, as our own checks word them.
    """
    # Typer 0.29 vendors Click: its exceptions are Typer's, not the click package's.
    from typer._click.exceptions import (  # noqa: PLC0415
        BadParameter,
        MissingParameter,
        NoArgsIsHelpError,
        UsageError,
    )

    if not isinstance(exc, UsageError) or isinstance(exc, NoArgsIsHelpError):
        return None
    bad = exc if isinstance(exc, BadParameter) and not isinstance(exc, MissingParameter) else None
    if bad is not None and bad.param is not None and bad.param_hint is None:
        long = [o for o in bad.param.opts if o.startswith("--")]
        name = long[0] if long else str(bad.param.name).upper()
        choice = _NOT_ONE_OF.fullmatch(exc.message)
        if choice is None:
            return f"{name}: {exc.message.removeprefix('Value error, ')}"
        choices = ", ".join(re.findall(r"'([^']*)'", choice["choices"]))
        return f"{name} must be one of {choices}, not {choice['value']}"
    where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    return f"{exc.format_message()}{where}"


app = typer.Typer(
    name="posfleet",
    cls=_Root,
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
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    try:
        app()
    finally:
        # The process ends here, and its connections are closed (State.close). Freezing
        # what the command loaded spares the interpreter's last collections at exit, which
        # cost a command that loaded SQLAlchemy about 30 ms of CPU, for nothing.
        gc.freeze()
