"""The inventory's reads (what the CLI used to query itself), on SQLite and PostgreSQL, and
the commands that print them."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.errors import NotFoundError
from fleet.core.models import MERCHANTS, TerminalModel
from fleet.inventory import (
    get_merchant,
    iter_terminals,
    linked_serials,
    list_catalog,
    list_merchants,
    set_links,
    terminal_detail,
    update_terminal,
)
from fleet.inventory.browse import TerminalFilter, terminal_page

runner = CliRunner()


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_catalog_listing(loaded: Engine) -> None:
    models = list_catalog(loaded)
    assert [m.model.code for m in models] == sorted(m.model.code for m in models)
    assert all(isinstance(m.model, TerminalModel) for m in models)
    terminals = Counter(t["model"] for t in iter_terminals(loaded))
    assert {m.model.code: m.terminals for m in models} == {
        m.model.code: terminals.get(m.model.code, 0) for m in models
    }
    for info in models:
        versions = [f.version for f in info.firmware]
        assert versions == sorted(versions)
        assert all(a.model == info.model.code and a.versions >= 1 for a in info.advisories)
    assert any(a.fixed_in is None for m in models for a in m.advisories)

    res = runner.invoke(app, ["--db", _url(loaded), "catalog", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    first, info = doc[0], models[0]
    assert first["code"] == info.model.code and first["terminals"] == info.terminals
    assert first["capabilities"] == info.model.capabilities()
    assert list(first)[:3] == ["code", "vendor", "name"]
    assert len(first["advisories"]) == len(info.advisories)


def test_merchant_listing_and_page(loaded: Engine) -> None:
    every = list_merchants(loaded)
    assert [m.merchant.id for m in every] == sorted(m.merchant.id for m in every)
    live = Counter(
        t["merchant_id"] for t in iter_terminals(loaded) if t["status"] in ("deployed", "faulty")
    )
    assert {m.merchant.id: m.terminals for m in every} == {
        m.merchant.id: live.get(m.merchant.id, 0) for m in every
    }
    mcc = every[0].merchant.mcc
    assert {m.merchant.mcc for m in list_merchants(loaded, mcc=mcc)} == {mcc}
    assert len(list_merchants(loaded, limit=3)) == 3
    region = every[0].merchant.region
    assert all(m.merchant.region == region for m in list_merchants(loaded, region=region))

    page = get_merchant(loaded, every[0].merchant.id)
    assert page.merchant.id == every[0].merchant.id
    assert [t.serial for t in page.terminals] == sorted(
        t["serial"] for t in iter_terminals(loaded, merchant_id=page.merchant.id)
    )
    with pytest.raises(NotFoundError) as info:
        get_merchant(loaded, "M-NONE")
    assert info.value.where == "M-NONE"

    res = runner.invoke(
        app, ["--db", _url(loaded), "merchants", "show", page.merchant.id, "-f", "json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["id"] == page.merchant.id and len(doc["terminals"]) == len(page.terminals)
    res = runner.invoke(
        app, ["--db", _url(loaded), "merchants", "list", "-f", "csv", "--limit", "2"]
    )
    lines = res.stdout.splitlines()
    assert lines[0].endswith(",opt_out,terminals") and len(lines) == 3


def test_terminal_page_with_history(loaded: Engine) -> None:
    serial = next(iter_terminals(loaded, status="deployed", limit=1))["serial"]
    update_terminal(loaded, serial, {"status": "faulty"}, actor="ana", reason="dropped")
    found = terminal_detail(loaded, serial)
    assert found.terminal["status"] == "faulty"
    assert found.model is not None and found.model.code == found.terminal["model"]
    assert [(a.actor, a.action, a.reason) for a in found.history] == [("ana", "update", "dropped")]
    with pytest.raises(NotFoundError):
        terminal_detail(loaded, "PS-NONE")
    res = runner.invoke(app, ["--db", _url(loaded), "terminals", "show", serial, "-f", "json"])
    doc = json.loads(res.stdout)
    assert doc["status"] == "faulty" and doc["model_info"]["code"] == found.terminal["model"]
    assert json.loads(doc["history"][0]["details"]) == {"status": ["deployed", "faulty"]}


def test_linked_serials_are_the_reachable_live_terminals(loaded: Engine) -> None:
    live = next(iter_terminals(loaded, status="deployed", limit=1))["serial"]
    stock = next(iter_terminals(loaded, status="in_stock", limit=1))["serial"]
    assert linked_serials(loaded) == []
    set_links(loaded, {live: "socket://127.0.0.1:9", stock: "socket://127.0.0.1:9"}, actor="t")
    assert linked_serials(loaded) == [live]


def test_terminal_pages_match_every_filter_shape(loaded: Engine) -> None:
    every = list(iter_terminals(loaded))
    with loaded.connect() as conn:
        regions = dict(conn.execute(select(MERCHANTS.c.id, MERCHANTS.c.region)).all())
    one = next(t for t in every if t["merchant_id"] and t["tid"])
    prefix = one["serial"][:-1]
    wanted = {
        TerminalFilter(): every,
        TerminalFilter(status="deployed", model=one["model"]): [
            t for t in every if t["status"] == "deployed" and t["model"] == one["model"]
        ],
        TerminalFilter(firmware=one["firmware"], region=regions[one["merchant_id"]]): [
            t for t in every
            if t["firmware"] == one["firmware"]
            and regions.get(t["merchant_id"]) == regions[one["merchant_id"]]
        ],
        TerminalFilter(merchant=one["merchant_id"]): [
            t for t in every if t["merchant_id"] == one["merchant_id"]
        ],
        TerminalFilter(q=f" {prefix} "): [t for t in every if t["serial"].startswith(prefix)],
        TerminalFilter(q=one["tid"]): [t for t in every if one["tid"] in (t["tid"], t["serial"])],
        TerminalFilter(q=prefix[:2] + "%"): [],  # LIKE's wildcards are literal text
        TerminalFilter(q=prefix[:-1] + "_"): [],
    }  # fmt: skip
    for flt, expected in wanted.items():
        seen: list[str] = []
        after = None
        while True:  # page by page: the pages join up, none twice, none missed
            found = terminal_page(loaded, flt, after=after, limit=7)
            seen += [t["serial"] for t in found.items]
            if found.next_after is None:
                break
            after = found.next_after
        assert seen == [t["serial"] for t in expected], flt
    first = terminal_page(loaded, TerminalFilter(merchant=one["merchant_id"]), limit=1).items[0]
    assert first["merchant"] is not None  # the merchant's name, joined
