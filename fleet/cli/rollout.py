"""`posfleet rollout …`: create, run, status, pause, resume, cancel (the rules, the
claiming and the retries are :mod:`fleet.rollout`'s). A rollout is a fee table's (`rollout
create`) or a key change's (`posfleet keys rotate`); run, status and the controls are the
same for both."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from fleet.cli.common import (
    AllowOpenKeyOpt,
    Format,
    FormatOpt,
    KeyFileOpt,
    TableJson,
    TableJsonOpt,
    emit,
    fail,
    limit_option,
    load_keys,
    out,
    reason_option,
    state,
)
from fleet.cli.push import push_progress

if TYPE_CHECKING:
    from rich.progress import Progress

    from fleet.rollout import Event

__all__ = ["plan_options", "rollout_app"]

rollout_app = typer.Typer(
    help="Staged rollouts of a fee table (or of a key change: `posfleet keys rotate`).",
    no_args_is_help=True,
)


def plan_options(waves: str | None, max_failures: str | None) -> tuple[Any, int | None]:
    """``--waves`` and ``--max-failures`` as the domain takes them (a bad one: exit 2)."""
    from fleet.core.policy import PolicyError, parse_waves, percent_ppm  # noqa: PLC0415

    try:
        wave_list = parse_waves(waves, "--waves") if waves else None
        ppm = percent_ppm(max_failures, "--max-failures") if max_failures else None
    except PolicyError as exc:
        raise fail(str(exc), 2) from None
    return wave_list, ppm


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
    from fleet.fees import parse_group  # noqa: PLC0415
    from fleet.rollout import create  # noqa: PLC0415

    st = state(ctx)
    wave_list, ppm = plan_options(waves, max_failures)
    rid, sizes = create(
        st.engine(), table, group=parse_group(group), policy=st.policy().rollout,
        actor=st.actor, waves=wave_list, max_failure_ppm=ppm, note=note,
    )  # fmt: skip
    out.print(
        f"rollout {rid}: table v{table} to {sum(sizes)} terminals in waves of "
        + " + ".join(map(str, sizes)),
        highlight=False,
    )


class _Display:
    """The rollout's events as progress bars and lines (thread-safe)."""

    def __init__(self, rollout_id: int, progress: Progress, total: int, done: int, what: str):
        self.rollout_id = rollout_id
        self.progress = progress
        self.lock = threading.Lock()
        self.overall = progress.add_task(
            "all", total=total, serial=f"rollout {rollout_id}", note=what
        )
        progress.update(self.overall, completed=done)
        self.tasks: dict[str, Any] = {}
        self.counts = {"done": 0, "failed": 0, "retry": 0}

    def __call__(self, event: Event) -> None:
        from fleet.rollout import (  # noqa: PLC0415
            Finished,
            Halted,
            Progressed,
            RolloutDone,
            Started,
            WaveOpened,
        )

        p, rid = self.progress, self.rollout_id
        with self.lock:
            if isinstance(event, Started):
                note = f"attempt {event.attempt}" + (" (taken over)" if event.taken_over else "")
                self.tasks[event.serial] = p.add_task(
                    event.serial, total=None, serial=event.serial, note=note
                )
            elif isinstance(event, Progressed) and event.serial in self.tasks:
                p.update(self.tasks[event.serial], completed=event.stored, total=event.count)
            elif isinstance(event, Finished) and event.serial in self.tasks:
                p.remove_task(self.tasks.pop(event.serial))
                kind = {"done": "done", "failed": "failed"}.get(event.result, "retry")
                self.counts[kind] += 1
                if kind != "retry":
                    p.advance(self.overall)
                if kind == "failed":
                    error = (event.error or "").removeprefix(f"{event.serial}: ")
                    p.console.print(Text.assemble(("failed", "red"), f" {event.serial}: {error}"))
            elif isinstance(event, WaveOpened):
                p.console.print(f"rollout {rid}: wave {event.wave} opened")
            elif isinstance(event, Halted):
                p.console.print(
                    Text.assemble(
                        (f"rollout {rid}: halted", "red"),
                        f", {event.failed} of {event.of} terminals failed",
                    )
                )
            elif isinstance(event, RolloutDone):
                p.console.print(f"rollout {rid}: every wave done")


