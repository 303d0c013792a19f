"""One device session for provisioning (one link, one sign-on), and targets derived in
SQL: a day sheet does not scan the fleet per row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

import protocols.link
import protocols.session
from fleet.core.errors import NotFoundError
from fleet.core.models import TERMINALS
from fleet.core.policy import FeePolicy, Policy
from fleet.device import DeviceSession, IdentityError, KeyRing, resolve
from fleet.fees import publish, target_of, targets
from fleet.inventory import get_terminal
from fleet.swaps import day_sheet, provision, swap
from protocols.mac import generate_master_key_file
from tests.fleet.device.test_sync import merchant_mcc, possim

TABLE = """name = "base"
currency = "CNY"
effective = 2026-01-01T00:00:00+08:00
[[rules]]
rate = "0.60%"
"""


def _pick(engine: Engine, status: str, n: int) -> list[str]:
    """Terminals in ``status``; deployed ones of merchants in China (the CNY table's)."""
    from fleet.core.models import MERCHANTS  # noqa: PLC0415

    query = select(TERMINALS.c.serial).where(TERMINALS.c.status == status)
    if status == "deployed":
        query = query.join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id).where(
            TERMINALS.c.tid.is_not(None), MERCHANTS.c.country == "CN"
        )
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(TERMINALS.c.serial).limit(n)).scalars())


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", count)
    return seen


def test_a_day_sheet_does_not_scan_the_fleet_per_row(loaded: Engine, tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    publish(loaded, tmp_path / "t.toml", actor="t", policy=FeePolicy())
    old, new = _pick(loaded, "deployed", 12), _pick(loaded, "in_stock", 12)
    rows = min(len(old), len(new))
    assert rows >= 8
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "old_serial,new_serial,reason\n"
        + "".join(f"{o},{n},worn out\n" for o, n in zip(old[:rows], new[:rows], strict=True))
    )
    seen = _statements(loaded)
    done = day_sheet(loaded, sheet, actor="t", policy=Policy())
    assert len(done) == rows and all(r.table == 1 for r, _ in done)
    merchant_reads = [s for s in seen if " from merchant" in s and "select" in s]
    unfiltered = [s for s in merchant_reads if " where " not in s]
    assert unfiltered == [], unfiltered[:2]  # no statement reads every merchant
    assert sum(" from fee_table" in s for s in seen) == 1  # the tables, once per sheet
    assert len(seen) <= 20 * rows  # a bounded number of statements per row


def test_targets_in_sql_agree_with_the_group_rules(loaded: Engine, tmp_path: Path) -> None:
    (tmp_path / "all.toml").write_text(TABLE)
    (tmp_path / "vip.toml").write_text(TABLE + '[applies]\ntags = ["vip"]\nregions = ["east"]\n')
    publish(loaded, tmp_path / "all.toml", actor="t", policy=FeePolicy())
    publish(loaded, tmp_path / "vip.toml", actor="t", policy=FeePolicy())
    from fleet.core.models import MERCHANTS  # noqa: PLC0415

    with loaded.connect() as conn:
        found = targets(conn)
        merchants = conn.execute(
            select(MERCHANTS.c.id, MERCHANTS.c.region, MERCHANTS.c.tags, MERCHANTS.c.country)
        )
        expected = {  # CNY tables: merchants in China (or of no known country) only
            m.id: 2 if m.region == "east" and "vip" in (m.tags or []) else 1
            for m in merchants
            if m.country in (None, "CN")
        }
        assert found == expected and set(found.values()) == {1, 2}
        some = next(iter(expected))
        assert target_of(conn, some) == expected[some]
        assert target_of(conn, "NO-SUCH-MERCHANT") is None


def test_provisioning_uses_one_link_and_one_sign_on(
    loaded: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.toml").write_text(TABLE)
    publish(loaded, tmp_path / "t.toml", actor="t", policy=FeePolicy())
    old, new = _pick(loaded, "deployed", 1)[0], _pick(loaded, "in_stock", 1)[0]
    result = swap(loaded, old, new, reason="worn out", actor="t", policy=Policy())
    assert result.table == 1
    with loaded.connect() as conn:
        row = get_terminal(conn, new)
    assert row is not None
    key_file = tmp_path / "master.key"
    generate_master_key_file(key_file)
    links, sign_ons = [], []
    real_link, real_sign_on = protocols.link.Link.__init__, protocols.session.HostSession.sign_on

    def link(self: Any, *args: Any, **kwargs: Any) -> None:
        links.append(args[0])
        real_link(self, *args, **kwargs)

    def sign_on(self: Any) -> Any:
        sign_ons.append(self.tid)
        return real_sign_on(self)

    monkeypatch.setattr(protocols.link.Link, "__init__", link)
    monkeypatch.setattr(protocols.session.HostSession, "sign_on", sign_on)
    with possim(
        key_file, tmp_path / "sim", serial=new, tid=str(row["tid"]), mid=str(row["mid"]),
        model=str(row["model"]), firmware=str(row["firmware"]), mcc=merchant_mcc(loaded, row),
    ) as url:  # fmt: skip
        outcome = provision(
            loaded, result, url, keys=KeyRing.read([key_file]), policy=Policy(), actor="t"
        )
        assert outcome.startswith("ok: synced; table 1 committed, verified"), outcome
        assert (len(links), len(sign_ons)) == (1, 1)
        with loaded.connect() as conn:
            ref = resolve(conn, new, url)
            after = get_terminal(conn, new)
        assert after is not None and after["link"] == url
        assert 1 in (after["active_version"], after["pending_version"])
        # the session checks who answers: the inventory's MID must match
        bad = ref.__class__(ref.serial, ref.tid, "999999999999999", ref.url, ref.row)
        with pytest.raises(IdentityError, match="reports MID"), DeviceSession(bad):
            pass
    with loaded.connect() as conn, pytest.raises(NotFoundError):
        resolve(conn, "PS-NOPE")
