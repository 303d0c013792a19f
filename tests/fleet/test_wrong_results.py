"""Issue 13, "Wrong results": one test per class, each named after its class, each failing
before the class was fixed at its root, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import ATTEMPTS, AUDIT, MERCHANTS, NOTICES, TERMINALS
from fleet.fees.group import Group
from fleet.fees.tables import load_tables
from fleet.fees.targets import push_targets
from protocols.mac import generate_master_key_file

runner = CliRunner()


@contextmanager
def frozen_clock(at: datetime) -> Iterator[None]:
    """Every loaded ``fleet`` module's ``datetime.now`` answers ``at`` (and time goes on
    from it): the one clock, whatever module reads it."""
    real = datetime
    offset = at - real.now(UTC)

    class Frozen(real):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return (real.now(UTC) + offset).astimezone(tz) if tz else real.now() + offset

    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("fleet") and getattr(module, "datetime", None) is real:
            patched.append(module)
            module.datetime = Frozen  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.datetime = real  # type: ignore[attr-defined]


def _china_pair(engine: Engine) -> tuple[str, str]:
    with engine.connect() as conn:
        old = (
            conn.execute(
                select(TERMINALS.c.serial)
                .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
                .where(
                    TERMINALS.c.status == "deployed",
                    TERMINALS.c.tid.is_not(None),
                    MERCHANTS.c.timezone == "Asia/Shanghai",
                )
                .order_by(TERMINALS.c.serial)
            )
            .scalars()
            .first()
        )
        new = (
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.status == "in_stock")
                .order_by(TERMINALS.c.serial)
            )
            .scalars()
            .first()
        )
    assert old and new
    return old, new


# -- dates across time zones -----------------------------------------------------------------


@pytest.mark.parametrize("hour", [16, 17, 23])
def test_dates_across_time_zones_after_an_evening_swap_in_china(
    loaded: Engine, db_url: str, tmp_path: Path, hour: int
) -> None:
    old, new = _china_pair(loaded)
    evening = datetime.combine(datetime.now(UTC).date(), time(hour, 30), UTC)
    base = ["--db", db_url, "--actor", "field"]
    with frozen_clock(evening):
        res = runner.invoke(app, [*base, "swap", "do", old, new, "--reason", "worn"])
        assert res.exit_code == 0, res.output
        with loaded.connect() as conn:
            deployed = conn.execute(
                select(TERMINALS.c.deployed_on).where(TERMINALS.c.serial == new)
            ).scalar_one()
        assert deployed == evening.date() + timedelta(days=1)  # the merchant's date: tomorrow
        # the new terminal can be edited at once
        res = runner.invoke(app, [*base, "terminals", "update", new, "--fault-count", "1",
                                  "--reason", "dropped on install"])  # fmt: skip
        assert res.exit_code == 0, res.output
        # and an export re-imports
        export = tmp_path / "terminals.csv"
        res = runner.invoke(app, [*base, "terminals", "export", "--out", str(export)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, [*base, "terminals", "import", str(export)])
        assert res.exit_code == 0, res.output
    # a date that has begun nowhere yet is still refused
    res = runner.invoke(app, [*base, "terminals", "update", new, "--deployed-on",
                              (datetime.now(UTC).date() + timedelta(days=2)).isoformat(),
                              "--reason", "typo"])  # fmt: skip
    assert res.exit_code == 2 and "is in the future" in res.output


def test_dates_across_time_zones_one_clock() -> None:
    from fleet.core import clauses, clock, models  # noqa: PLC0415 - fails alone on main

    assert clauses.now is clock.now and models.now is clock.now


def _mark(engine: Engine, serial: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(TERMINALS).where(TERMINALS.c.serial == serial).values(**values))


# -- verification must not trust the terminal's MCC ------------------------------------------


def test_verification_does_not_trust_the_terminals_mcc(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    from tests.fleet.device.test_sync import merchant_mcc, possim  # noqa: PLC0415

    with loaded.connect() as conn:
        serial = (
            conn.execute(
                select(TERMINALS.c.serial)
                .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
                .where(TERMINALS.c.status == "deployed", MERCHANTS.c.country == "CN")
                .order_by(TERMINALS.c.serial)
            )
            .scalars()
            .first()
        )
        row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).one()._mapping
    right = merchant_mcc(loaded, dict(row))
    wrong = 5999 if right != 5999 else 5411
    table = tmp_path / "t.toml"  # the MCC decides the fee: a wrong one prices differently
    table.write_text(
        'name = "mcc"\ncurrency = "CNY"\neffective = 2026-01-01T00:00:00+08:00\n'
        f'[[rules]]\nmcc = "{wrong}"\nrate = "2.00%"\n[[rules]]\nrate = "0.60%"\n',
        encoding="utf-8",
    )
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    base = ["--db", db_url]
    assert runner.invoke(app, [*base, "fees", "publish", str(table)]).exit_code == 0
    terminal = {"serial": serial, "tid": row["tid"], "mid": row["mid"], "model": row["model"],
                "firmware": row["firmware"]}  # fmt: skip
    with possim(key, tmp_path / "bad", mcc=wrong, **terminal) as url:
        push = runner.invoke(app, [*base, "push", "--table", "1", "--terminal", serial, "--port",
                                   url, "--key-file", str(key), "--retries", "0"])  # fmt: skip
        sync = runner.invoke(app, [*base, "sync", "--terminal", serial, "--port", url])
    for res in (push, sync):
        assert res.exit_code == 1, res.output
        assert f"reports MCC {wrong:04d}, its merchant" in res.stderr
        assert f"has MCC {right:04d} in the fleet" in res.stderr
    with loaded.connect() as conn:
        after = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).one()
    assert (after.active_version, after.pending_version) == (0, 0)  # nothing recorded
    with possim(key, tmp_path / "good", mcc=right, **terminal) as url:
        push = runner.invoke(app, [*base, "push", "--table", "1", "--terminal", serial, "--port",
                                   url, "--key-file", str(key), "--retries", "0"])  # fmt: skip
    assert push.exit_code == 0, push.output


# -- currency mismatch ------------------------------------------------------------------------

CNY_FOR_ALL = """name = "China 2027"
description = "New rates"
currency = "CNY"
effective = 2027-01-01T00:00:00+08:00
[[rules]]
rate = "0.60%"
"""


def test_currency_mismatch_a_table_applies_to_merchants_of_its_currency(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    table = tmp_path / "cny.toml"
    table.write_text(CNY_FOR_ALL, encoding="utf-8")
    res = runner.invoke(app, ["--db", db_url, "fees", "publish", str(table)])
    assert res.exit_code == 0, res.output
    with loaded.connect() as conn:
        countries = dict(conn.execute(select(MERCHANTS.c.id, MERCHANTS.c.country)).all())
        notices = conn.execute(select(NOTICES.c.merchant_id, NOTICES.c.payload)).all()
    assert notices and {countries[m] for m, _ in notices} == {"CN"}  # no CNY to Dublin
    assert "pay in another currency than CNY (DE, IE, SG)" in " ".join(res.stdout.split())
    from fleet.core.money import country_currencies  # noqa: PLC0415
    from fleet.fees import targets  # noqa: PLC0415

    for merchant, payload in notices:  # never a foreign currency quoted to a merchant
        assert payload["currency"] in country_currencies(countries[merchant])
    with loaded.connect() as conn:
        covered = targets(conn)
    assert covered and {countries[m] for m in covered} == {"CN"}
    # a push of it reaches no terminal of a merchant in Germany, Ireland or Singapore
    _link_all(loaded)
    with loaded.connect() as conn:
        serials = push_targets(conn, 1, Group())
        owners = dict(conn.execute(select(TERMINALS.c.serial, TERMINALS.c.merchant_id)).all())
    assert serials and {countries[owners[s]] for s in serials} == {"CN"}


def _link_all(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.status.in_(("deployed", "faulty")))
            .values(link="socket://127.0.0.1:9")
        )


# -- publish --dry-run and fees diff count as publish does --------------------------------


def test_publish_dry_run_and_diff_agree_with_publish(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    east = tmp_path / "east.toml"
    east.write_text(CNY_FOR_ALL + '[applies]\nregions = ["east"]\n', encoding="utf-8")
    everyone = tmp_path / "all.toml"  # a raise for the east; a first table for the others
    everyone.write_text(CNY_FOR_ALL.replace("0.60%", "0.90%"), encoding="utf-8")
    base = ["--db", db_url]
    assert runner.invoke(app, [*base, "fees", "publish", str(east)]).exit_code == 0
    override = ["--override-notice", "--reason", "test"]
    dry = runner.invoke(app, [*base, "fees", "publish", str(everyone), "--dry-run", "-f", "json",
                              *override])  # fmt: skip
    real = runner.invoke(app, [*base, "fees", "publish", str(everyone), "-f", "json", *override])
    assert dry.exit_code == 0 and real.exit_code == 0, (dry.output, real.output)
    would, did = json.loads(dry.stdout), json.loads(real.stdout)
    assert would["notices"] == did["notices"] > 0
    assert (would["raised"], would["merchants"]) == (did["raised"], did["merchants"])
    with loaded.connect() as conn:
        queued = conn.execute(
            select(func.count()).select_from(NOTICES).where(NOTICES.c.ref == "fee:2")
        ).scalar_one()
        east_merchants = conn.execute(
            select(func.count()).select_from(MERCHANTS).where(MERCHANTS.c.region == "east")
        ).scalar_one()
    assert queued == did["notices"]
    assert did["raised"] == east_merchants < did["merchants"]  # a first table is not a raise
    diff = runner.invoke(app, [*base, "fees", "diff", "1", "2"])
    assert diff.exit_code == 0, diff.output
    line = " ".join(diff.stdout.split())
    assert f"{did['merchants']} merchants change, {did['raised']} pay more" in line
    assert f"{did['merchants'] - did['raised']} get their first table" in line


# -- a push that succeeded after retries is audited as what it did ---------------------------


def test_push_after_retries_is_audited_with_what_it_sent(
    loaded: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import protocols.session  # noqa: PLC0415
    from protocols.errors import LinkError  # noqa: PLC0415
    from tests.fleet.device.test_sync import merchant_mcc, possim  # noqa: PLC0415

    old, _ = _china_pair(loaded)
    with loaded.connect() as conn:
        row = dict(conn.execute(select(TERMINALS).where(TERMINALS.c.serial == old)).one()._mapping)
    table = tmp_path / "t.toml"
    rules = "".join(f'[[rules]]\nmcc = "{1000 + i}"\nrate = "0.{10 + i}%"\n' for i in range(60))
    table.write_text(CNY_FOR_ALL + rules, encoding="utf-8")
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    base = ["--db", db_url]
    assert runner.invoke(app, [*base, "fees", "publish", str(table)]).exit_code == 0
    real_status = protocols.session.HostSession.status
    calls: list[int] = []

    def status_once_broken(self: Any) -> Any:  # the link breaks right after the commit
        calls.append(1)
        if len(calls) == 1:
            raise LinkError("port lost while reading: cable pulled")
        return real_status(self)

    monkeypatch.setattr(protocols.session.HostSession, "status", status_once_broken)
    terminal = {"serial": old, "tid": row["tid"], "mid": row["mid"], "model": row["model"],
                "firmware": row["firmware"], "mcc": merchant_mcc(loaded, row)}  # fmt: skip
    with possim(key, tmp_path / "sim", **terminal) as url:
        res = runner.invoke(app, [*base, "push", "--table", "1", "--terminal", old, "--port",
                                  url, "--key-file", str(key), "--retries", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with loaded.connect() as conn:
        attempts = conn.execute(
            select(ATTEMPTS.c.outcome, ATTEMPTS.c.blocks_sent)
            .where(ATTEMPTS.c.serial == old)
            .order_by(ATTEMPTS.c.id)
        ).all()
        entry = conn.execute(
            select(AUDIT.c.details).where(
                AUDIT.c.action == "push", AUDIT.c.target == f"terminal:{old}"
            )
        ).scalar_one()
        blocks = len(load_tables(conn)[1].table.blocks())
    assert blocks > 1
    assert [a.outcome for a in attempts] == ["error", "already"]
    assert attempts[0].blocks_sent == blocks  # the failed attempt sent (and committed) them all
    assert (entry["outcome"], entry["sent"], entry["attempts"]) == ("pushed", blocks, 2)


# -- a swap reason too long for the SMS limit ----------------------------------------------

LONG_REASON = (
    "the card reader failed the daily self-test three times this week and the PIN pad "
    "shows signs of tampering around the keypad seal, so the unit is taken back to the "
    "depot for inspection by the security team and a spare from stock is installed today"
)


def test_a_long_swap_note_never_makes_the_sms_too_long(loaded: Engine, db_url: str) -> None:
    """The operator's note stays in the record: the SMS states the catalogue's reason, so a
    long note neither overflows the segment limit nor pushes the notice to email."""
    from fleet.core.models import MESSAGES, SWAPS  # noqa: PLC0415
    from fleet.core.policy import NoticePolicy  # noqa: PLC0415
    from fleet.notices.compose import compose  # noqa: PLC0415

    with loaded.connect() as conn:
        without, merchant = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.tid.is_not(None),
                   MERCHANTS.c.language == "zh-CN", MERCHANTS.c.phone.is_not(None))
            .order_by(TERMINALS.c.serial)
        ).first()  # fmt: skip
        spare = conn.execute(
            select(TERMINALS.c.serial).where(TERMINALS.c.status == "in_stock")
        ).scalar()
    with loaded.begin() as conn:
        conn.execute(
            update(MERCHANTS)
            .where(MERCHANTS.c.id == merchant)
            .values(channels=["sms"], email=None, opt_out=[])
        )
    res = runner.invoke(app, ["--db", db_url, "swap", "do", without, spare, "--reason",
                              LONG_REASON, "--reason-code", "tamper"])  # fmt: skip
    assert res.exit_code == 0, res.output
    compose(loaded, NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0))
    with loaded.connect() as conn:
        done = conn.execute(
            select(NOTICES.c.status, MESSAGES.c.channel, MESSAGES.c.body)
            .join(MESSAGES, MESSAGES.c.id == NOTICES.c.message_id)
            .where(NOTICES.c.merchant_id == merchant, NOTICES.c.kind == "swap_done")
        ).one()
        note = conn.execute(select(SWAPS.c.reason).where(SWAPS.c.old_serial == without)).scalar()
    assert (done.status, done.channel) == ("composed", "sms")
    assert "终端可能被改动" in done.body and "self-test" not in done.body
    assert note == LONG_REASON  # kept in the record


# -- the fleet report and firmware with an advisory that has no fix -------------------------


def test_fleet_report_firmware_with_an_unfixed_advisory_is_not_supported(
    loaded: Engine, db_url: str
) -> None:
    res = runner.invoke(app, ["--db", db_url, "report", "fleet", "-f", "json"])
    assert res.exit_code == 0, res.output
    rows = {(r["model"], r["firmware"]): r for r in json.loads(res.stdout)["firmware"]}
    with_advisory = [rows[k] for k in (("PF-200", "2.1.0"), ("PF-200", "2.2.0")) if k in rows]
    assert with_advisory  # the sample's catalog: PSA-2025-07 affects them, with no fix
    for row in with_advisory:
        assert row["supported"] is False, row
        assert row.get("open_advisories") == ["PSA-2025-07"]
    fixed = rows.get(("PF-300", "3.0.0"))  # PSA-2024-19 is fixed in 3.0.2: still supported
    assert fixed is not None and fixed["supported"] is True
