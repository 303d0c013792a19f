"""`posfleet swap`: swap a terminal now (``posfleet swap OLD NEW``), plan one, run a
field engineer's day sheet, list swaps (all of it :mod:`fleet.swaps`')."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from fleet.cli.common import (
    AllowOpenKeyOpt,
    Format,
    FormatOpt,
    OptionalKeyFileOpt,
    TableJson,
    TableJsonOpt,
    emit,
    err_console,
    fail,
    load_keys,
    option_date,
    out,
    reason_option,
    state,
)

if TYPE_CHECKING:
    from fleet.device.keyring import KeyRing
    from fleet.swaps import SwapResult


class _SwapGroup(TyperGroup):
    """``posfleet swap OLD NEW …`` means ``posfleet swap do OLD NEW …``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["do", *args]
        return super().parse_args(ctx, args)


swap_app = typer.Typer(
    cls=_SwapGroup,
    help="Terminal swaps: `posfleet swap OLD NEW --reason-code …`, plan, sheet, list.",
    no_args_is_help=True,
)

ReasonOpt = Annotated[
    str,
    reason_option(
        "The operator's note: kept in the record and the audit, never sent to the merchant",
        "--note",
    ),
]
ReasonCodeOpt = Annotated[
    str | None,
    typer.Option(
        "--reason-code",
        help="Why, as the merchant reads it in their language: age, pci_expiry, model_eol, "
        "firmware_eol, security_advisory, missing_payment_method, faulty, tamper, wear, "
        "upgrade, merchant_request, other (default: from the replacement reasons)",
    ),
]
EngineerOpt = Annotated[str, typer.Option("--engineer", help="Field engineer's name")]
_NEEDS_KEY = "--port needs --key-file (or POSFLEET_KEY_FILE) to push the fee table"


def _show(result: SwapResult, fmt: TableJson) -> None:
    if fmt == TableJson.JSON:
        emit([result.as_dict()], [], "json", json_doc=lambda rows: rows[0])
        return
    what = f"{result.old} → {result.new}" if result.status == "done" else result.old
    out.print(
        f"swap {result.id} {result.status}: {what} at merchant {result.merchant_id} "
        f"(TID {result.tid}); notices queued: {', '.join(result.notices)}"
        + (f"; follow-up on {result.follow_up_on}" if result.follow_up_on else "")
        + (f"; fee table {result.table}" if result.table else ""),
        highlight=False,
        soft_wrap=True,
    )
    if result.provision:
        out.print(f"  provisioned: {result.provision}", highlight=False, soft_wrap=True)


def _provision(ctx: typer.Context, result: SwapResult, port: str, key: KeyRing) -> bool:
    """Provision the new terminal; False (with the error printed) when it failed: the swap
    is done, and the other swaps of a sheet still get theirs."""
    from fleet.core.errors import FleetError  # noqa: PLC0415
    from fleet.swaps import provision  # noqa: PLC0415

    st = state(ctx)
    try:
        provision(st.engine(), result, port, keys=key, policy=st.policy(), actor=st.actor)
    except FleetError as exc:
        err_console.print(f"swap {result.id} is done, but provisioning failed: {exc}")
        fail(f"provision {result.new} on {port}: {exc}")
        return False
    return True


