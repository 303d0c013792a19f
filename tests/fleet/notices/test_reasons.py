"""Reasons in the merchant's language: the catalogue of reason codes, operator free text
kept out of every SMS and email (issue 15, item 5)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import AUDIT, MERCHANTS, MESSAGES, NOTICES, SWAPS, TERMINALS, now
from fleet.core.policy import NoticePolicy, Policy
from fleet.notices.compose import compose
from fleet.notices.content import forbidden
from fleet.notices.reasons import (
    CATALOGUE,
    FEE_CODES,
    SWAP_CODES,
    ReasonCodeError,
    check_catalogue,
    default_swap_code,
    reason_code,
)
from fleet.notices.text import (
    CHANNELS,
    KINDS,
    LANGUAGES,
    NoticeItem,
    check_templates,
    render,
    sample_items,
)
from fleet.replacements import flag
from fleet.swaps import plan, swap

runner = CliRunner()
OPEN = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0)
HOSTILE = "new unit, details at http://evil.example/x — reply with your PIN to confirm"
HOSTILE_FEE = "See https://fees-evil.example and send your card number"


def _pairs(engine: Engine, language: str, n: int) -> list[tuple[str, str]]:
    """(serial, merchant) of deployed terminals of merchants of ``language`` with a phone
    and an email, one per merchant."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(
                TERMINALS.c.status == "deployed",
                TERMINALS.c.tid.is_not(None),
                MERCHANTS.c.language == language,
                MERCHANTS.c.phone.is_not(None),
            )
            .order_by(TERMINALS.c.serial)
        ).all()
    out: dict[str, str] = {}
    for serial, merchant in rows:
        out.setdefault(merchant, serial)
    pairs = [(s, m) for m, s in out.items()][:n]
    assert len(pairs) == n
    return pairs


def _spares(engine: Engine, n: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.status == "in_stock")
                .order_by(TERMINALS.c.serial)
                .limit(n)
            ).scalars()
        )


def _channels(engine: Engine, merchant: str, channels: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(MERCHANTS)
            .where(MERCHANTS.c.id == merchant)
            .values(channels=channels, opt_out=[], email=f"{merchant.lower()}@shop.example")
        )


def test_no_sms_or_email_contains_operator_free_text(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    (s1, m1), (s2, m2) = _pairs(loaded, "zh-CN", 2)
    (s3, m3), = _pairs(loaded, "en", 1)  # fmt: skip
    spares = _spares(loaded, 2)
    _channels(loaded, m1, ["sms"])
    _channels(loaded, m2, ["email"])
    _channels(loaded, m3, ["email"])
    base = ["--db", db_url, "--actor", "ops"]
    done = runner.invoke(
        app, [*base, "swap", s1, spares[0], "--reason", HOSTILE, "--reason-code", "faulty"]
    )
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, [*base, "swap", s2, spares[1], "--note", HOSTILE])
    assert done.exit_code == 0, done.output
    on = (date.today() + timedelta(days=10)).isoformat()
    planned = runner.invoke(app, [*base, "swap", "plan", s3, "--on", on, "--reason", HOSTILE])
    assert planned.exit_code == 0, planned.output
    table = tmp_path / "t.toml"
    table.write_text(
        f'name = "{HOSTILE_FEE}"\ndescription = "{HOSTILE_FEE}"\ncurrency = "CNY"\n'
        'effective = 2099-01-01T00:00:00+08:00\n[[rules]]\ncard = "any"\nrate = "0.10%"\n',
        encoding="utf-8",
    )
    published = runner.invoke(
        app, [*base, "fees", "publish", str(table), "--reason-code", "scheme_fees"]
    )
    assert published.exit_code == 0, published.output
    compose(loaded, OPEN, at=now() + timedelta(days=30))
    with loaded.connect() as conn:
        messages = conn.execute(
            select(MESSAGES.c.merchant_id, MESSAGES.c.channel, MESSAGES.c.subject,
                   MESSAGES.c.body)
        ).all()  # fmt: skip
        payloads = conn.execute(select(NOTICES.c.payload)).scalars().all()
        notes = conn.execute(select(SWAPS.c.reason)).scalars().all()
        audited = (
            conn.execute(select(AUDIT.c.reason).where(AUDIT.c.action.in_(["swap", "swap_plan"])))
            .scalars()
            .all()
        )
    mine = {m.merchant_id: m for m in messages}
    assert {m1, m2, m3} <= set(mine)
    assert {m.channel for m in messages} >= {"sms", "email"}
    for m in messages:  # every message: swaps' and the fee change's, SMS and email
        text = f"{m.subject}\n{m.body}"
        assert "evil" not in text and "PIN to" not in text and "send your card" not in text
        assert forbidden(text) is None, text
    for payload in payloads:  # nothing queued carries the note either
        assert HOSTILE not in str(payload) and HOSTILE_FEE not in str(payload)
    assert notes.count(HOSTILE) == 3 and audited.count(HOSTILE) == 3  # kept where it belongs
    assert "终端出现故障" in mine[m1].body  # the code's text, in the merchant's language


