"""Webhooks end to end on SQLite and PostgreSQL, with a real HTTP receiver on loopback
that checks every signature: subscriptions, the signature and the replay check, retries
with backoff, and the sender SIGKILLed mid-batch then restarted: every event delivered,
once per subscription after the receiver's dedupe, none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from fleet.core.errors import InputError, JobError
from fleet.core.events import emit
from fleet.core.models import EVENTS
from fleet.webhooks import (
    KeyBox,
    Sender,
    add_subscription,
    check,
    disable_subscription,
    generate_key_file,
    get_subscription,
    parse_kinds,
)
from fleet.webhooks.models import ATTEMPTS, DELIVERIES, SUBSCRIPTIONS
from fleet.webhooks.signing import SignatureError, sign
from fleet.webhooks.urls import check_url
from tests.fleet.webhooks.receiver import receiver

SECRET = "whsec_test-secret-0123456789"
POSFLEET = str(Path(sys.executable).with_name("posfleet"))


def _emit(engine: Engine, kind: str, n: int) -> list[int]:
    with engine.begin() as conn:
        return [emit(conn, kind, {"n": i, "swap": i}) for i in range(n)]


def _deliveries(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                select(DELIVERIES.c.status, func.count()).group_by(DELIVERIES.c.status)
            ).all()  # type: ignore[arg-type]
        )


def test_signed_deliveries_reach_a_checking_receiver(engine: Engine, tmp_path: Path) -> None:
    box = generate_key_file(tmp_path / "secrets.key")
    with receiver(SECRET) as (url, got):
        sub, made = add_subscription(
            engine, url, "swap.*,rollout.halted", box=box, actor="admin", secret=SECRET,
            allow_private=True,
        )  # fmt: skip
        assert made is None and sub.kinds == ["rollout.halted", "swap.done", "swap.planned"]
        _emit(engine, "swap.done", 3)
        _emit(engine, "notice.failed", 2)  # not subscribed
        result = Sender(engine, box).run_once()
        assert (result.fanned_out, result.claimed, result.delivered) == (5, 3, 3)
        assert len(got.accepted) == 3 and not got.refused
        kinds = {doc["event"] for doc in got.accepted.values()}
        assert kinds == {"swap.done"}
        headers, body = got.raw[0]
        # the documented check, by hand: HMAC-SHA256 of "timestamp.body"
        stamp = int(headers["Posfleet-Timestamp"])
        assert headers["Posfleet-Signature"] == sign(SECRET, stamp, body)
        assert abs(stamp - time.time()) < 60
        # a replay of a captured request later: refused by the receiver's check
        with pytest.raises(SignatureError, match="tolerance"):
            check(SECRET, headers, body, now=stamp + 301)
        with pytest.raises(SignatureError, match="does not match"):
            check(SECRET, headers, body.replace(b"swap.done", b"swap.planned"), now=stamp)
        with pytest.raises(SignatureError, match="does not match"):
            check("whsec_another-secret-000", headers, body, now=stamp)
    # nothing in the database holds the secret in clear
    with engine.connect() as conn:
        sealed = conn.execute(select(SUBSCRIPTIONS.c.secret_box)).scalar_one()
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM webhook_subscription")))
    assert SECRET.encode() not in bytes(sealed) and SECRET not in dump
    shown = get_subscription(engine, sub.id)
    assert shown.counts == {"delivered": 3} and len(shown.attempts) == 3
    assert all(a["status_code"] == 200 for a in shown.attempts)


def test_retries_back_off_then_deliver(engine: Engine, tmp_path: Path) -> None:
    box = generate_key_file(tmp_path / "secrets.key")
    with receiver(SECRET, fail_first=2) as (url, got):
        add_subscription(engine, url, "*", box=box, actor="a", secret=SECRET, allow_private=True)
        _emit(engine, "rollout.halted", 1)
        sender = Sender(engine, box, backoff_s=0.2)
        first = sender.run_once()
        assert (first.claimed, first.retrying) == (1, 1)
        assert sender.run_once().claimed == 0  # backing off: not due yet
        deadline = time.monotonic() + 20
        while _deliveries(engine) != {"delivered": 1} and time.monotonic() < deadline:
            sender.run_once()
            time.sleep(0.05)
        assert _deliveries(engine) == {"delivered": 1}
        assert got.requests[next(iter(got.accepted))] == 3
    with engine.connect() as conn:
        attempts = (
            conn.execute(select(ATTEMPTS.c.status_code).order_by(ATTEMPTS.c.id)).scalars().all()
        )
        gaps = conn.execute(select(ATTEMPTS.c.at).order_by(ATTEMPTS.c.id)).scalars().all()
    assert attempts == [503, 503, 200]
    assert (gaps[1] - gaps[0]).total_seconds() >= 0.2 and (gaps[2] - gaps[1]).total_seconds() >= 0.4


def test_a_delivery_that_never_succeeds_fails_after_its_attempts(
    engine: Engine, tmp_path: Path
) -> None:
    box = generate_key_file(tmp_path / "secrets.key")
    with receiver("whsec_not-what-posfleet-signs-with") as (url, got):  # every signature fails
        add_subscription(engine, url, "*", box=box, actor="a", secret=SECRET, allow_private=True)
        _emit(engine, "notice.failed", 1)
        sender = Sender(engine, box, backoff_s=0.01, max_attempts=3)
        deadline = time.monotonic() + 20
        while _deliveries(engine) != {"failed": 1} and time.monotonic() < deadline:
            sender.run_once()
            time.sleep(0.03)
        assert _deliveries(engine) == {"failed": 1}
        assert len(got.refused) == 3 and not got.accepted


def test_who_gets_what(engine: Engine, tmp_path: Path) -> None:
    box = generate_key_file(tmp_path / "secrets.key")
    with receiver(SECRET) as (url, got):
        _emit(engine, "swap.done", 1)  # before any subscription: nobody's
        a, _ = add_subscription(
            engine, url, "*", box=box, actor="x", secret=SECRET, allow_private=True
        )
        b, _ = add_subscription(
            engine, url, "swap.done", box=box, actor="x", secret=SECRET, allow_private=True
        )
        c, _ = add_subscription(
            engine, url, "*", box=box, actor="x", secret=SECRET, allow_private=True
        )
        disable_subscription(engine, c.id, actor="x")
        _emit(engine, "swap.done", 2)
        _emit(engine, "verify.not_genuine", 1)
        sender = Sender(engine, box)
        sender.run_once()
        sender.run_once()
    with engine.connect() as conn:
        per_sub = dict(
            conn.execute(
                select(DELIVERIES.c.subscription_id, func.count()).group_by(
                    DELIVERIES.c.subscription_id
                )
            ).all()  # type: ignore[arg-type]
        )
        pending = conn.execute(
            select(func.count()).select_from(EVENTS).where(EVENTS.c.fanned_out.is_(False))
        ).scalar_one()
    assert per_sub == {a.id: 3, b.id: 2} and pending == 0
    assert len(got.accepted) == 5 and len(set(got.accepted)) == 5


def test_url_and_secret_rules(engine: Engine, tmp_path: Path) -> None:
    box = generate_key_file(tmp_path / "secrets.key")
    assert check_url("https://hooks.example.com/x", resolve=False)
    for url, why in [
        ("ftp://example.com/x", "scheme"),
        ("http://example.com/x", "http is only"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https://example.com/x#frag", "fragment"),
        ("https://127.0.0.1/x", "private or loopback"),
        ("https://10.0.0.8/x", "private or loopback"),
        ("https://[::1]/x", "private or loopback"),
        ("https://no-such-host.invalid/x", "does not resolve"),
        ("https://" + "a" * 500 + ".com/", "500 characters"),
    ]:
        with pytest.raises(InputError, match=why):
            check_url(url)
    for url in ("http://169.254.169.254/latest", "http://0.0.0.0:80/", "http://224.0.0.1/"):
        with pytest.raises(InputError, match="never a receiver"):
            check_url(url, allow_private=True)
    with pytest.raises(InputError, match="unknown event"):
        parse_kinds("swap.done,swap.exploded")
    with pytest.raises(InputError, match="at least 16"):
        add_subscription(engine, "http://127.0.0.1:9/x", "*", box=box, actor="a", secret="short",
                         allow_private=True)  # fmt: skip
    other = KeyBox(bytes(32))
    with pytest.raises(JobError, match="sealed under secrets key"):
        other.open(box.seal("s"), box.key_id)
    with pytest.raises(InputError, match="exists"):
        generate_key_file(tmp_path / "secrets.key")
    assert oct((tmp_path / "secrets.key").stat().st_mode)[-3:] == "600"


@pytest.mark.slow
def test_sender_killed_mid_batch_delivers_every_event_once(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "secrets.key"
    box = generate_key_file(key)
    env = os.environ | {"POSFLEET_DB": db_url, "POSFLEET_SECRETS_KEY_FILE": str(key)}
    cmd = [POSFLEET, "webhooks", "deliver", "--batch", "10", "--lease", "2", "--interval", "0.1"]
    with receiver(SECRET, delay_s=0.03) as (url, got):
        subs = [
            add_subscription(
                engine, url, "*", box=box, actor="a", secret=SECRET, allow_private=True
            )[0]
            for _ in range(2)
        ]
        _emit(engine, "swap.done", 40)
        _emit(engine, "rollout.done", 20)
        sender = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while got.total < 25 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got.total >= 25
            sender.send_signal(signal.SIGKILL)  # mid-batch: requests in flight, leases held
            sender.wait(10)
            killed_at = got.total
            assert _deliveries(engine).get("sending", 0) > 0  # it died holding leases
            sender = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 90
            while _deliveries(engine) != {"delivered": 120} and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            sender.send_signal(signal.SIGTERM)
            sender.wait(15)
        assert _deliveries(engine) == {"delivered": 120}, _deliveries(engine)
        assert sender.returncode == 0
        # every (event, subscription) reached the receiver; its dedupe kept each once
        with engine.connect() as conn:
            ids = {f"whd_{i}" for i in conn.execute(select(DELIVERIES.c.id)).scalars()}
        assert set(got.accepted) == ids and len(ids) == 120
        per_event: dict[tuple[int, int], int] = {}
        for doc in got.accepted.values():
            per_event[(doc["event_id"], 0)] = per_event.get((doc["event_id"], 0), 0) + 1
        assert set(per_event.values()) == {len(subs)}  # each event once per subscription
        # what arrived twice: only what was in flight when the sender died
        repeats = sum(n - 1 for n in got.requests.values())
        assert 0 <= repeats <= 10 and not got.refused
        assert killed_at < 120


def test_cli(engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from fleet.cli import app  # noqa: PLC0415

    runner = CliRunner()
    key = tmp_path / "k.key"
    made = runner.invoke(app, ["webhooks", "keygen", str(key)])
    assert made.exit_code == 0 and key.exists()
    no_key = runner.invoke(
        app, ["--db", db_url, "webhooks", "add", "http://127.0.0.1:9/", "--events", "*"]
    )
    assert no_key.exit_code == 2 and "POSFLEET_SECRETS_KEY_FILE" in no_key.stderr
    monkeypatch.setenv("POSFLEET_SECRETS_KEY_FILE", str(key))
    refused = runner.invoke(
        app, ["--db", db_url, "webhooks", "add", "http://127.0.0.1:9/", "--events", "*"]
    )
    assert refused.exit_code == 2 and "http is only for a private receiver" in refused.stderr
    with receiver(SECRET) as (url, got):
        added = runner.invoke(
            app, ["--db", db_url, "webhooks", "add", url, "--events", "swap.*", "--allow-private",
                  "--secret", "-"], input=SECRET + "\n",
        )  # fmt: skip
        assert added.exit_code == 0 and "secret" not in added.stdout
        _emit(engine, "swap.planned", 2)
        once = runner.invoke(app, ["--db", db_url, "webhooks", "deliver", "--once"])
        assert once.exit_code == 0 and "delivered 2" in once.stdout
        assert len(got.accepted) == 2
    shown = runner.invoke(app, ["--db", db_url, "webhooks", "show", "1"])
    assert "delivered 2" in shown.stdout and "200" in shown.stdout
    listed = runner.invoke(app, ["--db", db_url, "webhooks", "list", "--format", "json"])
    assert listed.exit_code == 0 and SECRET not in listed.stdout


@pytest.mark.slow
def test_serve_delivers_webhooks_too(engine: Engine, db_url: str, tmp_path: Path) -> None:
    from tests.fleet.web.server import serve  # noqa: PLC0415

    key = tmp_path / "secrets.key"
    box = generate_key_file(key)
    with receiver(SECRET) as (url, got):
        add_subscription(engine, url, "*", box=box, actor="a", secret=SECRET, allow_private=True)
        env = {"POSFLEET_SECRETS_KEY_FILE": str(key)}
        with serve(db_url, tmp_path, extra_env=env, args=("--deliver-webhooks",)):
            _emit(engine, "rollout.halted", 3)
            deadline = time.monotonic() + 30
            while len(got.accepted) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
    assert len(got.accepted) == 3 and _deliveries(engine) == {"delivered": 3}