@swap_app.command("do")
def swap_do(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Serial of the terminal taken away")],
    new: Annotated[str, typer.Argument(help="Serial of the replacement (in stock)")],
    reason: ReasonOpt = "",
    reason_code: ReasonCodeOpt = None,
    engineer: EngineerOpt = "",
    port: Annotated[
        str | None, typer.Option(help="Link to the new terminal: sync, push, test sale")
    ] = None,
    key_file: OptionalKeyFileOpt = None,
    allow_open_key_file: AllowOpenKeyOpt = False,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Swap OLD for NEW in one transaction: OLD swapped out, NEW takes its TID, MID,
    merchant and fee assignment; notices and the follow-up queued. With --port, provision."""
    from fleet.swaps import swap  # noqa: PLC0415

    if port and not key_file:
        raise fail(_NEEDS_KEY, 2)
    key = (
        load_keys(key_file, allow_open=allow_open_key_file) if port and key_file else None
    )  # before anything changes
    st = state(ctx)
    result = swap(
        st.engine(), old, new, reason=reason, actor=st.actor, policy=st.policy(),
        engineer=engineer, reason_code=reason_code,
    )  # fmt: skip
    if port and key and not _provision(ctx, result, port, key):
        raise typer.Exit(1)
    _show(result, fmt)


@swap_app.command("plan")
def swap_plan(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Serial of the terminal to replace")],
    on: Annotated[str, typer.Option("--on", help="Date of the visit, YYYY-MM-DD")],
    reason: ReasonOpt = "",
    reason_code: ReasonCodeOpt = None,
    new: Annotated[str | None, typer.Option("--new", help="Replacement serial, if known")] = None,
    engineer: EngineerOpt = "",
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Plan a swap on a date and queue the merchant's advance notice."""
    from fleet.swaps import plan  # noqa: PLC0415

    day = option_date(on, "--on")
    assert isinstance(day, date)
    st = state(ctx)
    result = plan(
        st.engine(), old, day, reason=reason, actor=st.actor, policy=st.policy(),
        engineer=engineer, new_serial=new, reason_code=reason_code,
    )  # fmt: skip
    _show(result, fmt)


@swap_app.command("sheet")
def swap_sheet(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV/JSON: old_serial,new_serial,reason[,…]")],
    engineer: EngineerOpt = "",
    key_file: OptionalKeyFileOpt = None,
    allow_open_key_file: AllowOpenKeyOpt = False,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """A field engineer's day sheet: all swaps or none (a bad row rejects the file), then
    provision the rows that give a port (which needs --key-file)."""
    from fleet.swaps import day_sheet  # noqa: PLC0415

    key = (
        load_keys(key_file, allow_open=allow_open_key_file) if key_file else None
    )  # before anything changes
    st = state(ctx)
    done = day_sheet(
        st.engine(), path, actor=st.actor, policy=st.policy(), engineer=engineer,
        ports=key is not None,
    )  # fmt: skip
    failures = sum(not _provision(ctx, r, port, key) for r, port in done if port and key)
    if fmt == TableJson.JSON:
        emit([r.as_dict() for r, _ in done], [], "json")
    else:
        for result, _ in done:
            _show(result, fmt)
        out.print(f"{len(done)} swaps done", highlight=False, soft_wrap=True)
    if failures:
        raise fail(f"{failures} of the new terminals could not be provisioned")


@swap_app.command("list")
def swap_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="planned, done or cancelled")] = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Swaps, newest first."""
    from fleet.swaps import list_swaps  # noqa: PLC0415

    rows = list_swaps(state(ctx).engine(), status)
    columns = [
        "id", "status", "old_serial", "new_serial", "merchant_id", "tid", "planned_for",
        "merchant_reply", "done_at", "follow_up_on", "engineer", "reason_code", "reason",
        "provision",
    ]  # fmt: skip
    emit(
        rows, columns, fmt, title="Swaps",
        drop_first=["provision", "follow_up_on", "engineer", "done_at", "tid", "merchant_id"],
    )  # fmt: skip


SwapIdArg = Annotated[int, typer.Argument(help="The swap's id (swap list)", min=1)]


@swap_app.command("cancel")
def swap_cancel(
    ctx: typer.Context,
    swap_id: SwapIdArg,
    reason: Annotated[str, reason_option("Why it is cancelled (audited)")],
) -> None:
    """Cancel a planned swap; its merchant's notices not sent yet are cancelled with it."""
    from fleet.swaps import cancel  # noqa: PLC0415

    st = state(ctx)
    withdrawn = cancel(st.engine(), swap_id, reason=reason, actor=st.actor)
    out.print(f"swap {swap_id} cancelled; {withdrawn} unsent notices cancelled", highlight=False)


@swap_app.command("reschedule")
def swap_reschedule(
    ctx: typer.Context,
    swap_id: SwapIdArg,
    on: Annotated[str, typer.Option("--date", "--on", help="The new day, YYYY-MM-DD")],
    reason: Annotated[str, reason_option("Why it moves (audited)")] = "",
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Move a planned swap to another day; the merchant is told the new date."""
    from fleet.swaps import reschedule  # noqa: PLC0415

    day = option_date(on, "--date")
    assert day is not None
    st = state(ctx)
    result = reschedule(
        st.engine(), swap_id, day, actor=st.actor, policy=st.policy(), reason=reason
    )
    if fmt == TableJson.JSON:
        _show(result, fmt)
        return
    out.print(f"swap {swap_id} planned for {day.isoformat()}; the merchant's notice is queued",
              highlight=False)  # fmt: skip


@swap_app.command("reprovision")
def swap_reprovision(
    ctx: typer.Context,
    swap_id: SwapIdArg,
    key_file: OptionalKeyFileOpt = None,
    port: Annotated[
        str | None, typer.Option(help="Link to the new terminal (default: its recorded link)")
    ] = None,
    allow_open_key_file: AllowOpenKeyOpt = False,
) -> None:
    """Provision again the new terminal of a done swap whose provisioning failed: sync,
    push its merchant's table, verify with a test sale."""
    from fleet.swaps import reprovision  # noqa: PLC0415

    if not key_file:
        raise fail("reprovision needs --key-file (or POSFLEET_KEY_FILE) to push the table", 2)
    keys = load_keys(key_file, allow_open=allow_open_key_file)
    st = state(ctx)
    outcome = reprovision(st.engine(), swap_id, port, keys=keys, policy=st.policy(), actor=st.actor)
    out.print(f"swap {swap_id}: provisioned: {outcome}", highlight=False, soft_wrap=True)
