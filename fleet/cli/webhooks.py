"""`posfleet webhooks …`: subscriptions of other systems to the fleet's events, and the
sender that delivers them (a process of its own, or inside `posfleet serve`)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli.common import check_format, emit, err_console, fail, handled, out, state

webhooks_app = typer.Typer(
    help="Webhooks: signed event deliveries to other systems.", no_args_is_help=True
)


@webhooks_app.command("keygen")
def webhooks_keygen(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Key file to write (mode 0600)")],
    force: Annotated[bool, typer.Option(help="Replace an existing key (orphans secrets)")] = False,
) -> None:
    """Make the secrets key that seals signing secrets (POSFLEET_SECRETS_KEY_FILE)."""
    from fleet.cli.outfile import check_target  # noqa: PLC0415
    from fleet.webhooks import generate_key_file  # noqa: PLC0415

    check_target(path, force=True, db=state(ctx).db)  # never the database, never a directory

    with handled():
        box = generate_key_file(path, overwrite=force)
    out.print(f"wrote {path} (key {box.key_id}); export POSFLEET_SECRETS_KEY_FILE={path}",
              highlight=False)  # fmt: skip


@webhooks_app.command("add")
def webhooks_add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Receiver URL (https; http only if private)")],
    events: Annotated[str, typer.Option(help="Kinds, comma-separated: swap.done,rollout.* or *")],
    secret: Annotated[
        str | None, typer.Option(help="Signing secret ('-': read stdin; none: one is made)")
    ] = None,
    allow_private: Annotated[
        bool, typer.Option(help="Allow loopback/private addresses (and http) for this receiver")
    ] = False,
    description: Annotated[str, typer.Option(help="What receives it")] = "",
) -> None:
    """Subscribe a receiver to events; a made secret is printed once."""
    from fleet.webhooks import add_subscription, load_keybox  # noqa: PLC0415

    st = state(ctx)
    if secret == "-":
        secret = sys.stdin.readline().strip()
    with handled():
        sub, made = add_subscription(
            st.engine(), url, events, box=load_keybox(), actor=st.actor, secret=secret,
            allow_private=allow_private, description=description,
        )  # fmt: skip
    out.print(f"webhook {sub.id}: {sub.url} ← {', '.join(sub.kinds)}", highlight=False)
    if made:
        out.print(f"signing secret (shown once): {made}", highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """Subscriptions with their deliveries by state."""
    from fleet.webhooks import list_subscriptions  # noqa: PLC0415

    check_format(fmt)
    st = state(ctx)
    with handled():
        subs = list_subscriptions(st.engine())
    rows = [
        s.as_dict() | {"deliveries": ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))}
        for s in subs
    ]
    emit(rows, ["id", "url", "events", "active", "deliveries", "created_by"], fmt, title="Webhooks")


@webhooks_app.command("show")
def webhooks_show(
    ctx: typer.Context,
    sub_id: Annotated[int, typer.Argument(help="Subscription id")],
    attempts: Annotated[int, typer.Option(help="How many of the last attempts")] = 20,
) -> None:
    """One subscription and its last attempts."""
    from fleet.webhooks import get_subscription  # noqa: PLC0415

    st = state(ctx)
    with handled():
        sub = get_subscription(st.engine(), sub_id, attempts=attempts)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(sub.counts.items())) or "none yet"
    state_text = "active" if sub.active else "disabled"
    out.print(
        f"webhook {sub.id}: {sub.url} ← {', '.join(sub.kinds)}; {state_text}; deliveries: {counts}",
        highlight=False,
    )
    emit(sub.attempts, ["at", "delivery", "status_code", "error", "duration_ms"], "table",
         title="Last attempts")  # fmt: skip


@webhooks_app.command("disable")
def webhooks_disable(
    ctx: typer.Context, sub_id: Annotated[int, typer.Argument(help="Subscription id")]
) -> None:
    """Stop delivering to a subscription."""
    from fleet.webhooks import disable_subscription  # noqa: PLC0415

    st = state(ctx)
    with handled():
        disable_subscription(st.engine(), sub_id, actor=st.actor)
    out.print(f"webhook {sub_id} disabled", highlight=False)


@webhooks_app.command("deliver")
def webhooks_deliver(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="One round, then exit")] = False,
    batch: Annotated[int, typer.Option(help="Deliveries claimed per round")] = 20,
    lease: Annotated[float, typer.Option(help="Lease on claimed deliveries, seconds")] = 60.0,
    interval: Annotated[float, typer.Option(help="Wait between idle rounds, seconds")] = 2.0,
    timeout: Annotated[float, typer.Option(help="HTTP timeout per attempt, seconds")] = 10.0,
    backoff: Annotated[float, typer.Option(help="First retry after, seconds (doubling)")] = 10.0,
) -> None:
    """Deliver pending events (run as many senders as you like: each claims its own)."""
    import threading  # noqa: PLC0415

    from fleet.webhooks import Sender, load_keybox  # noqa: PLC0415

    if batch < 1 or lease <= 0:
        raise fail("--batch and --lease must be positive", 2)
    st = state(ctx)
    with handled():
        sender = Sender(st.engine(), load_keybox(), batch=batch, lease_s=lease,
                        timeout_s=timeout, backoff_s=backoff)  # fmt: skip
        if once:
            result = sender.run_once()
            sender.close()
            out.print(
                f"fanned out {result.fanned_out} events; claimed {result.claimed}: delivered "
                f"{result.delivered}, retrying {result.retrying}, failed {result.failed}",
                highlight=False,
            )
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        err_console.print(f"delivering webhooks as {sender.owner} (Ctrl-C stops)", highlight=False)
        sender.run(stop, interval_s=interval)
