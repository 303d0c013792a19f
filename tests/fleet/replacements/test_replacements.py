"""Every replacement rule, its priority and date, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.errors import ConflictError
from fleet.core.models import TERMINALS
from fleet.core.money import format_minor
from fleet.core.policy import Policy, PolicyError, ReplacementPolicy
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.replacements import Forecast, Replacement, assess, flag, priority, quarter
from fleet.replacements.query import catalog_statement, flag_statement
from fleet.replacements.rules import Replacer

AS_OF = date(2026, 11, 1)  # horizon 180 d → 2027-04-30; urgent 90 d → 2027-01-30

CATALOG = """
[[models]]
code = "GOOD"
vendor = "V"
end_of_support = 2035-12-31
pts_version = "6.x"
pts_expires_on = 2034-04-30
chip = true
contactless = true
unit_price = "300.00"

[[models]]
code = "OLDEOS"
vendor = "V"
end_of_support = 2026-06-30
pts_expires_on = 2034-04-30
chip = true
contactless = true
unit_price = "100.00"
successor = "GOOD"

[[models]]
code = "SOONEOS"
vendor = "V"
end_of_support = 2027-03-31
pts_expires_on = 2034-04-30
chip = true
contactless = true
unit_price = "120.00"

[[models]]
code = "PTSX"
vendor = "V"
end_of_support = 2035-12-31
pts_version = "4.x"
pts_expires_on = 2026-01-31
chip = true
contactless = true
unit_price = "130.00"

[[models]]
code = "PTSSOON"
vendor = "V"
end_of_support = 2035-12-31
pts_version = "5.x"
pts_expires_on = 2027-01-15
chip = true
contactless = true
unit_price = "140.00"

[[models]]
code = "NOCTLS"
vendor = "V"
end_of_support = 2035-12-31
pts_expires_on = 2034-04-30
chip = true
unit_price = "150.00"
currency = "USD"

[[firmware]]
model = "GOOD"
version = "1.0"
[[firmware]]
model = "GOOD"
version = "0.9"
end_of_support = 2026-01-01
[[firmware]]
model = "GOOD"
version = "0.95"
end_of_support = 2027-02-01
[[firmware]]
model = "GOOD"
version = "1.1"
[[firmware]]
model = "GOOD"
version = "1.2"
[[firmware]]
model = "GOOD"
version = "1.3"
[[firmware]]
model = "OLDEOS"
version = "1.0"
[[firmware]]
model = "SOONEOS"
version = "1.0"
[[firmware]]
model = "PTSX"
version = "1.0"
[[firmware]]
model = "PTSSOON"
version = "1.0"
[[firmware]]
model = "NOCTLS"
version = "1.0"

