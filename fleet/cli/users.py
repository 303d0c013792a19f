"""`posfleet users …` and `posfleet tokens …`: who may use the console and the API.

Passwords and tokens are printed once, when made, and never stored in clear. Heavy
imports (Argon2, the access package) happen inside the commands.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fleet.cli.common import (
    check_format,
    emit,
    err_console,
    fail,
    handled,
    option_days,
    out,
    reason_option,
    state,
)

users_app = typer.Typer(help="Console users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens for scripts (Authorization: Bearer).", no_args_is_help=True
)

ROLES_HELP = "admin, ops, engineer, agent or auditor"


def _stdin_password() -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise fail("--password-stdin: nothing on stdin", 2)
    return line


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Sign-in name")],
    role: Annotated[str, typer.Option("--role", "-r", help=ROLES_HELP)],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
) -> None:
    """Add a user; prints a one-time password (changed at first sign-in) unless one is
    read from stdin."""
    from fleet.access import add_user  # noqa: PLC0415

    st = state(ctx)
    password = _stdin_password() if password_stdin else None
    with handled():
        user, made = add_user(st.engine(), name, role, actor=st.actor, password=password)
    out.print(f"added {user.name} ({user.role.value})", highlight=False)
    if made:
        out.print(f"one-time password: {made}", highlight=False, soft_wrap=True)
        err_console.print("shown once; they choose their own at the first sign-in", highlight=False)


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Users, their roles and whether they may sign in."""
    from fleet.access import list_users  # noqa: PLC0415

    check_format(fmt)
    st = state(ctx)
    with handled():
        rows = [u.as_dict() for u in list_users(st.engine())]
    columns = ["name", "role", "active", "must_change_password", "created_at", "created_by",
               "disabled_at"]  # fmt: skip
    emit(rows, columns, fmt, title="Users")


@users_app.command("disable")
def users_disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Sign-in name")],
    reason: Annotated[str, reason_option("Why (audit log)")] = "",
) -> None:
    """Disable a user: their live sessions end at once."""
    from fleet.access import disable_user  # noqa: PLC0415

    st = state(ctx)
    with handled():
        disable_user(st.engine(), name, actor=st.actor, reason=reason)
    out.print(f"disabled {name}; their sessions ended", highlight=False)


@users_app.command("reset-password")
def users_reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Sign-in name")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from stdin")
    ] = False,
) -> None:
    """A new one-time password (printed once); their live sessions end."""
    from fleet.access import reset_password  # noqa: PLC0415

    st = state(ctx)
    password = _stdin_password() if password_stdin else None
    with handled():
        made = reset_password(st.engine(), name, actor=st.actor, password=password)
    out.print(f"password of {name} reset; their sessions ended", highlight=False)
    if made:
        out.print(f"one-time password: {made}", highlight=False, soft_wrap=True)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", "-r", help=ROLES_HELP)],
    expires: Annotated[str, typer.Option(help="Lifetime: 30d, 12w, 6m (at most 1 year)")] = "90d",
    name: Annotated[str, typer.Option(help="What it is for (shown in lists and the audit)")] = "",
) -> None:
    """Create an API token (printed once; only its hash is kept)."""
    from fleet.access import create_token  # noqa: PLC0415

    st = state(ctx)
    days = option_days(expires, "--expires")
    assert days is not None
    with handled():
        info, token = create_token(st.engine(), role, days, actor=st.actor, name=name)
    err_console.print(
        f"token {info.name} ({info.role.value}), expires {info.expires_at:%Y-%m-%d %H:%M} UTC; "
        "shown once:",
        highlight=False,
    )
    out.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Tokens (never the tokens themselves): role, expiry, last use."""
    from fleet.access import list_tokens  # noqa: PLC0415

    check_format(fmt)
    st = state(ctx)
    with handled():
        rows = [t.as_dict() for t in list_tokens(st.engine())]
    columns = ["id", "name", "prefix", "role", "expires_at", "revoked_at", "last_used",
               "created_by"]  # fmt: skip
    emit(rows, columns, fmt, title="API tokens")


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's id")]
) -> None:
    """Revoke a token: refused from its next request on."""
    from fleet.access import revoke_token  # noqa: PLC0415

    st = state(ctx)
    with handled():
        info = revoke_token(st.engine(), token_id, actor=st.actor)
    out.print(f"revoked token {info.id} ({info.name})", highlight=False)
