"""Money in every currency: one module (:mod:`fleet.core.money`), and the 0- and
3-decimal currencies (VND, JPY, KWD) right through the reports, the fee diff and the
notices — where hand tables once printed 500 VND as ``5.00``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.db import writer
from fleet.core.models import MERCHANTS, MESSAGES, MODELS
from fleet.core.money import (
    MoneyError,
    alpha_code,
    currencies,
    format_minor,
    format_money,
    numeric_code,
    parse_minor,
    precision,
)
from fleet.core.policy import FeePolicy, NoticePolicy
from fleet.fees import FeeFileError, describe_rule, fee_diff, parse_fee_toml, publish
from fleet.notices import FeeChange, SwapNotice, queue
from fleet.notices.compose import compose
from fleet.notices.dispatch import DispatchResult
from fleet.notices.listing import list_notices
from fleet.notices.text import NoticeItem, render
from protocols.feetable import FeeTable, compute_fee
from protocols.values import CardType

ISO = currencies()


def test_every_iso_4217_currency_has_a_precision_and_a_numeric_code() -> None:
    assert len(ISO) > 150 and {"EUR", "CNY", "VND", "JPY", "KWD", "CLF"} <= set(ISO)
    for alpha in ISO:
        number = numeric_code(alpha)
        assert 0 < number < 1000 and alpha_code(number) == alpha  # the wire's n3 round-trips
        assert precision(alpha) in (0, 2, 3, 4) and precision(number) == precision(alpha)
        for minor in (0, 1, 9, 10, 99, 100, 12345, 10**12 + 7):
            assert parse_minor(format_minor(minor, alpha), alpha) == minor, (alpha, minor)


@given(currency=st.sampled_from(ISO), minor=st.integers(0, 10**15))
def test_parse_of_format_is_the_identity(currency: str, minor: int) -> None:
    assert parse_minor(format_minor(minor, currency), currency) == minor
    assert parse_minor(format_minor(minor, currency), numeric_code(currency)) == minor


def test_precisions_and_refusals() -> None:
    assert [precision(c) for c in ("EUR", "VND", "JPY", "KWD", "BHD", "CNY")] == [2, 0, 0, 3, 3, 2]
    assert format_minor(500, "VND") == "500" and format_minor(500, "KWD") == "0.500"
    assert format_minor(500, "JPY") == "500" and format_minor(500, "EUR") == "5.00"
    assert parse_minor("1,250.5", "KWD") == 1_250_500 and parse_minor(7, "JPY") == 7
    for text, currency, why in [
        ("0.5", "VND", "more than 0 decimals for VND"),
        ("0.0001", "KWD", "more than 3 decimals for KWD"),
        ("-1", "EUR", "non-negative"),
        ("abc", "EUR", "not an amount"),
        ("1", "XYZ", "not an ISO 4217"),
    ]:
        with pytest.raises(MoneyError, match=why):
            parse_minor(text, currency)
    with pytest.raises(MoneyError, match="no float"):
        parse_minor(0.5, "EUR")
    with pytest.raises(MoneyError):
        alpha_code(1)


def test_locale_formats_en_and_zh_cn() -> None:
    assert format_money(123456, "EUR", "en") == "€1,234.56"
    assert format_money(50000, "VND", "en") == "₫50,000"
    assert format_money(1250, "KWD", "zh-CN") == "KWD1.250"
    assert format_money(123456, "CNY", "zh-CN") == "¥1,234.56"
    for alpha in ("JPY", "KWD", "VND", "EUR"):
        digits = re.sub(r"[^0-9.]", "", format_money(1_234_567, alpha, "en"))
        assert parse_minor(digits, alpha) == 1_234_567


# -- through the replacements report ----------------------------------------------------


@pytest.mark.parametrize(("currency", "price", "shown"), [("VND", 500, "500"), ("JPY", 500, "500"),
                                                         ("KWD", 500, "0.500")])  # fmt: skip
def test_replacement_costs_in_the_report(
    loaded: Engine, db_url: str, currency: str, price: int, shown: str
) -> None:
    with writer(loaded).begin() as conn:
        conn.execute(update(MODELS).values(currency=currency, unit_price=price))
    res = CliRunner().invoke(
        app, ["--db", db_url, "report", "replacements", "-f", "json", "--as-of", "2030-01-01"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (cost,) = doc["summary"]["cost"]
    assert cost["currency"] == currency and cost["cost_minor"] % price == 0
    units = cost["cost_minor"] // price
    assert units > 0
    res = CliRunner().invoke(app, ["--db", db_url, "report", "replacements", "--as-of",
                                   "2030-01-01"])  # fmt: skip
    assert res.exit_code == 0, res.output
    total = format_minor(units * price, currency)
    assert f"{total} {currency}" in res.stdout, res.stdout[-2000:]
    wrong = f"{units * price / 100:.2f} {currency}"
    assert currency == "KWD" or wrong not in res.stdout
    res = CliRunner().invoke(app, ["--db", db_url, "replacements", "-f", "csv"])
    assert res.exit_code == 0, res.output
    rows = [line.split(",") for line in res.stdout.splitlines()[1:]]
    assert rows and all(shown in row for row in rows)


# -- through the fee diff -------------------------------------------------------------------

_TABLE = """name = "t"
currency = "{currency}"
effective = {effective}
[[rules]]
rate = "{rate}"
fixed = "{fixed}"
"""


@pytest.mark.parametrize(
    ("currency", "basket", "fixed"),
    [
        ("VND", (("250000", "debit"), ("800000", "credit")), "1000"),
        ("JPY", (("2500", "debit"), ("8000", "credit")), "10"),
        ("KWD", (("25.000", "debit"), ("80.000", "credit")), "0.100"),
    ],
)
def test_fee_diff_impact_in_the_tables_currency(
    loaded: Engine,
    db_url: str,
    tmp_path: Path,
    currency: str,
    basket: tuple[tuple[str, str], ...],
    fixed: str,
) -> None:
    effective = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0).isoformat()
    policy = FeePolicy(basket=basket)
    with loaded.begin() as conn:  # a table applies to merchants paid in its currency
        country = {"VND": "VN", "JPY": "JP", "KWD": "KW"}[currency]
        conn.execute(update(MERCHANTS).values(country=country))
    versions = []
    for i, rate in enumerate(("1%", "2%")):
        path = tmp_path / f"{i}.toml"
        path.write_text(_TABLE.format(currency=currency, effective=effective, rate=rate,
                                      fixed=fixed))  # fmt: skip
        versions.append(publish(loaded, path, actor="t", policy=policy).version)
    with loaded.connect() as conn:
        d = fee_diff(conn, *versions, policy)
    table = parse_fee_toml(path.read_text()).table(1)
    amounts = [parse_minor(a, currency) for a, _ in basket]
    before = sum(a // 100 for a in amounts) + 2 * parse_minor(fixed, currency)
    after = sum(a * 2 // 100 for a in amounts) + 2 * parse_minor(fixed, currency)
    assert table.currency == numeric_code(currency)
    assert {(m.before, m.after) for m in d.merchants} == {(before, after)}
    policy_file = tmp_path / "policy.toml"
    lines = ", ".join(f'["{a}", "{c}"]' for a, c in basket)
    policy_file.write_text(f"[fees]\nbasket = [{lines}]\n")
    res = CliRunner().invoke(app, ["--db", db_url, "--policy", str(policy_file), "fees", "diff",
                                   *map(str, versions), "-f", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    row = doc["merchants"][0]
    assert (row["before"], row["after"], row["change"]) == (
        format_minor(before, currency),
        format_minor(after, currency),
        format_minor(after - before, currency),
    )
    assert doc["basket"].startswith(f"{basket[0][0]} debit")
    rules = " ".join(r["new"] for r in doc["rules"])
    assert f"+ {fixed}" in rules


# -- the precision is CLDR's, on the wire too ------------------------------------------------


def _documented_choice() -> dict[str, tuple[int, int]]:
    """The table of fleet.core.money's docstring: code → (CLDR digits, ISO 4217 digits)."""
    import fleet.core.money  # noqa: PLC0415

    rows = re.findall(r"^([A-Z]{3})\s+(\d)\s+(\d)\s", fleet.core.money.__doc__ or "", re.M)
    return {code: (int(cldr), int(iso)) for code, cldr, iso in rows}