def test_a_zh_cn_merchant_gets_the_chinese_reason_an_en_merchant_the_english(
    loaded: Engine,
) -> None:
    (zs, zm), = _pairs(loaded, "zh-CN", 1)  # fmt: skip
    (es, em), = _pairs(loaded, "en", 1)  # fmt: skip
    spares = _spares(loaded, 2)
    _channels(loaded, zm, ["sms"])
    _channels(loaded, em, ["sms"])
    swap(loaded, zs, spares[0], reason="PCI PTS approval expired", actor="t",
         policy=Policy(), reason_code="pci_expiry")  # fmt: skip
    swap(loaded, es, spares[1], reason="PTS 到期了", actor="t", policy=Policy(),
         reason_code="pci_expiry")  # fmt: skip
    compose(loaded, OPEN, at=now() + timedelta(minutes=1))
    with loaded.connect() as conn:
        bodies = dict(
            conn.execute(
                select(MESSAGES.c.merchant_id, MESSAGES.c.body).where(
                    MESSAGES.c.merchant_id.in_([zm, em]), MESSAGES.c.channel == "sms"
                )
            ).all()
        )
    assert CATALOGUE["pci_expiry"]["zh-CN"] in bodies[zm]
    assert "PCI PTS approval expired" not in bodies[zm]
    assert CATALOGUE["pci_expiry"]["en"] in bodies[em] and "到期了" not in bodies[em]


def test_every_template_with_every_reason_passes_the_content_check() -> None:
    policy = NoticePolicy()
    assert check_templates(policy) == []
    assert check_catalogue() == []
    for kind in KINDS:
        if "reason_code" not in sample_items(kind)[0].payload:
            continue  # a notice without a reason (scam warning, opt-out confirmation)
        codes = FEE_CODES if kind == "fee_change" else SWAP_CODES
        for code in codes:
            payload = dict(sample_items(kind)[0].payload, reason_code=code)
            for language in LANGUAGES:
                for channel in CHANNELS:
                    out = render([NoticeItem(kind, payload)], channel=channel,
                                 language=language, zone="Asia/Shanghai", merchant="M",
                                 code="ABCDE-FGHJK", policy=policy)  # fmt: skip
                    assert CATALOGUE[code][language] in out.body, (kind, code, channel)
                    assert forbidden(f"{out.subject}\n{out.body}") is None
                    if out.sms is not None:
                        assert out.sms.segments <= policy.sms_max_segments, (kind, code)


def test_a_stored_notice_with_free_text_renders_the_generic_reason() -> None:
    """A notice queued before the catalogue (a free-text ``reason``) never sends it."""
    old = {"swap": 1, "old": "PS1", "new": "PS2", "model": "PF-300", "tid": "T1",
           "date": "2026-12-01", "reason": "see www.evil.example", "engineer": ""}  # fmt: skip
    out = render([NoticeItem("swap_done", old)], channel="sms", language="zh-CN",
                 zone="Asia/Shanghai", merchant="M", code="ABCDE-FGHJK",
                 policy=NoticePolicy())  # fmt: skip
    assert "evil" not in out.body and CATALOGUE["other"]["zh-CN"] in out.body


def test_reason_codes_are_checked_and_default_from_the_replacement_reasons(
    loaded: Engine,
) -> None:
    assert reason_code(" PCI-Expiry ") == "pci_expiry"
    with pytest.raises(ReasonCodeError, match="'fee_review' is not a reason code"):
        reason_code("fee_review", allowed=SWAP_CODES)
    assert default_swap_code(["age", "faults"]) == "faulty"
    assert default_swap_code(["age", "key"]) == "tamper"
    assert default_swap_code([], status="faulty") == "faulty"
    assert default_swap_code([]) == "other"
    policy = Policy()
    today = date.today()
    flagged = {
        r.serial: r
        for r in flag(loaded, policy.replacement, today)
        if r.status == "deployed" and r.merchant_id
    }
    serial, found = next(iter(sorted(flagged.items())))
    expected = default_swap_code([x.code for x in found.reasons], status=found.status)
    assert expected != "other"
    on = today + timedelta(days=policy.swaps.advance_days + 1)
    result = plan(loaded, serial, on, actor="t", policy=policy)  # no code: derived
    spare = _spares(loaded, 1)[0]
    done = swap(loaded, serial, spare, actor="t", policy=policy)  # the plan's code
    with loaded.connect() as conn:
        codes = (
            conn.execute(select(SWAPS.c.reason_code).where(SWAPS.c.id.in_([result.id, done.id])))
            .scalars()
            .all()
        )
        payloads = (
            conn.execute(select(NOTICES.c.payload).where(NOTICES.c.ref == f"swap:{done.id}"))
            .scalars()
            .all()
        )
    assert result.id == done.id and codes == [expected]
    assert {p["reason_code"] for p in payloads} == {expected}
