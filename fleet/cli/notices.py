"""`posfleet notices`: dispatch, verify, list, opt-outs and complaints, templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from fleet.cli.common import check_format, emit, err_console, fail, handled, out, state
from fleet.core.models import MESSAGES, NOTICES
from fleet.fees.tablefile import exponent_of, format_minor
from fleet.notices.channels import Transport, transport_for
from fleet.notices.outbox import (
    ContactError,
    Dispatcher,
    DispatchResult,
    mask_address,
    record_contact,
    verify,
)
from fleet.notices.text import CHANNELS, KINDS, LANGUAGES, check_templates, render, sample_items

notices_app = typer.Typer(
    help="Merchant notices: dispatch, verify, list, opt-outs and complaints, templates.",
    no_args_is_help=True,
)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json")]


@notices_app.command("dispatch")
def notices_dispatch(
    ctx: typer.Context,
    outbox: Annotated[
        Path,
        typer.Option(envvar="POSFLEET_OUTBOX", help="Folder for files and call lists"),
    ] = Path("outbox"),
    smtp: Annotated[
        str | None,
        typer.Option(envvar="POSFLEET_SMTP", help="Email via smtp://host:port (else files)"),
    ] = None,
    sms: Annotated[
        str | None,
        typer.Option(envvar="POSFLEET_SMS_URL", help="SMS via an Apprise URL with {phone}"),
    ] = None,
    watch: Annotated[bool, typer.Option(help="Keep running, polling for new notices")] = False,
    lease: Annotated[float, typer.Option(help="Seconds a claimed message is ours")] = 60.0,
    batch: Annotated[int, typer.Option(help="Messages claimed at a time")] = 200,
    fmt: FormatOpt = "table",
) -> None:
    """Compose due notices into messages (contact rules, digests) and send them, once."""
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        policy = st.policy().notices
        problems = check_templates(policy)
        if problems:
            for problem in problems:
                err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
            raise fail(f"{len(problems)} template problems: nothing sent")
        try:
            transports: dict[str, Transport] = {
                c: transport_for(c, outbox=outbox, smtp=smtp, sms=sms) for c in CHANNELS
            }
        except ValueError as exc:
            raise fail(str(exc), 2) from None
        engine = st.engine()
        dispatcher = Dispatcher(engine, policy, transports, lease_s=lease, batch=batch)
        with Progress(
            TextColumn("notices"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=fmt == "json",
        ) as progress:
            task = progress.add_task("send", total=_ready(engine) or None, note="")
            shown = {"done": 0, "total": 0}

            def show(r: DispatchResult) -> None:
                done = r.sent + r.failed
                if done - shown["done"] >= 100 or not shown["total"]:  # cheap: every 100
                    shown["total"] = _ready(engine) + done
                    shown["done"] = done
                progress.update(
                    task,
                    completed=done,
                    total=max(shown["total"], done),
                    note=f"retrying {r.retried}" if r.retried else "",
                )

            try:
                result = dispatcher.run(once=not watch, progress=show)
            except KeyboardInterrupt:
                raise fail("interrupted: messages being sent are taken over later") from None
    summary = {
        "composed": result.composed.messages,
        "notices": result.composed.notices,
        "deferred": result.composed.deferred,
        "cancelled": result.composed.cancelled,
        "sent": result.sent,
        "by_channel": dict(result.by_channel),
        "retried": result.retried,
        "failed": result.failed + result.composed.failed,
        "sms_segments": result.composed.segments,
        "sms_cost": f"{format_minor(result.composed.cost, exponent_of(policy.sms_currency))} "
        f"{policy.sms_currency}",
        "errors": result.errors[:20],
        "transports": {c: t.name for c, t in transports.items()},
    }
    if fmt == "json":
        emit([summary], [], "json", json_doc=lambda rows: rows[0])
    else:
        channels = ", ".join(f"{c} {n}" for c, n in sorted(result.by_channel.items())) or "none"
        out.print(
            f"composed {summary['composed']} messages from {summary['notices']} notices "
            f"(deferred {summary['deferred']}, cancelled {summary['cancelled']}); sent "
            f"{result.sent} ({channels}); retrying {result.retried}; failed "
            f"{summary['failed']}; SMS {summary['sms_segments']} segments, "
            f"{summary['sms_cost']}",
            highlight=False,
            soft_wrap=True,
        )
        for error in result.errors[:20]:
            err_console.print(error, highlight=False, soft_wrap=True, markup=False)
    if summary["failed"]:
        raise typer.Exit(1)


def _ready(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(MESSAGES.c.status.in_(("ready", "sending")))
            ).scalar_one()
        )


@notices_app.command("verify")
def notices_verify(
    ctx: typer.Context,
    code: Annotated[
        list[str], typer.Argument(help="The reference the merchant reads out (spaces allowed)")
    ],
    fmt: FormatOpt = "table",
) -> None:
    """Is this notice genuine? What was sent to whom, and when. Exit 1 when it is not."""
    check_format(fmt, ("table", "json"))
    st = state(ctx)
    with handled():
        found = verify(st.engine(), "".join(code), actor=st.actor)
    doc = found.as_dict()
    if fmt == "json":
        emit([doc], [], "json", json_doc=lambda rows: rows[0])
    elif not found.genuine:
        out.print(
            f"[bold red]NOT GENUINE[/]: no notice of ours has reference {found.code}. "
            "Tell the merchant not to act on it, and record a report.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"[bold green]GENUINE[/]: reference {found.code}, {doc['channel']} to "
            f"{doc['merchant']} ({doc['merchant_id']}) at {doc['to']}; composed "
            f"{doc['composed_at']}, sent {doc['sent_at'] or '(not yet: ' + doc['status'] + ')'}",
            highlight=False,
            soft_wrap=True,
        )
        for notice in doc["notices"]:
            out.print(f"  {notice['kind']} ({notice['ref']})", highlight=False)
        if doc["subject"]:
            out.print(f"  subject: {doc['subject']}", highlight=False)
        out.print(doc["body"], highlight=False, soft_wrap=True, markup=False)
    if not found.genuine:
        raise typer.Exit(1)


@notices_app.command("list")
def notices_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, composed, sent, failed…")] = None,
    kind: Annotated[str | None, typer.Option(help=", ".join(KINDS))] = None,
    merchant: Annotated[str | None, typer.Option(help="One merchant")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 200,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Notices with their message: channel, masked address, code, status, SMS cost."""
    check_format(fmt)
    st = state(ctx)
    with handled():
        query = (
            select(
                NOTICES.c.id, NOTICES.c.kind, NOTICES.c.merchant_id, NOTICES.c.ref,
                NOTICES.c.status, NOTICES.c.created_at, NOTICES.c.not_before, NOTICES.c.note,
                MESSAGES.c.code, MESSAGES.c.channel, MESSAGES.c.address, MESSAGES.c.sent_at,
                MESSAGES.c.segments, MESSAGES.c.cost, MESSAGES.c.cost_currency,
                MESSAGES.c.attempts, MESSAGES.c.error,
            )
            .outerjoin(MESSAGES, MESSAGES.c.id == NOTICES.c.message_id)
            .order_by(NOTICES.c.id.desc())
            .limit(limit)
        )  # fmt: skip
        if status:
            query = query.where(NOTICES.c.status == status)
        if kind:
            query = query.where(NOTICES.c.kind == kind)
        if merchant:
            query = query.where(NOTICES.c.merchant_id == merchant)
        with st.engine().connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["to"] = mask_address(row.pop("address")) if row.get("address") else ""
        if row["cost"] is not None:
            row["cost"] = f"{format_minor(row['cost'], exponent_of(row['cost_currency']))} " + (
                row["cost_currency"] or ""
            )
        row.pop("cost_currency")
    columns = [
        "id", "kind", "merchant_id", "ref", "status", "created_at", "not_before", "channel",
        "to", "code", "sent_at", "segments", "cost", "attempts", "note", "error",
    ]  # fmt: skip
    if fmt == "table":  # what fits on a screen; CSV and JSON have every column
        for row in rows:
            row["sent"] = _minute(row["sent_at"]) or (
                f"not before {_minute(row['not_before'])}" if row["not_before"] else ""
            )
            row["why"] = row["error"] or row["note"] or ""
        columns = [
            "id", "kind", "merchant_id", "status", "channel", "to", "code", "sent",
            "segments", "cost", "why",
        ]  # fmt: skip
    emit(rows, columns, fmt, title="Notices")