def test_the_documented_cldr_digits_are_what_babel_gives() -> None:
    documented = _documented_choice()
    assert len(documented) == 15 and documented["IQD"] == (0, 3) and documented["HUF"] == (0, 2)
    for code, (cldr, iso) in documented.items():
        assert precision(code) == cldr != iso, code  # a Babel upgrade that moves one shows here


@pytest.mark.parametrize("currency", ["HUF", "IDR", "COP", "IQD", "JPY", "KWD", "EUR"])
def test_a_fee_tables_amounts_are_in_the_precision_posfleet_shows(currency: str) -> None:
    exponent = precision(currency)
    fixed, low, high = (format_minor(n, currency) for n in (3, 10, 2000))
    text = (
        f'currency = "{currency}"\neffective = 2027-01-01T00:00:00+01:00\n[[rules]]\n'
        f'rate = "1%"\nfixed = "{fixed}"\nmin = "{low}"\nmax = "{high}"\n'
    )
    parsed = parse_fee_toml(text)
    wire = FeeTable.from_bytes(parsed.table(1).to_bytes())
    rule = wire.rules[0]
    assert (rule.fixed, rule.min_fee, rule.max_fee) == (3, 10, 2000)  # minor units as shown
    assert describe_rule(rule, wire) == f"any all MCC: 1.00% + {fixed}, min {low}, max {high}"
    # one more decimal than posfleet shows is refused, not scaled
    finer = f"{low}{'.' if exponent == 0 else ''}5"
    with pytest.raises(FeeFileError, match=f"more than {exponent} decimals for {currency}"):
        parse_fee_toml(text.replace(f'min = "{low}"', f'min = "{finer}"'))
    # and the fee of a sale is in those units: 1% of 1000.00 (or 1000) plus fixed
    sale = parse_minor("1000", currency)
    assert compute_fee(wire, sale, CardType.CREDIT, 5411) == min(max(sale // 100 + 3, 10), 2000)


# -- through the notices --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "old", "new", "texts"),
    [
        ("VND", 4_000, 4_500, ("4000 VND", "4500 VND", "+500 VND")),
        ("JPY", 400, 450, ("400 JPY", "450 JPY", "+50 JPY")),
        ("KWD", 4_000, 4_500, ("4.000 KWD", "4.500 KWD", "+0.500 KWD")),
    ],
)
def test_basket_impact_in_the_notice_text(
    currency: str, old: int, new: int, texts: tuple[str, ...]
) -> None:
    payload = FeeChange(
        version=2, old_version=1, effective=datetime(2027, 1, 1, tzinfo=UTC),
        currency=currency, basket_old=old, basket_new=new, direction="up", reason_code="fee_review",
        sales=2, basket_total=1_050_000,
    )  # fmt: skip
    item = NoticeItem("fee_change", payload.to_json())
    email = render([item], channel="email", language="en", zone="Asia/Ho_Chi_Minh",
                   merchant="M", code="ABCDE-FGHJK", policy=NoticePolicy())  # fmt: skip
    for text in texts:
        assert text in email.body, email.body
    assert f"totalling {format_minor(1_050_000, currency)} {currency}" in email.body
    sms = render([item], channel="sms", language="zh-CN", zone="Asia/Ho_Chi_Minh",
                 merchant="M", code="ABCDE-FGHJK", policy=NoticePolicy())  # fmt: skip
    assert texts[0] in sms.body and texts[1] in sms.body


@pytest.mark.parametrize(("currency", "price", "per_segment"),
                         [("VND", "500", 500), ("JPY", "5", 5), ("KWD", "0.015", 15)])  # fmt: skip
def test_sms_cost_in_the_sms_currency(
    loaded: Engine, currency: str, price: str, per_segment: int
) -> None:
    with writer(loaded).begin() as conn:
        mid = (
            conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.phone.is_not(None)))
            .scalars()
            .first()
        )
        assert mid is not None
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == mid).values(channels=["sms"],
                                                                          opt_out=[]))  # fmt: skip
        notice = SwapNotice("swap_planned", 1, "PS1", None, "PF-300", "T1",
                            datetime(2027, 1, 5).date(), "wear")  # fmt: skip
        queue(conn, notice, merchant_id=mid, ref="swap:1",
              at=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    policy = NoticePolicy(sms_price=price, sms_currency=currency, quiet=(0, 0), digest_s=0)
    result = compose(loaded, policy)
    assert result.messages == 1
    with loaded.connect() as conn:
        message = conn.execute(select(MESSAGES)).one()
    assert message.channel == "sms" and message.cost == message.segments * per_segment
    assert message.cost_currency == currency
    shown = f"{format_minor(message.cost, currency)} {currency}"
    assert list_notices(loaded, merchant=mid)[0]["cost"] == shown
    run = DispatchResult(composed=result)
    assert run.summary(currency, {})["sms_cost"] == shown
    assert run.describe(currency).endswith(f"segments, {shown}")
