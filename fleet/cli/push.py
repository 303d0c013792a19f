"""`posfleet push`: a published table to one terminal or a group, with a progress bar per
terminal (the retries and the verification are :func:`fleet.device.push_many`'s). Each
terminal is signed for with the key of the version it reports: give every key file in use
(``--key-file`` again, or a directory), e.g. in the middle of a key rotation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli.common import (
    AllowOpenKeyOpt,
    KeyFileOpt,
    TableJson,
    TableJsonOpt,
    err_console,
    fail,
    load_keys,
    out,
    state,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from fleet.device import PushReport

__all__ = ["push_command", "push_progress"]


def push_progress() -> Progress:
    """Bars per terminal: serial, blocks stored, a note."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.fields[serial]}", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        TimeElapsedColumn(),
        console=err_console,
    )


def push_command(
    ctx: typer.Context,
    table: Annotated[int, typer.Option("--table", help="Published version to push")],
    key_file: KeyFileOpt,
    allow_open_key_file: AllowOpenKeyOpt = False,
    terminal: Annotated[str | None, typer.Option("--terminal", "-t", help="One terminal")] = None,
    group: Annotated[
        str | None, typer.Option(help="all, mcc=…, region=…, tag=… (';' joins)")
    ] = None,
    port: Annotated[str | None, typer.Option(help="Link URL (default: the recorded link)")] = None,
    baud: Annotated[int, typer.Option(help="Line speed")] = 115200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer (T2)")] = 5.0,
    retries: Annotated[int, typer.Option(help="New links after a broken one (resumes)")] = 3,
    now: Annotated[
        bool, typer.Option("--now", help="Push outside the maintenance window (needs --reason)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why --now (audited)")] = None,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Push a table to a terminal or a group: sign on, skip terminals already at it, send,
    commit, verify with a status query and a test sale, record."""
    from fleet.device import group_terminals, push_many  # noqa: PLC0415
    from fleet.fees import parse_group  # noqa: PLC0415

    if (terminal is None) == (group is None):
        raise fail("give --terminal SERIAL or --group G", 2)
    if port and group is not None:
        raise fail("--port works with --terminal only", 2)
    if now and not (reason or "").strip():
        raise fail("--now needs --reason TEXT (the override is audited)", 2)
    if reason is not None and not now:
        raise fail("--reason goes with --now", 2)
    st = state(ctx)
    keys = load_keys(key_file, allow_open=allow_open_key_file)
    engine = st.engine()
    policy = st.policy().fees
    serials = (
        [terminal] if terminal else group_terminals(engine, table, parse_group(group or "all"))
    )
    with push_progress() as progress:
        overall = progress.add_task("all", total=len(serials), serial="all", note="")
        tasks: dict[str, Any] = {}

        def finished(report: PushReport, task: Any, overall: Any) -> None:
            if report.outcome is not None:
                progress.update(task, note=report.outcome.describe())
            progress.advance(overall)

        def bar(s: str) -> Any:  # one bar per terminal, from its first event
            if s not in tasks:
                tasks[s] = progress.add_task(s, total=None, serial=s, note="")
            return tasks[s]

        reports = push_many(
            engine, serials, table, keys=keys, policy=policy, actor=st.actor,
            port=port, baud=baud, t2=timeout, retries=retries,
            progress=lambda s, done, n: progress.update(bar(s), completed=done, total=n),
            failed_attempt=lambda s, n, e: progress.update(
                bar(s), note=f"attempt {n}: {e}"
            ),
            finished=lambda r: finished(r, bar(r.serial), overall),
            maintenance=st.policy().maintenance, now_reason=reason if now else None,
        )  # fmt: skip
    results: list[dict[str, Any]] = [r.as_dict() for r in reports]
    failed = [r for r in reports if r.outcome is None]
    if fmt == TableJson.JSON:
        out.print_json(json.dumps(results))
    else:
        out.print(
            f"{len(results) - len(failed)} of {len(results)} terminals at v{table}"
            + (f"; {len(failed)} failed" if failed else ""),
            highlight=False,
        )
    for r in failed:
        error = (r.error or "").removeprefix(f"{r.serial}: ")
        fail(f"{r.serial}: {error}")
    if failed:
        raise typer.Exit(1)
