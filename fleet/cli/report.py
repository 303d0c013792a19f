"""`posfleet report fleet|replacements|rollout|notices`: ops reports as table, CSV, JSON or
HTML.

The reports are :mod:`fleet.reports`; this module only reads the options, asks for the
report and writes it where it should go. The reports (and matplotlib, Jinja2 with them) are
imported inside the commands (see :mod:`fleet.cli`).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli.common import (
    ForceOpt,
    OutOpt,
    SafeConsole,
    emit,
    err_console,
    fail,
    limit_option,
    option_date,
    option_days,
    out,
    state,
    write_out,
)
from fleet.core.escaping import terminal_text
from fleet.core.values import CHANNELS

if TYPE_CHECKING:
    from fleet.reports.model import Report

__all__ = ["report_app"]

report_app = typer.Typer(
    help="Ops reports (fleet, replacements, rollout, notices) as a table, CSV, JSON or one "
    "HTML file.",
    no_args_is_help=True,
)


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


FormatOpt = Annotated[
    ReportFormat,
    typer.Option("--format", "-f", help="table, csv (the main section), json (everything) or html"),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Report as of this date, YYYY-MM-DD (default: today)")
]


def _day(as_of: str | None) -> date:
    """The ``--as-of`` day (default today, UTC); bad usage exits 2 before any work."""
    return option_date(as_of, "--as-of") or datetime.now(UTC).date()


def _json(render: Any, report: Report) -> str:
    """The report's JSON, control and bidi characters as JSON escapes (the same text)."""
    return terminal_text(render.json_text(report))


def _write(report: Report, fmt: str, out_file: Path | None, force: bool) -> None:
    from fleet.reports import render  # noqa: PLC0415

    try:
        if fmt == "csv":
            keys, rows = render.csv_rows(report)
            emit(rows, keys, "csv", out_file=out_file, force=force)
        elif fmt == "table" and out_file is None:
            render.table(report, out)
        elif out_file is None:
            write_out(_json(render, report) if fmt == "json" else render.html(report))
        else:
            from fleet.cli.outfile import atomic_text  # noqa: PLC0415

            with atomic_text(out_file, force=force) as fh:
                if fmt == "table":
                    render.table(report, SafeConsole(file=fh, width=160, no_color=True))
                else:
                    fh.write(_json(render, report) if fmt == "json" else render.html(report))
    except BrokenPipeError:
        if out_file is not None:
            raise fail(f"{out_file}: broken pipe") from None
        # the reader went away (`| head`): stop quietly, without a traceback at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        raise fail(f"{out_file or 'stdout'}: {exc.strerror or exc}") from None
    if out_file is not None:
        err_console.print(
            f"{report.name} report ({fmt}) written to {out_file}", highlight=False, soft_wrap=True
        )


@report_app.command("fleet")
def report_fleet(
    ctx: typer.Context,
    fmt: FormatOpt = ReportFormat.TABLE,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    as_of: AsOfOpt = None,
) -> None:
    """Terminals by model and status, by firmware (supported or not), an age histogram."""
    from fleet.reports import fleet_report  # noqa: PLC0415

    _write(fleet_report(state(ctx).engine(), _day(as_of)), fmt, out_file, force)


@report_app.command("replacements")
def report_replacements(
    ctx: typer.Context,
    fmt: FormatOpt = ReportFormat.TABLE,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    as_of: AsOfOpt = None,
    horizon: Annotated[
        str | None, typer.Option(help="Look-ahead, e.g. 180d, 26w, 6m (default: policy)")
    ] = None,
    limit: Annotated[
        int,
        limit_option("Table and HTML: the first N terminals (CSV, JSON: all)"),
    ] = 100,
) -> None:
    """Terminals to replace (reasons, priority, replace-by, contact) and the forecast of
    units and cost per quarter."""
    from fleet.reports import replacements_report  # noqa: PLC0415

    day = _day(as_of)
    days = option_days(horizon, "--horizon")
    st = state(ctx)
    report = replacements_report(
        st.engine(),
        st.policy().replacement,
        day,
        days,
        limit=limit if fmt in (ReportFormat.TABLE, ReportFormat.HTML) else None,
    )
    _write(report, fmt, out_file, force)


@report_app.command("rollout")
def report_rollout(
    ctx: typer.Context,
    fmt: FormatOpt = ReportFormat.TABLE,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    as_of: AsOfOpt = None,
    rollout: Annotated[
        list[int] | None,
        typer.Option("--rollout", "-r", help="Only this rollout (repeat for more)"),
    ] = None,
) -> None:
    """Rollouts created up to --as-of (their jobs as they are now): per-wave progress and
    failures grouped by last error."""
    from fleet.reports import rollout_report  # noqa: PLC0415

    report = rollout_report(state(ctx).engine(), _day(as_of), tuple(rollout or ()))
    _write(report, fmt, out_file, force)


def _choices(values: list[str] | None, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(values or ()))
    bad = [v for v in chosen if v not in allowed]
    if bad:
        raise fail(f"{name} must be one of {', '.join(allowed)}, not {bad[0]!r}", 2)
    return chosen


@report_app.command("notices")
def report_notices(
    ctx: typer.Context,
    fmt: FormatOpt = ReportFormat.TABLE,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Notices created up to the end of this day, UTC (default: today)"
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only notices created from this day (UTC), YYYY-MM-DD"),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="Only this kind of notice (repeat for more)"),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel", "-c", help=f"Only this channel ({', '.join(CHANNELS)}; repeat for more)"
        ),
    ] = None,
) -> None:
    """Notices by kind, channel and status and per day; their messages by channel, status
    and language with SMS segments and cost; failures by error (phone numbers masked)."""
    from fleet.notices.text import KINDS  # noqa: PLC0415
    from fleet.reports import NoticeFilter, notices_report  # noqa: PLC0415

    day = _day(as_of)
    first = option_date(since, "--since")
    if first is not None and first > day:
        raise fail(f"--since {first.isoformat()} is after --as-of {day.isoformat()}", 2)
    where = NoticeFilter(
        day,
        first,
        _choices(kind, KINDS, "--kind"),
        _choices(channel, CHANNELS, "--channel"),
    )
    _write(notices_report(state(ctx).engine(), where), fmt, out_file, force)


@report_app.command("scams")
def report_scams(
    ctx: typer.Context,
    fmt: FormatOpt = ReportFormat.TABLE,
    out_file: OutOpt = None,
    force: ForceOpt = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Up to the end of this day, UTC (default: today)")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=366, help="How many days back")] = 14,
) -> None:
    """The scam radar: NOT GENUINE verifications and scam complaints per region and day
    (UTC), with the policy's threshold alert (``inbound.scam_threshold``)."""
    from datetime import timedelta  # noqa: PLC0415

    from fleet.reports.service import scams_report  # noqa: PLC0415

    until = _day(as_of)
    st = state(ctx)
    report = scams_report(
        st.engine(), until - timedelta(days=days - 1), until,
        threshold=st.policy().inbound.scam_threshold,
    )  # fmt: skip
    _write(report, fmt, out_file, force)