def _minute(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else ""


def _contact(ctx: typer.Context, merchant: str, kind: str, channels: list[str], note: str) -> None:
    st = state(ctx)
    with handled():
        try:
            after = record_contact(st.engine(), merchant, kind, channels, actor=st.actor, note=note)
        except ContactError as exc:
            raise fail(str(exc), 2 if "want" in str(exc) else 1) from None
    out.print(
        f"{merchant}: {kind.replace('_', '-')} {', '.join(channels)} recorded; opted out of: "
        f"{', '.join(after) or 'nothing'}",
        highlight=False,
        soft_wrap=True,
    )


ChannelOpt = Annotated[list[str], typer.Option("--channel", "-c", help="sms, email or call")]
NoteOpt = Annotated[str, typer.Option("--note", help="What the merchant said")]


@notices_app.command("opt-out")
def notices_opt_out(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument()],
    channel: ChannelOpt,
    note: NoteOpt = "",
) -> None:
    """Record an opt-out: the channel is no longer used (fee and swap notices still
    reach the merchant another way)."""
    _contact(ctx, merchant, "opt_out", channel, note)


@notices_app.command("opt-in")
def notices_opt_in(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument()],
    channel: ChannelOpt,
    note: NoteOpt = "",
) -> None:
    """Record an opt-in: the channel may be used again."""
    _contact(ctx, merchant, "opt_in", channel, note)


