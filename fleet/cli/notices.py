"""`posfleet notices`: dispatch, verify, list, opt-outs and complaints, templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from fleet.cli.common import (
    Format,
    FormatOpt,
    TableJson,
    TableJsonOpt,
    emit,
    err_console,
    fail,
    limit_option,
    out,
    state,
    text_argument,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fleet.core.policy import NoticePolicy
    from fleet.notices.dispatch import DispatchResult

_KINDS_HELP = "fee_change, swap_planned, swap_done, follow_up, scam_warning or opt_out_confirm"
"""``--kind``'s help, written out: importing the kinds at start would load the domain."""

notices_app = typer.Typer(
    help="Merchant notices: dispatch, verify, list, opt-outs and complaints, templates.",
    no_args_is_help=True,
)


class _Shown:
    """The dispatch progress bar; the waiting count is asked again every 100 sends."""

    def __init__(self, engine: Engine, fmt: TableJson) -> None:
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from fleet.notices.listing import waiting_messages  # noqa: PLC0415

        self.engine = engine
        self.waiting_messages = waiting_messages
        self.progress = Progress(
            TextColumn("notices"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}", markup=False), TimeElapsedColumn(),
            console=err_console,
            disable=fmt == TableJson.JSON,
        )  # fmt: skip
        self.task = self.progress.add_task(
            "send", total=self.waiting_messages(self.engine) or None, note=""
        )
        self.done, self.total = 0, 0

    def __call__(self, r: DispatchResult) -> None:
        done = r.sent + r.failed
        if done - self.done >= 100 or not self.total:
            self.total, self.done = self.waiting_messages(self.engine) + done, done
        note = f"retrying {r.retried}" if r.retried else ""
        self.progress.update(self.task, completed=done, total=max(self.total, done), note=note)