@rollout_app.command("run")
def rollout_run(
    ctx: typer.Context,
    rollout_id: Annotated[int, typer.Argument(help="Rollout id")],
    key_file: KeyFileOpt,
    allow_open_key_file: AllowOpenKeyOpt = False,
    workers: Annotated[
        int, typer.Option(help="Terminals pushed at once by this process (key rollouts: threads)")
    ] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name in leases [host:pid]")] = None,
    baud: Annotated[int, typer.Option(help="Line speed")] = 115200,
    timeout: Annotated[float, typer.Option(help="T2 seconds")] = 5.0,
    t1_margin: Annotated[float, typer.Option(help="Extra seconds to wait for an ACK")] = 0.5,
    quiet: Annotated[bool, typer.Option(help="No progress display")] = False,
) -> None:
    """Work on a rollout until it is done, halted, paused or cancelled. Run as many of these,
    on as many machines, as you like (PostgreSQL). A key rollout needs the key files of
    both its versions."""
    from fleet.rollout import RolloutState, Worker, status  # noqa: PLC0415

    st = state(ctx)
    keys = load_keys(key_file, allow_open=allow_open_key_file)
    engine = st.engine()
    info = status(engine, rollout_id)
    progress = push_progress()
    display = _Display(rollout_id, progress, info.terminals, info.totals.get("done", 0), info.what)
    worker = Worker(
        engine, keys=keys, fee_policy=st.policy().fees, policy=st.policy().rollout,
        actor=st.actor, name=name, baud=baud, t2=timeout, t1_margin=t1_margin,
        on_event=display, maintenance=st.policy().maintenance,
    )  # fmt: skip
    worker.prepare(rollout_id)  # the key files checked before any display
    if quiet:
        final = worker.run(rollout_id, workers)
    else:
        with progress:
            final = worker.run(rollout_id, workers)
    c = display.counts
    out.print(
        f"rollout {rollout_id}: {final}; this worker: {c['done']} done, "
        f"{c['failed']} failed, {c['retry']} retries",
        highlight=False,
    )
    if final == RolloutState.HALTED:
        raise typer.Exit(1)


_WAVE_COLUMNS = ("wave", "share", "terminals", "done", "running", "pending", "failed", "cancelled")


@rollout_app.command("list")
def rollout_list(
    ctx: typer.Context,
    limit: Annotated[int, limit_option("At most this many, newest first")] = 50,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Rollouts, newest first: what, to whom, status, wave, terminals done and failed."""
    from fleet.rollout import list_rollouts  # noqa: PLC0415

    rows = list_rollouts(state(ctx).engine(), limit=limit)
    for row in rows:
        totals = row["totals"]
        row["what"] = (
            f"key v{row['key_version']}" if row["kind"] == "keys" else f"table v{row['version']}"
        )
        row["wave"] = f"{row['wave'] + 1}/{len(row['waves'])}"
        row["done"] = totals.get("done", 0)
        row["failed"] = totals.get("failed", 0)
        row["jobs"] = ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    columns = ["id", "what", "group", "status", "wave", "terminals", "done", "failed",
               "created_at", "created_by"]  # fmt: skip
    if fmt != Format.TABLE:
        columns = [*columns, "jobs", "kind", "version", "key_version", "note"]
    emit(rows, columns, fmt, title="Rollouts", drop_first=["created_by", "created_at", "group"])


@rollout_app.command("status")
def rollout_status(
    ctx: typer.Context,
    rollout_id: Annotated[int, typer.Argument(help="Rollout id")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Progress per wave, and the failing terminals with their errors."""
    import json  # noqa: PLC0415

    from rich.table import Table  # noqa: PLC0415

    from fleet.rollout import status  # noqa: PLC0415

    st = state(ctx)
    info = status(st.engine(), rollout_id, maintenance=st.policy().maintenance)
    doc = info.as_dict()
    if fmt == TableJson.JSON:
        out.print_json(json.dumps(doc, default=str))
        return
    out.print(
        f"rollout {info.id}: {info.what} to {doc['group']}, {info.status}, "
        f"wave {info.wave + 1} of {len(info.waves)}, halts past {doc['max_failures']} failed",
        highlight=False,
    )
    table = Table(title="Waves", title_justify="left")
    columns = [*_WAVE_COLUMNS, *(("waiting_for_window", "finishes_by") if info.windowed else ())]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for w in doc["waves"]:
        if info.windowed:  # the finish is an instant: say it in UTC, to the minute
            at = w["finishes_by"]
            w["finishes_by"] = f"{at[:16].replace('T', ' ')} UTC" if at else "-"
        table.add_row(*(str(w.get(c, 0)) for c in columns))
    out.print(table)
    if doc["problems"]:
        columns = ["serial", "wave", "status", "attempts", "last_error"]
        emit(doc["problems"], columns, "table", title="Terminals with errors")


ReasonOpt = Annotated[str, reason_option("Why (audited)")]


def _change(ctx: typer.Context, rollout_id: int, action: str, reason: str) -> None:
    import fleet.rollout  # noqa: PLC0415

    st = state(ctx)
    getattr(fleet.rollout, action)(st.engine(), rollout_id, actor=st.actor, reason=reason)
    done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
    out.print(f"rollout {rollout_id}: {done}", highlight=False)


@rollout_app.command("pause")
def rollout_pause(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Stop claiming new jobs (running pushes finish)."""
    _change(ctx, rollout_id, "pause", reason)


@rollout_app.command("resume")
def rollout_resume(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Resume a paused or halted rollout (failed jobs get fresh attempts)."""
    _change(ctx, rollout_id, "resume", reason)


@rollout_app.command("cancel")
def rollout_cancel(ctx: typer.Context, rollout_id: int, reason: ReasonOpt = "") -> None:
    """Cancel: pending jobs are dropped; terminals keep what they have."""
    _change(ctx, rollout_id, "cancel", reason)
