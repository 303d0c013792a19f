"""`posfleet push`: a published table to one terminal or a group, with a progress bar per
terminal (the retries and the verification are :func:`fleet.device.push_many`'s)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli.common import check_format, err_console, fail, out, state
from fleet.cli.domain_errors import fleet_errors

if TYPE_CHECKING:
    from rich.progress import Progress

    from fleet.device import PushReport

KeyOpt = Annotated[
    Path,
    typer.Option("--key-file", envvar="POSFLEET_KEY_FILE", help="Fleet master key file"),
]


def master_key(path: Path) -> bytes:
    """The fleet master key from ``--key-file``, or a one-line error."""
    from protocols.errors import ProtocolError  # noqa: PLC0415
    from protocols.mac import load_master_key  # noqa: PLC0415

    try:
        return load_master_key(path)
    except (OSError, ProtocolError) as exc:
        raise fail(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


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
    from fleet.device import group_terminals, push_many  # noqa: PLC0415
    from fleet.fees import parse_group  # noqa: PLC0415

    check_format(fmt, ("table", "json"))
    if (terminal is None) == (group is None):
        raise fail("give --terminal SERIAL or --group G", 2)
    if port and group is not None:
        raise fail("--port works with --terminal only", 2)
    st = state(ctx)
    key = master_key(key_file)
    with fleet_errors():
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
                engine, serials, table, master_key=key, policy=policy, actor=st.actor,
                port=port, baud=baud, t2=timeout, retries=retries,
                progress=lambda s, done, n: progress.update(bar(s), completed=done, total=n),
                failed_attempt=lambda s, n, e: progress.update(
                    bar(s), note=f"[red]attempt {n}: {e}[/]"
                ),
                finished=lambda r: finished(r, bar(r.serial), overall),
            )  # fmt: skip
    results: list[dict[str, Any]] = [r.as_dict() for r in reports]
    failed = [r for r in reports if r.outcome is None]
    if fmt == "json":
        out.print_json(json.dumps(results))
    else:
        out.print(
            f"{len(results) - len(failed)} of {len(results)} terminals at v{table}"
            + (f"; {len(failed)} failed" if failed else ""),
            highlight=False,
        )
    for r in failed:
        err_console.print(f"[bold red]error:[/] {r.serial}: {r.error}", highlight=False)
    if failed:
        raise typer.Exit(1)