def _refuse_bad_templates(policy: NoticePolicy) -> None:
    from fleet.notices.text import check_templates  # noqa: PLC0415

    problems = check_templates(policy)
    for problem in problems:
        err_console.print(str(problem), highlight=False, soft_wrap=True, markup=False)
    if problems:
        raise fail(f"{len(problems)} template problems: nothing sent")


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
    connections: Annotated[
        int, typer.Option(min=1, max=64, help="SMTP connections sending at once")
    ] = 1,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Compose due notices into messages (contact rules, digests) and send them, once."""
    from fleet.notices.channels import transports  # noqa: PLC0415
    from fleet.notices.dispatch import Dispatcher  # noqa: PLC0415

    st = state(ctx)
    policy = st.policy().notices
    _refuse_bad_templates(policy)
    sends = transports(outbox=outbox, smtp=smtp, sms=sms)
    shown = _Shown(st.engine(), fmt)
    dispatcher = Dispatcher(
        st.engine(), policy, sends, lease_s=lease, batch=batch, connections=connections,
        receipt_window_s=st.policy().inbound.receipt_window_s if sms else None,
    )  # fmt: skip
    with shown.progress:
        try:
            result = dispatcher.run(once=not watch, progress=shown)
        except KeyboardInterrupt:
            raise fail("interrupted: messages being sent are taken over later") from None
    summary = result.summary(policy.sms_currency, sends)
    if fmt == TableJson.JSON:
        emit([summary], [], "json", json_doc=lambda rows: rows[0])
    else:
        out.print(result.describe(policy.sms_currency), highlight=False, soft_wrap=True)
    problem = result.problem()
    if problem is not None:  # a transport down: one line, exit 1 (the JSON has each error)
        raise fail(problem)


@notices_app.command("verify")
def notices_verify(
    ctx: typer.Context,
    code: Annotated[
        list[str], text_argument("The reference the merchant reads out (spaces allowed)")
    ],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Is this notice genuine? What was sent to whom, and when. Exit 1 when it is not."""
    from fleet.notices.verify import verify  # noqa: PLC0415

    st = state(ctx)
    found = verify(st.quick_database(), "".join(code), actor=st.actor)
    doc = found.as_dict()
    if fmt == TableJson.JSON:
        emit([doc], [], "json", json_doc=lambda rows: rows[0])
    elif not found.genuine:
        out.print(
            Text.assemble(
                ("NOT GENUINE", "bold red"),
                f": no notice of ours has reference {found.code}. "
                "Tell the merchant not to act on it, and record a report.",
            ),
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(
            Text.assemble(
                ("GENUINE", "bold green"),
                f": reference {found.code}, {doc['channel']} to {doc['merchant']} "
                f"({doc['merchant_id']}) at {doc['to']}; composed {doc['composed_at']}, sent "
                f"{doc['sent_at'] or '(not yet: ' + doc['status'] + ')'}",
            ),
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
    kind: Annotated[str | None, typer.Option(help=_KINDS_HELP)] = None,
    merchant: Annotated[str | None, typer.Option(help="One merchant")] = None,
    limit: Annotated[int, limit_option("At most this many, newest first")] = 200,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Notices with their message: channel, masked address, code, status, SMS cost."""
    from fleet.notices.listing import list_notices  # noqa: PLC0415

    st = state(ctx)
    rows = list_notices(st.engine(), status=status, kind=kind, merchant=merchant, limit=limit)
    columns = [
        "id", "kind", "merchant_id", "ref", "status", "created_at", "not_before", "channel",
        "to", "code", "sent_at", "segments", "cost", "attempts", "note", "error",
    ]  # fmt: skip
    if fmt == Format.TABLE:  # what fits on a screen; CSV and JSON have every column
        for row in rows:
            row["sent"] = _minute(row["sent_at"]) or (
                f"not before {_minute(row['not_before'])}" if row["not_before"] else ""
            )
            row["why"] = row["error"] or row["note"] or ""
        columns = [
            "id", "kind", "merchant_id", "status", "channel", "to", "code", "sent",
            "segments", "cost", "why",
        ]  # fmt: skip
    emit(
        rows, columns, fmt, title="Notices",
        drop_first=["segments", "cost", "merchant_id", "to", "why"],
    )  # fmt: skip


def _minute(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else ""


def _contact(ctx: typer.Context, merchant: str, kind: str, channels: list[str], note: str) -> None:
    from fleet.notices.preferences import record_contact  # noqa: PLC0415

    st = state(ctx)
    after = record_contact(st.engine(), merchant, kind, channels, actor=st.actor, note=note)
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
    scam: Annotated[
        bool,
        typer.Option(
            "--scam",
            help="A scam complaint (someone claiming to be us, by --channel call, sms, email "
            "or visit) for the scam radar; our channels are not changed",
        ),
    ] = False,
    region: Annotated[
        str | None,
        typer.Option("--region", help="With --scam: the region (default: the merchant's)"),
    ] = None,
) -> None:
    """Record a complaint about a channel: kept as a complaint, and the channel is no
    longer used for this merchant. With --scam: a scam complaint for the radar."""
    if not scam:
        _contact(ctx, merchant, "complaint", channel, note)
        return
    from fleet.notices.scams import record_complaint  # noqa: PLC0415

    st = state(ctx)
    cid = record_complaint(
        st.engine(), channel=channel[0], actor=st.actor, region=region, merchant_id=merchant,
        note=note,
    )  # fmt: skip
    out.print(f"{merchant}: scam complaint {cid} recorded ({channel[0]})", highlight=False)


@notices_app.command("templates")
def notices_templates(
    ctx: typer.Context,
    preview: Annotated[
        str | None, typer.Option(help="Render KIND.LANGUAGE.CHANNEL with sample values")
    ] = None,
) -> None:
    """Check every template (no URL, no request for secrets, hotline + code stated, SMS
    within the segment limit), or preview one."""
    from fleet.notices.text import (  # noqa: PLC0415
        CHANNELS,
        KINDS,
        LANGUAGES,
        check_templates,
        render,
        sample_items,
    )

    policy = state(ctx).policy().notices
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


def _register_loop() -> None:
    from fleet.cli.notices_loop import register  # noqa: PLC0415

    register(notices_app)


_register_loop()