@notices_app.command("complaint")
def notices_complaint(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument()],
    channel: ChannelOpt,
    note: NoteOpt = "",
) -> None:
    """Record a complaint about a channel: kept as a complaint, and the channel is no
    longer used for this merchant."""
    _contact(ctx, merchant, "complaint", channel, note)


@notices_app.command("templates")
def notices_templates(
    ctx: typer.Context,
    preview: Annotated[
        str | None, typer.Option(help="Render KIND.LANGUAGE.CHANNEL with sample values")
    ] = None,
) -> None:
    """Check every template (no URL, no request for secrets, hotline + code stated, SMS
    within the segment limit), or preview one."""
    st = state(ctx)
    with handled():
        policy = st.policy().notices
    if preview:
        try:
            kind, language, channel = preview.rsplit(".", 2)
        except ValueError:
            raise fail("--preview wants KIND.LANGUAGE.CHANNEL, e.g. fee_change.en.sms", 2) from None
        if kind not in KINDS or language not in LANGUAGES or channel not in CHANNELS:
            raise fail(
                f"--preview: kinds {', '.join(KINDS)}; languages {', '.join(LANGUAGES)}; "
                f"channels {', '.join(CHANNELS)}",
                2,
            )
        shown = render(
            sample_items(kind), channel=channel, language=language, zone="Asia/Shanghai",
            merchant="Sample Merchant", code="7KQ2M-9XD4T", policy=policy,
        )  # fmt: skip
        if shown.subject:
            out.print(f"Subject: {shown.subject}\n", highlight=False, soft_wrap=True, markup=False)
        out.print(shown.body, highlight=False, soft_wrap=True, markup=False)
        if shown.sms:
            out.print(
                f"\n[{shown.sms.encoding}, {shown.sms.units} units, {shown.sms.segments} segments]",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        return
    problems = check_templates(policy)
    for problem in problems:
        err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
    if problems:
        raise fail(f"{len(problems)} template problems")
    out.print(
        f"{len(KINDS) * len(LANGUAGES) * len(CHANNELS)} templates checked: no URL, no request "
        f"for card numbers, passwords or codes; hotline and code stated; SMS within "
        f"{policy.sms_max_segments} segments",
        highlight=False,
        soft_wrap=True,
    )