[[advisories]]
id = "ADV-OPEN"
model = "GOOD"
affects = ["1.1"]
[[advisories]]
id = "ADV-OPEN-2"
model = "GOOD"
affects = ["1.1"]
[[advisories]]
id = "ADV-FIXED"
model = "GOOD"
affects = ["1.2"]
fixed_in = "1.3"
"""

# serial, model, firmware, made, faults, status
FLEET = [
    ("T-OK", "GOOD", "1.0", "2024-01-01", 0, "deployed"),
    ("T-AGE", "GOOD", "1.0", "2019-06-01", 0, "deployed"),
    ("T-AGESOON", "GOOD", "1.0", "2020-02-01", 0, "deployed"),
    ("T-AGELATER", "GOOD", "1.0", "2020-06-01", 0, "deployed"),
    ("T-EOS", "OLDEOS", "1.0", "2024-01-01", 0, "deployed"),
    ("T-EOSSOON", "SOONEOS", "1.0", "2024-01-01", 0, "faulty"),
    ("T-PTS", "PTSX", "1.0", "2024-01-01", 0, "deployed"),
    ("T-PTSSOON", "PTSSOON", "1.0", "2024-01-01", 0, "deployed"),
    ("T-FW", "GOOD", "0.9", "2024-01-01", 0, "deployed"),
    ("T-FWSOON", "GOOD", "0.95", "2024-01-01", 0, "deployed"),
    ("T-ADV", "GOOD", "1.1", "2024-01-01", 0, "deployed"),
    ("T-ADVFIXED", "GOOD", "1.2", "2024-01-01", 0, "deployed"),
    ("T-CAP", "NOCTLS", "1.0", "2024-01-01", 0, "deployed"),
    ("T-FAULTS", "GOOD", "1.0", "2024-01-01", 5, "deployed"),
    ("T-FAULTS4", "GOOD", "1.0", "2024-01-01", 4, "deployed"),
    ("T-MULTI", "OLDEOS", "1.0", "2018-01-01", 9, "deployed"),
    ("T-RETIRED", "OLDEOS", "1.0", "2018-01-01", 9, "retired"),
    ("T-SWAPPED", "OLDEOS", "1.0", "2018-01-01", 9, "swapped_out"),
    ("T-STOCK", "OLDEOS", "1.0", "2018-01-01", 0, "in_stock"),
]


@pytest.fixture
def fleet(engine: Engine, tmp_path: Path) -> Engine:
    (tmp_path / "catalog.toml").write_text(CATALOG)
    (tmp_path / "merchants.csv").write_text("id,name,mcc\nM1,Shop,5411\n")
    lines = [
        "serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,status,link,"
        "fault_count"
    ]
    for i, (serial, model, fw, made, faults, status) in enumerate(FLEET):
        if status == "in_stock":
            lines.append(f"{serial},{model},{fw},,,,{made},,{status},,{faults}")
        else:
            lines.append(
                f"{serial},{model},{fw},T{i:07d},M{i:014d},M1,{made},2024-06-01,{status},,{faults}"
            )
    (tmp_path / "terminals.csv").write_text("\n".join(lines) + "\n")
    import_catalog(engine, tmp_path / "catalog.toml", actor="t")
    import_merchants(engine, tmp_path / "merchants.csv", actor="t")
    import_terminals(engine, tmp_path / "terminals.csv", actor="t")
    return engine


def _by_serial(
    engine: Engine, policy: ReplacementPolicy | None = None, **kw: object
) -> dict[str, Replacement]:
    return {r.serial: r for r in flag(engine, policy or ReplacementPolicy(), AS_OF, **kw)}  # type: ignore[arg-type]


def _codes(r: Replacement) -> list[str]:
    return [x.code for x in r.reasons]


def test_each_rule(fleet: Engine) -> None:
    found = _by_serial(fleet)
    not_due = {"T-OK", "T-AGELATER", "T-ADVFIXED", "T-FAULTS4", "T-RETIRED", "T-SWAPPED", "T-STOCK"}
    assert not_due.isdisjoint(found)
    expect = {
        # serial: (reasons, priority, replace_by)
        "T-AGE": (["age"], 2, AS_OF),
        "T-AGESOON": (["age"], 3, date(2027, 2, 1)),
        "T-EOS": (["model-eos"], 1, AS_OF),
        "T-EOSSOON": (["model-eos"], 3, date(2027, 3, 31)),
        "T-PTS": (["pts"], 1, AS_OF),
        "T-PTSSOON": (["pts"], 2, date(2027, 1, 15)),
        "T-FW": (["firmware-eos"], 1, AS_OF),
        "T-FWSOON": (["firmware-eos"], 3, date(2027, 2, 1)),
        "T-ADV": (["advisory"], 1, AS_OF),
        "T-CAP": (["capability"], 3, date(2027, 4, 30)),
        "T-FAULTS": (["faults"], 2, AS_OF),
        "T-MULTI": (["age", "model-eos", "faults"], 1, AS_OF),
    }
    assert set(found) == set(expect)
    for serial, (codes, rank, replace_by) in expect.items():
        r = found[serial]
        assert (_codes(r), r.priority, r.replace_by) == (codes, rank, replace_by), serial


def test_reason_wording(fleet: Engine) -> None:
    found = _by_serial(fleet)
    assert found["T-AGE"].reasons[0].detail == "over the 7-year limit since 2026-06-01"
    assert found["T-AGESOON"].reasons[0].detail == "reaches the 7-year limit on 2027-02-01"
    assert found["T-EOS"].reasons[0].detail == "model OLDEOS unsupported since 2026-06-30"
    assert found["T-PTS"].reasons[0].detail == "PCI PTS 4.x approval expired 2026-01-31"
    assert found["T-PTSSOON"].reasons[0].detail == "PCI PTS 5.x approval expires 2027-01-15"
    assert found["T-FW"].reasons[0].detail == "firmware 0.9 unsupported since 2026-01-01"
    assert (
        found["T-ADV"].reasons[0].detail
        == "firmware 1.1: open ADV-OPEN, ADV-OPEN-2, no fix for GOOD"
    )
    assert found["T-CAP"].reasons[0].detail == "model NOCTLS lacks contactless"
    assert found["T-FAULTS"].reasons[0].detail == "5 faults (threshold 5)"
    assert found["T-EOS"].reasons[0].in_effect and not found["T-EOSSOON"].reasons[0].in_effect


def test_policy_changes_the_answer(fleet: Engine) -> None:
    strict = ReplacementPolicy(
        max_age_years=3,
        require=("chip", "contactless", "qr"),
        fault_threshold=4,
        statuses=("deployed", "faulty", "in_stock"),
    )
    found = _by_serial(fleet, strict)
    assert "T-FAULTS4" in found and "faults" in _codes(found["T-FAULTS4"])
    assert "T-STOCK" in found
    assert found["T-CAP"].reasons[-1].detail == "model NOCTLS lacks contactless, qr"
    assert "age" in _codes(found["T-OK"])  # 2024-01-01 + 3 y is inside the horizon
    lax = ReplacementPolicy(require=(), statuses=("deployed",))
    found = _by_serial(fleet, lax)
    assert "T-CAP" not in found and "T-EOSSOON" not in found  # faulty is not considered


def test_horizon_override(fleet: Engine) -> None:
    found = _by_serial(fleet, horizon_days=0)
    for later in ("T-AGESOON", "T-EOSSOON", "T-PTSSOON", "T-FWSOON"):
        assert later not in found
    assert found["T-CAP"].replace_by == AS_OF
    wide = _by_serial(fleet, horizon_days=400)
    assert "T-AGELATER" in wide


def test_forecast_uses_successor_price_per_quarter(fleet: Engine) -> None:
    forecast = Forecast()
    found = list(flag(fleet, ReplacementPolicy(), AS_OF))
    for r in found:
        forecast.add(r)
    assert forecast.total_units == len(found) == 12
    eos = next(r for r in found if r.serial == "T-EOS")
    assert (eos.replacement_model, eos.cost, eos.currency) == ("GOOD", 30000, "EUR")
    rows = {(row["quarter"], row["currency"]): row for row in forecast.rows()}
    # AGE EOS PTS FW ADV FAULTS MULTI; EOS and MULTI are OLDEOS, costed as their successor
    assert rows[("2026-Q4", "EUR")]["units"] == 7
    assert rows[("2026-Q4", "EUR")]["cost_minor"] == 30000 * 6 + 13000
    assert rows[("2027-Q2", "USD")] == {
        "quarter": "2027-Q2",
        "units": 1,
        "cost": "150.00",
        "cost_minor": 15000,
        "currency": "USD",
    }
    assert forecast.total_cost()["USD"] == 15000


def test_quarter_and_money() -> None:
    assert quarter(date(2027, 1, 1)) == "2027-Q1"
    assert quarter(date(2027, 12, 31)) == "2027-Q4"
    assert format_minor(5, "EUR") == "0.05"
    assert format_minor(1234, "KWD") == "1.234"


def test_policy_file(tmp_path: Path) -> None:
    p = Policy.from_toml(
        '[replacement]\nhorizon = "26w"\nurgent_within = "30d"\nstatuses = ["deployed"]'
    )
    assert (p.replacement.horizon_days, p.replacement.urgent_days) == (182, 30)
    assert Policy.from_toml(p.to_toml()).replacement == p.replacement
    for bad, needle in [
        ("[replacement]\nrequire = ['wifi']", "unknown capability 'wifi'"),
        ("[replacement]\nstatuses = ['retired']", "replacement.statuses"),
        ("[replacement]\nmax_age_years = '7'", "replacement.max_age_years: must be a whole number"),
        ("[replacement]\nhorizon = 'soon'", "replacement.horizon: not a duration"),
        ("[replacement]\nhorizon_days = 3", "replacement.horizon_days: unknown key"),
        ("[fees2]\nx = 1", "[fees2]: unknown section"),
        ("[replacement\n", "not TOML"),
    ]:
        with pytest.raises(PolicyError) as info:
            Policy.from_toml(bad, "p.toml")
        assert needle in str(info.value), (bad, str(info.value))
        assert str(info.value).startswith("p.toml")
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match=r"nope\.toml"):
        Policy.load(missing)


def test_cli_replacements(fleet: Engine, db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--db", db_url]
    res = runner.invoke(app, [*base, "replacements", "--as-of", "2026-11-01", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["terminals"] == 12
    assert doc["summary"]["by_priority"] == {"P1": 5, "P2": 3, "P3": 4}
    assert [t["priority"] for t in doc["terminals"]] == sorted(
        t["priority"] for t in doc["terminals"]
    )
    assert sum(f["units"] for f in doc["forecast"]) == 12

    out = tmp_path / "r.csv"
    res = runner.invoke(
        app, [*base, "replacements", "--as-of", "2026-11-01", "--format", "csv", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith(
        "serial,model,firmware,merchant_id,status,priority,replace_by,reasons"
    )
    assert len(lines) == 13
    multi = next(line for line in lines if line.startswith("T-MULTI,"))
    assert ",P1,2026-11-01,age;model-eos;faults," in multi

    res = runner.invoke(
        app, [*base, "replacements", "--as-of", "2026-11-01", "--forecast", "--format", "csv"]
    )
    assert res.stdout.splitlines()[0] == "quarter,units,cost,currency"

    res = runner.invoke(app, [*base, "replacements", "--as-of", "2026-11-01", "--horizon", "0d"])
    assert res.exit_code == 0 and "8 terminals to replace" in res.stdout

    policy = tmp_path / "strict.toml"
    policy.write_text("[replacement]\nrequire = []\nstatuses = ['deployed']\n")
    res = runner.invoke(
        app,
        [
            *base,
            "--policy",
            str(policy),
            "replacements",
            "--as-of",
            "2026-11-01",
            "--format",
            "json",
        ],
    )
    assert json.loads(res.stdout)["summary"]["terminals"] == 10

    for bad in (["--as-of", "2026-13-01"], ["--horizon", "soon"], ["--format", "xml"]):
        res = runner.invoke(app, [*base, "replacements", *bad])
        assert res.exit_code == 2, (bad, res.output)
    policy.write_text("[replacement]\nrequire = ['wifi']\n")
    res = runner.invoke(app, [*base, "--policy", str(policy), "replacements"])
    assert res.exit_code == 2 and res.stderr == (
        f"error: {policy}: replacement.require: unknown capability 'wifi' "
        "(want chip, contactless, magstripe, qr, pin_pad)\n"
    )


def test_cli_policy_show_and_init(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["policy", "show"])
    assert res.exit_code == 0
    assert "max_age_years = 7" in res.stdout and 'horizon = "180d"' in res.stdout
    target = tmp_path / "posfleet.toml"
    assert runner.invoke(app, ["policy", "init", str(target)]).exit_code == 0
    assert Policy.load(target).replacement == ReplacementPolicy()
    assert runner.invoke(app, ["policy", "init", str(target)]).exit_code == 2
    # without a path it writes where the root --policy (or POSFLEET_POLICY) points
    chosen = tmp_path / "chosen.toml"
    assert runner.invoke(app, ["--policy", str(chosen), "policy", "init"]).exit_code == 0
    assert dataclasses.replace(Policy.load(chosen), source="defaults") == Policy()


def test_priority_rule() -> None:
    urgent_end = date(2027, 1, 30)
    later, soon = date(2027, 3, 1), date(2027, 1, 30)
    assert priority(security=True, pressing=False, replace_by=later, urgent_end=urgent_end) == 1
    assert priority(security=False, pressing=True, replace_by=later, urgent_end=urgent_end) == 2
    assert priority(security=False, pressing=False, replace_by=soon, urgent_end=urgent_end) == 2
    assert priority(security=False, pressing=False, replace_by=later, urgent_end=urgent_end) == 3


def test_assessment_ranks_counts_and_forecasts(fleet: Engine) -> None:
    found = assess(fleet, ReplacementPolicy(), AS_OF)
    flagged = list(flag(fleet, ReplacementPolicy(), AS_OF))
    assert sorted(r.serial for r in found.replacements) == sorted(r.serial for r in flagged)
    assert found.replacements == sorted(found.replacements, key=Replacement.sort_key)
    assert dict(found.by_priority) == {1: 5, 2: 3, 3: 4}
    assert sum(found.reasons().values()) == sum(len(r.reasons) for r in flagged)
    assert found.forecast.total_units == len(flagged) == 12
    doc = found.as_dict()
    assert doc["horizon_days"] == 180 and doc["summary"]["terminals"] == 12
    assert doc["summary"]["cost"] == {
        c: format_minor(v, c) for c, v in found.forecast.total_cost().items()
    }
    assert assess(fleet, ReplacementPolicy(), AS_OF, horizon_days=0).horizon_days == 0


def test_cli_json_is_the_assessment(fleet: Engine) -> None:
    url = fleet.url.render_as_string(hide_password=False)
    res = CliRunner().invoke(
        app, ["--db", url, "replacements", "--as-of", "2026-11-01", "-f", "json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == json.loads(
        json.dumps(assess(fleet, ReplacementPolicy(), AS_OF).as_dict())
    )
    res = CliRunner().invoke(
        app, ["--db", url, "replacements", "--as-of", "2026-11-01", "-f", "csv"]
    )
    rows = res.stdout.splitlines()
    assert rows[0] == (
        "serial,model,firmware,merchant_id,status,priority,replace_by,reasons,details,"
        "replacement_model,cost,currency"
    )
    assert len(rows) == 13 and rows[1].split(",")[5] == "P1"


def test_catalog_part_read_once_per_model_and_firmware(fleet: Engine) -> None:
    """The flagging query sends no catalog column; the catalog statement has one row per
    (model, firmware) with the catalog rules, and a pair missing from it (the catalog
    changed between the two statements) is a typed error, not a wrong reason."""
    policy = ReplacementPolicy()
    horizon_end = date(2027, 4, 30)
    with fleet.connect() as conn:
        result = conn.execute(flag_statement(policy, horizon_end).order_by(TERMINALS.c.serial))
        columns, rows = list(result.keys()), result.all()
        catalog = {
            (r.model, r.firmware): r for r in conn.execute(catalog_statement(policy, horizon_end))
        }
    assert "model_eos" not in columns and "r_model_eos" not in columns
    assert "successor" not in columns and "reader_rated" not in columns
    assert {(r.model, r.firmware) for r in rows} <= set(catalog)
    assert catalog[("OLDEOS", "1.0")].r_model_eos
    words = Replacer(policy, AS_OF, horizon_end, date(2027, 1, 30), {}, columns, catalog)
    assert words(rows[0]) is not None
    stale = Replacer(policy, AS_OF, horizon_end, date(2027, 1, 30), {}, columns, {})
    with pytest.raises(ConflictError, match=r"not in the catalog read for this flagging"):
        stale(rows[0])
