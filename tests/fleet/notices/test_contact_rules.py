"""Pure notice rules: SMS segments, quiet hours across zones and DST, rate limits,
channels, codes, templates, the [notices] and [swaps] policy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.core.masking import mask_address
from fleet.core.policy import NoticePolicy, Policy, PolicyError
from fleet.notices.codes import ALPHABET, new_code, normalise_code
from fleet.notices.contact import (
    choose_channel,
    in_quiet_hours,
    next_allowed,
    quiet_until,
    rate_until,
)
from fleet.notices.reasons import CATALOGUE
from fleet.notices.sms import GSM7_BASIC, GSM7_EXTENSION, count
from fleet.notices.text import (
    CHANNELS,
    FORBIDDEN,
    KINDS,
    LANGUAGES,
    TEMPLATES,
    check_templates,
    render,
    sample_items,
)

QUIET = (21 * 60, 8 * 60)

# -- SMS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters: two septets each
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "[" + "a" * 10, "GSM-7", 164, 2),  # the escape pair is not split
        ("a" * 159 + "é", "GSM-7", 160, 1),  # é is in the default alphabet
        ("a" * 69 + "ê", "UCS-2", 70, 1),  # ê is not: the whole text turns UCS-2
        ("a" * 159 + "中", "UCS-2", 160, 3),  # one Chinese character makes it all UCS-2
        ("中" * 70, "UCS-2", 70, 1),
        ("中" * 71, "UCS-2", 71, 2),
        ("中" * 134, "UCS-2", 134, 2),
        ("中" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # surrogate pairs: two units each
        ("a" * 66 + "😀" + "a" * 10, "UCS-2", 78, 2),  # …and never split
        ("【posfleet】ok", "UCS-2", 12, 1),  # the 【signature】 alone forces UCS-2
    ],
)
def test_sms_segments(text: str, encoding: str, units: int, segments: int) -> None:
    got = count(text)
    assert (got.encoding, got.units, got.segments) == (encoding, units, segments)


def test_the_gsm_alphabet_has_its_128_characters_but_escape() -> None:
    assert len(GSM7_BASIC) == 127 and len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@given(st.text(alphabet=st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "中"])))
def test_segments_hold_every_unit(text: str) -> None:
    got = count(text)
    per = 153 if got.encoding == "GSM-7" else 67
    single = 160 if got.encoding == "GSM-7" else 70
    if got.units <= single:
        assert got.segments == (1 if text else 0)
    else:  # enough segments for every unit, and no more than one spare for unsplit pairs
        assert got.segments * per >= got.units
        assert (got.segments - 1) * per < got.units + got.segments


# -- quiet hours, DST, rate limit -------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "zone", "until"),
    [
        (utc(2026, 7, 1, 12, 59), "Asia/Shanghai", None),  # 20:59: not yet quiet
        (utc(2026, 7, 1, 13, 0), "Asia/Shanghai", utc(2026, 7, 2, 0, 0)),  # 21:00 → 08:00
        (utc(2026, 7, 1, 23, 59), "Asia/Shanghai", utc(2026, 7, 2, 0, 0)),  # 07:59 → 08:00
        (utc(2026, 7, 2, 0, 0), "Asia/Shanghai", None),  # 08:00 sharp: open
        # the same instant is quiet in one zone and not in another
        (utc(2026, 7, 1, 14, 0), "Europe/Dublin", None),  # 15:00 IST
        (utc(2026, 7, 1, 14, 0), "Australia/Sydney", utc(2026, 7, 1, 22, 0)),  # 00:00 AEST
        # spring forward: Dublin 2026-03-29 01:00 GMT → 02:00 IST; 08:00 IST is 07:00 UTC
        (utc(2026, 3, 28, 21, 30), "Europe/Dublin", utc(2026, 3, 29, 7, 0)),
        # fall back: New York 2026-11-01 02:00 EDT → 01:00 EST; 08:00 EST is 13:00 UTC
        (utc(2026, 11, 1, 2, 0), "America/New_York", utc(2026, 11, 1, 13, 0)),
        # the repeated hour itself (01:30 EST, second time round) is quiet too
        (utc(2026, 11, 1, 6, 30), "America/New_York", utc(2026, 11, 1, 13, 0)),
        # Lord Howe moves by 30 minutes: 08:00 LHDT (+11) is 21:00 UTC
        (utc(2026, 12, 1, 12, 0), "Australia/Lord_Howe", utc(2026, 12, 1, 21, 0)),
    ],
)
def test_quiet_hours(at: datetime, zone: str, until: datetime | None) -> None:
    assert quiet_until(at, zone, QUIET) == until
    assert in_quiet_hours(at, zone, QUIET) == (until is not None)


def test_quiet_hours_that_do_not_wrap_midnight_and_none() -> None:
    lunch = (12 * 60, 14 * 60)
    assert quiet_until(utc(2026, 1, 5, 12, 30), "UTC", lunch) == utc(2026, 1, 5, 14, 0)
    assert quiet_until(utc(2026, 1, 5, 14, 0), "UTC", lunch) is None
    assert quiet_until(utc(2026, 1, 5, 23, 0), "UTC", (0, 0)) is None


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)))
def test_next_allowed_is_never_quiet_and_never_earlier(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    for zone in ("Europe/Dublin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe"):
        t = next_allowed(at, zone=zone, quiet=QUIET)
        assert t >= at
        assert not in_quiet_hours(t, zone, QUIET)
        assert t - at <= timedelta(hours=12)  # deferred, by at most one night


def test_rate_limit_rolls() -> None:
    t0 = utc(2026, 1, 1, 13, 30)  # 21:30 in Shanghai
    day = timedelta(days=1)
    sent = [t0, t0 + day, t0 + 2 * day]
    assert rate_until(sent, t0 + 3 * day, limit=3, window=7 * day) == t0 + 7 * day
    assert rate_until(sent, t0 + 3 * day, limit=4, window=7 * day) is None
    assert rate_until(sent, t0 + 7 * day, limit=3, window=7 * day) is None
    # rate limit and quiet hours together: the window frees at 21:30 local, in quiet hours
    t = next_allowed(
        t0 + 3 * day, zone="Asia/Shanghai", quiet=QUIET, sent=sent, limit=3, window=7 * day
    )
    assert t == utc(2026, 1, 9, 0, 0)  # 08:00 in Shanghai the next morning


def test_channel_choice() -> None:
    both = {"phone": "+8613800000000", "email": "a@example.com"}
    assert choose_channel(["fee_change"], preferred=["email"], opted_out=[], **both) == "email"
    assert choose_channel(["fee_change"], preferred=[], opted_out=[], **both) == "sms"
    assert choose_channel(["fee_change"], preferred=[], opted_out=["sms"], **both) == "email"
    assert (
        choose_channel(["fee_change"], preferred=["sms"], opted_out=[], phone=None, email="a@b.c")
        == "email"
    )
    everything = ["sms", "email", "call"]
    assert choose_channel(["swap_done"], preferred=[], opted_out=everything, **both) == "call"
    assert choose_channel(["follow_up"], preferred=[], opted_out=everything, **both) is None
    assert (
        choose_channel(["fee_change"], preferred=[], opted_out=[], phone=None, email=None) is None
    )


# -- codes ------------------------------------------------------------------------------------


def test_codes_are_random_unique_and_readable() -> None:
    codes = {new_code() for _ in range(20_000)}
    assert len(codes) == 20_000
    for code in list(codes)[:500]:
        assert re.fullmatch(f"[{ALPHABET}]{{5}}-[{ALPHABET}]{{5}}", code)
        assert normalise_code(code.lower().replace("-", " ")) == code
    # every character position is used across codes (not a counter)
    assert {c[0] for c in codes} == set(ALPHABET)


def test_addresses_are_masked() -> None:
    assert mask_address("+8613812345678") == "+86 138****5678"
    assert "12345" not in mask_address("+8613812345678")
    assert mask_address("+6591234567") == "+65 ****4567"
    assert mask_address("someone@example.com") == "s***@example.com"


# -- templates --------------------------------------------------------------------------------


def test_every_template_exists_and_passes_the_checks() -> None:
    names = {p.name for p in TEMPLATES.glob("*.j2")}
    for kind in KINDS:
        for lang in LANGUAGES:
            for channel in CHANNELS:
                assert f"{kind}.{lang}.{channel}.j2" in names
    assert check_templates(NoticePolicy()) == []


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", KINDS)
def test_each_notice_states_what_it_must(kind: str, lang: str, channel: str) -> None:
    policy = NoticePolicy()
    out = render(
        sample_items(kind), channel=channel, language=lang, zone="Asia/Shanghai",
        merchant="Sunrise Café", code="7KQ2M-9XD4T", policy=policy,
    )  # fmt: skip
    text = f"{out.subject}\n{out.body}"
    assert "7KQ2M-9XD4T" in text and policy.hotline in text
    if kind == "scam_warning":  # the region it warns, and what we never ask for
        assert "Region name of forty characters" in text
        assert "terminal" in text or "终端" in text
    elif kind == "opt_out_confirm":  # what still reaches the merchant, and how
        assert "email" in text or "邮件" in text
    else:
        code = sample_items(kind)[0].payload["reason_code"]  # the catalogue's, in the language
        assert CATALOGUE[code][lang] in text
        assert "2027" in text  # the effective date
    if kind == "fee_change":  # the impact: the typical basket's fee before and after
        assert "12345.67 EUR" in text and "13345.67 EUR" in text
    for pattern, _what in FORBIDDEN:
        assert not pattern.search(text)
    if channel == "sms":
        assert out.sms is not None and out.sms.segments <= policy.sms_max_segments
        assert out.body.startswith(policy.signature(lang))
        assert out.sms.encoding == ("UCS-2" if lang == "zh-CN" else "GSM-7")


@pytest.mark.parametrize(
    "bad",
    [
        "Visit https://pay.example.com now",
        "see www.posfleet-rates.net",
        "Click here to keep your rate",
        "Reply with your card number to confirm",
        "Please confirm your PIN",
        "Tell us the code we just sent you",
        "请点击以下链接",
        "请回复您的银行卡卡号",
        "请提供验证码",
    ],
)
def test_the_checker_catches_what_scams_say(bad: str) -> None:
    assert any(p.search(bad) for p, _ in FORBIDDEN)


def test_a_policy_with_a_small_segment_limit_refuses_the_templates() -> None:
    problems = check_templates(NoticePolicy(sms_max_segments=1))
    assert problems and all("segments" in str(p) for p in problems)
    assert any("zh-CN.sms" in str(p) for p in problems)


def test_notices_and_swaps_policy() -> None:
    p = Policy.from_toml(
        '[notices]\nquiet_hours = "22:00-07:30"\nwindow = "24h"\nmax_per_window = 2\n'
        'digest_window = "1h"\nsms_price = "0.35"\nsms_currency = "CNY"\n'
        'sms_signature = { "zh-CN" = "【银联商务】" }\n'
        '[swaps]\nfollow_up_after = "14d"\nfollow_up = "notice"\nadvance_notice = "5d"\n'
    )
    n = p.notices
    assert n.quiet == (22 * 60, 7 * 60 + 30) and n.window_s == 86_400 and n.digest_s == 3600
    assert n.signature("zh-CN") == "【银联商务】" and n.signature("zh-Hans") == ""
    assert (p.swaps.follow_up_days, p.swaps.follow_up, p.swaps.advance_days) == (14, "notice", 5)
    assert Policy.from_toml(p.to_toml()).notices == n
    for bad, message in [
        ('[notices]\nquiet_hours = "9pm-8am"', "want HH:MM-HH:MM"),
        ('[notices]\nsms_price = "0.005"', "more than 2 decimals"),
        ("[notices]\nmax_per_window = 0", "≥ 1"),
        ('[notices]\nquiet = "21:00-08:00"', "unknown key"),
        ('[swaps]\nfollow_up = "letter"', "want call or notice"),
        ("[contact]\nx = 1", "unknown section"),
    ]:
        with pytest.raises(PolicyError, match=message):
            Policy.from_toml(bad)
