"""Fee tables: authoring from TOML, publishing, the notice-period rule, notices, diff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import AUDIT, FEE_TABLES, MERCHANTS, NOTICES
from fleet.core.policy import FeePolicy, Policy
from fleet.fees import (
    FeeFileError,
    Group,
    NoticePeriodError,
    load_tables,
    parse_fee_toml,
    parse_rate,
    publish,
    rule_diff,
    targets,
)
from protocols.feetable import FeeTable, compute_fee
from protocols.values import CardType

HEAD = 'currency = "CNY"\neffective = 2027-01-01T00:00:00+08:00\n'
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def table_text(
    rate: str = "0.60%", effective: str = "2027-01-01T00:00:00+08:00", extra: str = ""
) -> str:
    return (
        f'name = "t"\ncurrency = "CNY"\neffective = {effective}\n{extra}'
        f'[[rules]]\ncard = "credit"\nmcc = ["5411", "5811-5814"]\nrate = "{rate}"\nmin = "0.10"\n'
        f'[[rules]]\ncard = "any"\nrate = "0.38%"\n'
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[rules]]\nrate = "0.00001%"', "rules[0].rate: 0.00001% is finer than 0.0001%"),
        ('[[rules]]\nrate = "101%"', "rules[0].rate: 101% is not between 0% and 100%"),
        ("[[rules]]\nrate = 0.6", "rules[0].rate: write a rate as a percent string"),
        ('[[rules]]\nrate = "abc%"', "rules[0].rate: not a percentage: 'abc%'"),
        (
            '[[rules]]\nrate = "1%"\n[[rules]]\ncard = "gold"\nrate = "1%"',
            "rules[1].card: unknown card type 'gold'",
        ),
        ('[[rules]]\nrate = "1%"\nmin = 0.1', "rules[0].min: write money as a string"),
        (
            '[[rules]]\nrate = "1%"\nfixed = "0.001"',
            "rules[0].fixed: 0.001 has more than 2 decimals",
        ),
        (
            '[[rules]]\nrate = "1%"\nmin = "5.00"\nmax = "1.00"',
            "rules[0].min: 5.00 is above max 1.00",
        ),
        ('[[rules]]\nrate = "1%"\nmcc = "5814-5811"', "rules[0].mcc: 5814-5811 is not a range"),
        ('[[rules]]\nrate = "1%"\nmcc = ["99999"]', "rules[0].mcc: not an MCC or range: '99999'"),
        ('[[rules]]\nrate = "1%"\ncolour = "red"', "rules[0].colour: unknown key"),
        ("", "rules: at least one [[rules]] entry is required"),
        ('[applies]\nshops = ["x"]\n[[rules]]\nrate = "1%"', "applies.shops: unknown key"),
        ('[[rules]]\ncard = "debit"', 'rules[0].rate: required, e.g. "0.60%"'),
    ],
)
def test_authoring_errors_name_rule_and_key(body: str, message: str) -> None:
    with pytest.raises(FeeFileError) as info:
        parse_fee_toml(HEAD + body, "f.toml")
    assert str(info.value).startswith("f.toml: " + message), str(info.value)


def test_top_level_errors() -> None:
    for text, message in [
        (
            'currency = "XYZ"\neffective = 2027-01-01T00:00:00Z\n[[rules]]\nrate = "1%"',
            "currency: want an ISO 4217 code",
        ),
        (
            'currency = "CNY"\neffective = 2027-01-01T00:00:00\n[[rules]]\nrate = "1%"',
            "effective: 2027-01-01T00:00:00 has no time zone",
        ),
        (
            'currency = "CNY"\neffective = 2027-01-01\n[[rules]]\nrate = "1%"',
            "effective: give a time and a zone",
        ),
        ('currency = "CNY"\n[[rules]]\nrate = "1%"', "effective: required"),
        (
            'currency = "CNY"\neffective = 2027-01-01T00:00:00Z\nversion = 3\n[[rules]]\nrate = "1%"',
            "version: unknown key",
        ),
        ("currency = ", "not TOML"),
    ]:
        with pytest.raises(FeeFileError, match=message.replace("(", r"\(")):
            parse_fee_toml(text)


def test_a_parsed_table() -> None:
    t = parse_fee_toml(
        HEAD + '[applies]\nmcc = ["5411"]\nregions = ["east"]\n'
        '[[rules]]\ncard = "credit"\nmcc = ["5411", "5811-5814"]\nrate = "0.6%"\n'
        'fixed = "0.05"\nmin = "0.10"\nmax = "20.00"\n[[rules]]\nrate = "0.38%"'
    )
    table = t.table(4)
    assert [(r.card_type, r.mcc_lo, r.mcc_hi) for r in table.rules] == [
        (CardType.CREDIT, 5411, 5411),
        (CardType.CREDIT, 5811, 5814),
        (CardType.ANY, 0, 9999),
    ]
    assert (
        table.rules[0].rate_ppm,
        table.rules[0].fixed,
        table.rules[0].min_fee,
        table.rules[0].max_fee,
    ) == (6000, 5, 10, 2000)
    assert t.sources == (0, 0, 1) and t.group == Group(((5411, 5411),), ("east",), ())
    assert table.effective == datetime(2026, 12, 31, 16, tzinfo=UTC) and table.currency == 156
    assert FeeTable.from_bytes(table.to_bytes()) == table
    jpy = parse_fee_toml(
        'currency = "JPY"\neffective = 2027-01-01T00:00:00Z\n[[rules]]\nrate = "1%"\nmin = "50"'
    )
    assert jpy.rules[0].min_fee == 50 and jpy.currency == 392
    shadow = parse_fee_toml(HEAD + '[[rules]]\nrate = "1%"\n[[rules]]\ncard = "debit"\nrate = "2%"')
    assert shadow.shadowed() and "rules[1]" in shadow.shadowed()[0]


@given(
    ppm=st.integers(0, 1_000_000),
    fixed=st.integers(0, 10_000),
    low=st.integers(0, 10_000),
    span=st.integers(0, 100_000),
    amount=st.integers(0, 10**9),
)
def test_parsed_rules_price_like_the_wire(
    ppm: int, fixed: int, low: int, span: int, amount: int
) -> None:
    high = low + span if span else 0
    text = (
        HEAD + f'[[rules]]\nrate = "{ppm / 10_000}%"\nfixed = "{fixed / 100:.2f}"\n'
        f'min = "{low / 100:.2f}"\nmax = "{high / 100:.2f}"\n'
    )
    table = parse_fee_toml(text).table(1)
    rule = table.rules[0]
    assert (rule.rate_ppm, rule.fixed, rule.min_fee, rule.max_fee) == (ppm, fixed, low, high)
    assert FeeTable.from_bytes(table.to_bytes()) == table
    fee = (amount * ppm + 500_000) // 1_000_000 + fixed
    fee = max(fee, low)
    if high:
        fee = min(fee, high)
    assert compute_fee(table, amount, CardType.DEBIT, 5411) == min(fee, amount)


def test_rates() -> None:
    assert parse_rate("0.0125%") == 125 and parse_rate(" 2 %") == 20000


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
            for t in (FEE_TABLES, NOTICES, AUDIT)
        )


def test_publish_versions_notices_and_the_notice_period(loaded: Engine, tmp_path: Path) -> None:
    policy = FeePolicy()
    first = publish(
        loaded, _write(tmp_path, "a.toml", table_text()), actor="t", policy=policy, at=NOW
    )
    assert first.version == 1
    with loaded.connect() as conn:
        n_first = conn.execute(select(func.count()).select_from(NOTICES)).scalar_one()
        row = conn.execute(select(FEE_TABLES).where(FEE_TABLES.c.version == 1)).one()
        payload = conn.execute(select(NOTICES.c.payload)).first()[0]  # type: ignore[index]
    with loaded.connect() as conn:
        in_china = conn.execute(
            select(func.count()).select_from(MERCHANTS).where(MERCHANTS.c.country == "CN")
        ).scalar_one()
    # every merchant paid in CNY gets its first table; the others are not this table's
    assert 0 < n_first == in_china < 100 and payload["direction"] == "new"
    assert row.wire == first.table.to_bytes() and len(row.sha256) == 64
    # a raise taking effect in 10 days: refused, nothing written
    soon = (NOW + timedelta(days=10)).isoformat()
    raise_soon = _write(tmp_path, "b.toml", table_text("0.90%", soon))
    before = _counts(loaded)
    with pytest.raises(NoticePeriodError, match="30 days' notice"):
        publish(loaded, raise_soon, actor="t", policy=policy, at=NOW)
    assert _counts(loaded) == before
    # overridden: published, audited with the reason
    p = publish(
        loaded,
        raise_soon,
        actor="alice",
        policy=policy,
        at=NOW,
        override_reason="regulator order 17",
    )
    assert p.version == 2 and p.raises
    with loaded.connect() as conn:
        override = conn.execute(select(AUDIT).where(AUDIT.c.action == "override")).one()
        notices = conn.execute(
            select(NOTICES.c.merchant_id, NOTICES.c.payload).where(NOTICES.c.ref == "fee:2")
        ).all()
        stored = conn.execute(
            select(FEE_TABLES.c.notice_override).where(FEE_TABLES.c.version == 2)
        ).scalar()
    assert (override.actor, override.reason, stored) == (
        "alice",
        "regulator order 17",
        "regulator order 17",
    )
    raised = {i.merchant_id for i in p.impacts if i.raised}
    assert {m for m, _ in notices} == raised and all(pl["direction"] == "up" for _, pl in notices)
    assert all(pl["basket_new"] > pl["basket_old"] for _, pl in notices)
    # a raise 30 days out needs no override; a reduction may start at once
    later = (NOW + timedelta(days=30)).isoformat()
    assert (
        publish(
            loaded,
            _write(tmp_path, "c.toml", table_text("1.00%", later)),
            actor="t",
            policy=policy,
            at=NOW,
        ).version
        == 3
    )
    cut = publish(
        loaded,
        _write(tmp_path, "d.toml", table_text("0.20%", NOW.isoformat())),
        actor="t",
        policy=policy,
        at=NOW,
    )
    assert cut.version == 4 and not cut.raises
    assert all(i.new_fee <= (i.old_fee or 0) for i in cut.impacts)
    # a bank's 90 days
    bank = Policy.from_toml('[fees]\nnotice_period = "90d"').fees
    with pytest.raises(NoticePeriodError, match="90 days"):
        publish(
            loaded,
            _write(tmp_path, "e.toml", table_text("0.90%", later)),
            actor="t",
            policy=bank,
            at=NOW,
        )
    with loaded.connect() as conn:
        assert [t for t in load_tables(conn)] == [1, 2, 3, 4]


def test_group_tables_target_their_merchants(loaded: Engine, tmp_path: Path) -> None:
    publish(
        loaded, _write(tmp_path, "all.toml", table_text()), actor="t", policy=FeePolicy(), at=NOW
    )
    grocery = _write(tmp_path, "g.toml", table_text("0.50%", extra='[applies]\nmcc = ["5411"]\n'))
    p = publish(loaded, grocery, actor="t", policy=FeePolicy(), at=NOW)
    with loaded.connect() as conn:
        target = targets(conn)
    assert {i.mcc for i in p.impacts} == {5411}
    assert {m for m, v in target.items() if v == 2} == {i.merchant_id for i in p.impacts}
    assert set(target.values()) == {1, 2}


def test_cli_check_publish_list_show_diff(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--db", db_url]
    good = _write(tmp_path, "a.toml", table_text())
    res = runner.invoke(app, [*base, "fees", "check", str(good)])
    assert res.exit_code == 0 and "bytes on the wire" in res.stdout
    bad = _write(tmp_path, "bad.toml", table_text("0.6"))
    res = runner.invoke(app, [*base, "fees", "check", str(bad)])
    assert res.exit_code == 2 and "rules[0].rate" in res.output  # bad input
    res = runner.invoke(app, [*base, "fees", "publish", str(good), "--dry-run", "--format", "json"])
    assert json.loads(res.stdout)["published"] is False and _counts(loaded)[0] == 0
    res = runner.invoke(app, [*base, "fees", "publish", str(good), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["version"] == 1
    soon = _write(
        tmp_path,
        "b.toml",
        table_text(
            "0.95%", (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
        ),
    )
    res = runner.invoke(app, [*base, "fees", "publish", str(soon)])
    assert res.exit_code == 1 and "notice" in res.output
    assert (
        runner.invoke(app, [*base, "fees", "publish", str(soon), "--override-notice"]).exit_code
        == 2
    )
    res = runner.invoke(
        app, [*base, "fees", "publish", str(soon), "--override-notice", "--reason", "agreed"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "fees", "list", "--format", "json"])
    assert [t["version"] for t in json.loads(res.stdout)] == [2, 1]
    res = runner.invoke(app, [*base, "fees", "show", "1", "--format", "toml"])
    assert res.stdout == good.read_text()
    assert runner.invoke(app, [*base, "fees", "show", "9"]).exit_code == 2  # not found
    res = runner.invoke(app, [*base, "fees", "diff", "1", "2", "--format", "json"])
    doc = json.loads(res.stdout)
    assert [r["change"] for r in doc["rules"]] == ["changed", "changed"]
    assert doc["merchants"] and all(m["after"] > m["before"] for m in doc["merchants"])
    assert runner.invoke(app, [*base, "fees", "diff", "1", "2"]).exit_code == 0


def test_rule_diff_by_what_rules_select() -> None:
    a = parse_fee_toml(
        HEAD + '[[rules]]\ncard = "credit"\nrate = "1%"\n[[rules]]\nrate = "0.5%"'
    ).table(1)
    b = parse_fee_toml(
        HEAD + '[[rules]]\ncard = "debit"\nrate = "0.2%"\n[[rules]]\ncard = "credit"\nrate = "1%"\n'
    ).table(2)
    assert [(r["change"], r["rule"]) for r in rule_diff(a, b)] == [
        ("added", "0"),
        ("moved", "0→1"),
        ("removed", "1"),
    ]
