"""Fee-table file (wire page §6) and the fee function."""

from __future__ import annotations

import hashlib
import math
import pickle
import zlib
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import EncodeError, FeeError, FeeTableError, ProtocolError
from protocols.feetable import (
    BLOCK_SIZE,
    FEE_RULE,
    FEE_TABLE,
    FEE_TABLE_BODY,
    MAX_MCC,
    PPM,
    FeeRule,
    FeeTable,
    NoFeeRuleError,
    compute_fee,
    match_rule,
)
from protocols.values import CardType
from tests.helpers import common

# --- the golden table, byte by byte ------------------------------------------------------

GOLDEN_BODY = bytes.fromhex(
    # header
    "46 45 45 31"  # magic "FEE1"
    "00 00 00 07"  # version 7
    "00 00 00 00 67 74 85 80"  # effective 1735689600 = 2025-01-01T00:00:00Z
    "00 9c"  # currency 156 (CNY)
    "00 02"  # count 2
    # rule 0: credit cards at grocery stores, 0.60 %, at least 0.10
    "02"  # card_type 2 credit
    "15 23"  # mcc_lo 5411
    "15 23"  # mcc_hi 5411
    "00 00 17 70"  # rate_ppm 6000
    "00 00 00 00"  # fixed 0
    "00 00 00 0a"  # min_fee 10
    "00 00 00 00"  # max_fee 0 (no cap)
    # rule 1: everything else, 0.38 % + 0.05, at most 20.00
    "00"  # card_type 0 any
    "00 00"  # mcc_lo 0
    "27 0f"  # mcc_hi 9999
    "00 00 0e d8"  # rate_ppm 3800
    "00 00 00 05"  # fixed 5
    "00 00 00 00"  # min_fee 0
    "00 00 07 d0"  # max_fee 2000
)
GOLDEN_CRC = bytes.fromhex("b6 7d de 4c")  # zlib.crc32 of the 62 bytes above
GOLDEN = GOLDEN_BODY + GOLDEN_CRC

RULE0 = {
    "card_type": 2,
    "mcc_lo": 5411,
    "mcc_hi": 5411,
    "rate_ppm": 6000,
    "fixed": 0,
    "min_fee": 10,
    "max_fee": 0,
}
RULE1 = {
    "card_type": 0,
    "mcc_lo": 0,
    "mcc_hi": 9999,
    "rate_ppm": 3800,
    "fixed": 5,
    "min_fee": 0,
    "max_fee": 2000,
}
BODY_OBJ = {
    "magic": b"FEE1",
    "version": 7,
    "effective": 1_735_689_600,
    "currency": 156,
    "count": 2,
    "rules": [RULE0, RULE1],
}
GOLDEN_TABLE = FeeTable(
    version=7,
    effective=datetime(2025, 1, 1, tzinfo=UTC),
    currency=156,
    rules=(
        FeeRule(CardType.CREDIT, 5411, 5411, rate_ppm=6000, fixed=0, min_fee=10, max_fee=0),
        FeeRule(CardType.ANY, 0, 9999, rate_ppm=3800, fixed=5, min_fee=0, max_fee=2000),
    ),
)


def recrc(body: bytes) -> bytes:
    """``body`` with a correct CRC-32 appended."""
    return body + zlib.crc32(body).to_bytes(4, "big")


def patch(body: bytes, offset: int, new: bytes) -> bytes:
    return body[:offset] + new + body[offset + len(new) :]


def test_golden_crc_is_zlib_crc32() -> None:
    assert len(GOLDEN_BODY) == 20 + 2 * 21
    assert zlib.crc32(GOLDEN_BODY) == int.from_bytes(GOLDEN_CRC, "big")


def test_golden_rule_constructs() -> None:
    common(FEE_RULE, GOLDEN_BODY[20:41], RULE0, size=21)
    common(FEE_RULE, GOLDEN_BODY[41:62], RULE1, size=21)


def test_golden_body_construct() -> None:
    common(FEE_TABLE_BODY, GOLDEN_BODY, BODY_OBJ, size=-1)


def test_golden_table_construct() -> None:
    obj = {
        "body": {
            "data": GOLDEN_BODY,
            "value": BODY_OBJ,
            "offset1": 0,
            "offset2": 62,
            "length": 62,
        },
        "crc32": 0xB67DDE4C,
    }
    common(FEE_TABLE, GOLDEN, obj, size=-1)


def test_golden_dataclass_round_trip() -> None:
    assert FeeTable.from_bytes(GOLDEN) == GOLDEN_TABLE
    assert GOLDEN_TABLE.to_bytes() == GOLDEN
    assert FeeTable.from_bytes(bytearray(GOLDEN)) == GOLDEN_TABLE
    assert FeeTable.from_bytes(memoryview(GOLDEN)) == GOLDEN_TABLE


def test_golden_values_are_typed() -> None:
    table = FeeTable.from_bytes(GOLDEN)
    assert table.effective == datetime(2025, 1, 1, tzinfo=UTC)
    assert table.effective.tzinfo is UTC
    assert isinstance(table.rules, tuple)
    assert table.rules[0].card_type is CardType.CREDIT
    assert table.rules[1].card_type is CardType.ANY


def test_digest_is_sha256_of_bytes() -> None:
    assert GOLDEN_TABLE.digest() == hashlib.sha256(GOLDEN).digest()
    assert len(GOLDEN_TABLE.digest()) == 32


# --- blocks --------------------------------------------------------------------------------


def big_table(n: int) -> FeeTable:
    rules = tuple(FeeRule(CardType.ANY, i, i, rate_ppm=i) for i in range(n))
    return FeeTable(9, datetime(2030, 6, 1, tzinfo=UTC), 978, rules)


def test_blocks_default_900() -> None:
    table = big_table(100)  # 20 + 2100 + 4 = 2124 bytes
    blocks = table.blocks()
    assert [len(b) for b in blocks] == [900, 900, 324]
    assert b"".join(blocks) == table.to_bytes()
    assert BLOCK_SIZE == 900


def test_blocks_small_table_is_one_block() -> None:
    assert GOLDEN_TABLE.blocks() == [GOLDEN]
    assert GOLDEN_TABLE.blocks(66) == [GOLDEN]
    assert GOLDEN_TABLE.blocks(65) == [GOLDEN[:65], GOLDEN[65:]]
    assert GOLDEN_TABLE.blocks(1) == [bytes([b]) for b in GOLDEN]


@pytest.mark.parametrize("size", [0, -1, 901])
def test_blocks_bad_size(size: int) -> None:
    with pytest.raises(ValueError, match="block size"):
        GOLDEN_TABLE.blocks(size)


def test_blocks_size_must_be_int() -> None:
    with pytest.raises(TypeError):
        GOLDEN_TABLE.blocks(True)


# --- errors of from_bytes ------------------------------------------------------------------


def expect(data: bytes, field: str, offset: int, match: str) -> FeeTableError:
    with pytest.raises(FeeTableError, match=match) as info:
        FeeTable.from_bytes(data)
    assert (info.value.field, info.value.offset) == (field, offset), str(info.value)
    return info.value


def test_bad_magic() -> None:
    expect(b"FEE2" + GOLDEN[4:], "magic", 0, r"bad magic b'FEE2', expected b'FEE1'")


def test_crc_mismatch_says_expected_and_got() -> None:
    bad = GOLDEN[:-1] + b"\x00"
    err = expect(bad, "crc32", 62, "CRC-32 mismatch")
    assert "expected 0xb67dde4c" in str(err)
    assert "got 0xb67dde00" in str(err)


def test_trailing_bytes() -> None:
    expect(GOLDEN + b"\x00\x00", "end", 66, "2 trailing bytes")


@pytest.mark.parametrize(
    ("length", "field", "offset"),
    [
        (0, "magic", 0),
        (3, "magic", 0),
        (4, "version", 4),
        (11, "effective", 8),
        (17, "currency", 16),
        (19, "count", 18),
        (20, "rules[0].card_type", 20),
        (22, "rules[0].mcc_lo", 21),
        (26, "rules[0].rate_ppm", 25),
        (40, "rules[0].max_fee", 37),
        (41, "rules[1].card_type", 41),
        (61, "rules[1].max_fee", 58),
        (62, "crc32", 62),
        (65, "crc32", 62),
    ],
)
def test_truncation_names_member(length: int, field: str, offset: int) -> None:
    expect(GOLDEN[:length], field, offset, "truncated")


def test_every_truncation_is_typed() -> None:
    for n in range(len(GOLDEN)):
        with pytest.raises(FeeTableError) as info:
            FeeTable.from_bytes(GOLDEN[:n])
        assert info.value.offset is not None
        assert info.value.offset <= n
        assert info.value.field is not None


def test_count_larger_than_data_is_truncation() -> None:
    data = recrc(patch(GOLDEN_BODY, 18, b"\xff\xff"))
    err = expect(data, "rules[2].mcc_hi", 65, "table of 65535 rules")
    assert "got 66" in str(err)


def test_count_smaller_than_data_is_trailing() -> None:
    # count 1: rule 1 and the CRC are read as CRC + trailing bytes; the CRC check fails first.
    expect(patch(GOLDEN, 18, b"\x00\x01"), "crc32", 41, "CRC-32 mismatch")
    one_rule = recrc(patch(GOLDEN_BODY[:41], 18, b"\x00\x01"))
    expect(one_rule + b"junk", "end", 45, "4 trailing bytes")


def test_every_single_byte_mutation_is_rejected() -> None:
    # CRC-32 catches every error burst up to 32 bits, so no one-byte change passes.
    for i in range(len(GOLDEN)):
        for x in range(1, 256):
            bad = bytearray(GOLDEN)
            bad[i] ^= x
            with pytest.raises(FeeTableError):
                FeeTable.from_bytes(bytes(bad))


@pytest.mark.parametrize(
    ("offset", "new", "field", "match"),
    [
        (4, b"\x00\x00\x00\x00", "version", "version 0 is reserved"),
        (8, (253_402_300_800).to_bytes(8, "big"), "effective", "after year 9999"),
        (8, b"\xff" * 8, "effective", "after year 9999"),
        (16, b"\x00\x00", "currency", "currency 0"),
        (16, (1000).to_bytes(2, "big"), "currency", "currency 1000"),
        (20, b"\x05", "rules[0].card_type", "card type 5 is not 0..4"),
        (41, b"\xff", "rules[1].card_type", "card type 255"),
        (21, (10000).to_bytes(2, "big"), "rules[0].mcc_lo", "mcc_lo 10000 is not 0..9999"),
        (44, (10000).to_bytes(2, "big"), "rules[1].mcc_hi", "mcc_hi 10000 is not 0..9999"),
        (21, (5412).to_bytes(2, "big"), "rules[0].mcc_lo", "mcc_lo 5412 > mcc_hi 5411"),
        (25, (1_000_001).to_bytes(4, "big"), "rules[0].rate_ppm", "rate_ppm 1000001"),
        (54, (2001).to_bytes(4, "big"), "rules[1].max_fee", "max_fee 2000 < min_fee 2001"),
    ],
)
def test_format_errors(offset: int, new: bytes, field: str, match: str) -> None:
    data = recrc(patch(GOLDEN_BODY, offset, new))
    expected_offset = {
        "version": 4,
        "effective": 8,
        "currency": 16,
    }.get(field)
    if expected_offset is None:
        rule = int(field[6])
        member_at = {"card_type": 0, "mcc_lo": 1, "mcc_hi": 3, "rate_ppm": 5, "max_fee": 17}
        expected_offset = 20 + 21 * rule + member_at[field.split(".")[1]]
    expect(data, field, expected_offset, match)


def test_zero_rules_is_a_format_error() -> None:
    data = recrc(patch(GOLDEN_BODY[:20], 18, b"\x00\x00"))
    expect(data, "count", 18, "no rules")


def test_format_limits_are_inclusive() -> None:
    body = patch(GOLDEN_BODY, 25, PPM.to_bytes(4, "big"))  # 100 % is allowed
    body = patch(body, 16, (999).to_bytes(2, "big"))
    body = patch(body, 54, (2000).to_bytes(4, "big"))  # min_fee == max_fee is allowed
    body = patch(body, 8, (253_402_300_799).to_bytes(8, "big"))
    table = FeeTable.from_bytes(recrc(body))
    assert table.rules[0].rate_ppm == PPM
    assert table.rules[1].min_fee == table.rules[1].max_fee == 2000
    assert table.effective == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_from_bytes_wants_bytes() -> None:
    with pytest.raises(TypeError):
        FeeTable.from_bytes("FEE1")  # type: ignore[arg-type]


def test_errors_pickle() -> None:
    with pytest.raises(FeeTableError) as info:
        FeeTable.from_bytes(GOLDEN[:30])
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is FeeTableError
    assert (back.field, back.offset, str(back)) == (
        info.value.field,
        info.value.offset,
        str(info.value),
    )


# --- dataclass validation ------------------------------------------------------------------

JAN1 = datetime(2025, 1, 1, tzinfo=UTC)
RULE = FeeRule(CardType.ANY, 0, 9999, rate_ppm=6000)


@pytest.mark.parametrize(
    "effective",
    [
        datetime(2025, 1, 1),  # naive
        1_735_689_600.0,  # float timestamp
        1_735_689_600,  # int timestamp: give a datetime
        datetime(2025, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),  # not a whole second
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),  # before the epoch
    ],
)
def test_effective_must_be_aware_whole_second(effective: object) -> None:
    with pytest.raises(EncodeError) as info:
        FeeTable(1, effective, 156, (RULE,))  # type: ignore[arg-type]
    assert info.value.field == "effective"


def test_effective_is_normalised_to_utc() -> None:
    cst = timezone(timedelta(hours=8))
    table = FeeTable(1, datetime(2025, 1, 1, 8, tzinfo=cst), 156, [RULE])  # type: ignore[arg-type]
    assert table.effective == JAN1
    assert table.effective.tzinfo is UTC
    assert table.rules == (RULE,)
    assert table.to_bytes()[8:16] == (1_735_689_600).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version": 0}, "version"),
        ({"version": 1 << 32}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"currency": 0}, "currency"),
        ({"currency": 1000}, "currency"),
        ({"rules": ()}, "count"),
        ({"rules": (RULE,) * 65536}, "count"),
        ({"rules": (RULE, "x")}, "rules[1]"),
        ({"rules": RULE}, "rules"),
    ],
)
def test_table_validation(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"version": 1, "effective": JAN1, "currency": 156, "rules": (RULE,)}
    args.update(kwargs)
    with pytest.raises(EncodeError) as info:
        FeeTable(**args)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"card_type": 5}, "card_type"),
        ({"card_type": -1}, "card_type"),
        ({"card_type": True}, "card_type"),
        ({"mcc_lo": 10000, "mcc_hi": 10000}, "mcc_lo"),
        ({"mcc_hi": 10000}, "mcc_hi"),
        ({"mcc_lo": 20, "mcc_hi": 10}, "mcc_lo"),
        ({"rate_ppm": 1_000_001}, "rate_ppm"),
        ({"rate_ppm": 0.006}, "rate_ppm"),
        ({"fixed": 1.5}, "fixed"),
        ({"fixed": -1}, "fixed"),
        ({"fixed": 1 << 32}, "fixed"),
        ({"min_fee": 10, "max_fee": 5}, "max_fee"),
        ({"max_fee": 2.0}, "max_fee"),
    ],
)
def test_rule_validation(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"card_type": 0, "mcc_lo": 0, "mcc_hi": 9999, "rate_ppm": 6000}
    args.update(kwargs)
    with pytest.raises(EncodeError) as info:
        FeeRule(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_rule_accepts_plain_int_card_type() -> None:
    rule = FeeRule(3, 0, 0, rate_ppm=0)  # type: ignore[arg-type]
    assert rule.card_type is CardType.INTERNATIONAL
    assert FeeRule(1, 0, 9999, 0, min_fee=5, max_fee=0).max_fee == 0  # type: ignore[arg-type]


# --- compute_fee: worked examples -----------------------------------------------------------


def one_rule(**kwargs: int) -> FeeTable:
    args = {"card_type": 0, "mcc_lo": 0, "mcc_hi": 9999, "rate_ppm": 0} | kwargs
    return FeeTable(1, JAN1, 156, (FeeRule(**args),))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "rate_ppm", "fee"),
    [
        (100, 5000, 1),  # 0.5 -> 1 (half up)
        (300, 5000, 2),  # 1.5 -> 2 (half up, not to even)
        (500, 5000, 3),  # 2.5 -> 3 (half up, not to even)
        (99, 5000, 0),  # 0.495 -> 0
        (10_150, 6000, 61),  # 60.9 -> 61
        (10_125, 6000, 61),  # 60.75 -> 61
        (10_075, 6000, 60),  # 60.45 -> 60
        (250, 2000, 1),  # exactly 0.5 -> 1
        (249, 2000, 0),  # 0.498 -> 0
        (0, 6000, 0),
        (1, PPM, 1),
        (999_999_999_999, 6000, 6_000_000_000),  # 5999999999.994 -> up
        (123_456_789_012, 3, 370_370),  # 370370.367036 -> down
    ],
)
def test_rounding_half_up(amount: int, rate_ppm: int, fee: int) -> None:
    assert compute_fee(one_rule(rate_ppm=rate_ppm), amount, CardType.DEBIT, 5411) == fee


def test_fixed_min_max_and_cap_at_amount() -> None:
    table = one_rule(rate_ppm=6000, fixed=5, min_fee=50, max_fee=2000)
    assert compute_fee(table, 10_000, 1, 1) == 65  # 60 + 5
    assert compute_fee(table, 1_000, 1, 1) == 50  # 6 + 5 raised to min 50
    assert compute_fee(table, 1_000_000, 1, 1) == 2000  # 6005 lowered to max
    assert compute_fee(table, 30, 1, 1) == 30  # min 50 > amount: never more than the amount
    assert compute_fee(table, 0, 1, 1) == 0
    assert compute_fee(one_rule(fixed=7), 3, 1, 1) == 3
    assert compute_fee(one_rule(rate_ppm=6000, max_fee=0), 10**9, 1, 1) == 6_000_000  # no cap


def test_golden_table_fees() -> None:
    assert compute_fee(GOLDEN_TABLE, 10_150, CardType.CREDIT, 5411) == 61
    assert compute_fee(GOLDEN_TABLE, 1_000, CardType.CREDIT, 5411) == 10  # 6 -> min 10
    assert compute_fee(GOLDEN_TABLE, 10_150, CardType.DEBIT, 5411) == 44  # 38.57->39 + 5
    assert compute_fee(GOLDEN_TABLE, 10_150, CardType.CREDIT, 5412) == 44
    assert compute_fee(GOLDEN_TABLE, 10**8, CardType.QR_WALLET, 0) == 2000


def test_first_matching_rule_wins() -> None:
    table = FeeTable(
        1,
        JAN1,
        156,
        (
            FeeRule(CardType.DEBIT, 5000, 5999, rate_ppm=1000),
            FeeRule(CardType.ANY, 5411, 5411, rate_ppm=2000),
            FeeRule(CardType.DEBIT, 5411, 5411, rate_ppm=3000),
        ),
    )
    assert match_rule(table, CardType.DEBIT, 5411) is table.rules[0]
    assert match_rule(table, CardType.CREDIT, 5411) is table.rules[1]
    assert match_rule(table, CardType.CREDIT, 5000) is None
    assert match_rule(table, CardType.DEBIT, 4999) is None
    assert compute_fee(table, 100_000, CardType.DEBIT, 5411) == 100
    assert compute_fee(table, 100_000, CardType.CREDIT, 5411) == 200


def test_mcc_bounds_inclusive() -> None:
    table = FeeTable(1, JAN1, 156, (FeeRule(CardType.ANY, 5000, 5999, rate_ppm=1000),))
    assert match_rule(table, 1, 5000) is not None
    assert match_rule(table, 1, 5999) is not None
    assert match_rule(table, 1, 4999) is None
    assert match_rule(table, 1, 6000) is None


def test_no_rule_is_fee_error_57() -> None:
    table = FeeTable(1, JAN1, 156, (FeeRule(CardType.DEBIT, 0, 9999, rate_ppm=1000),))
    with pytest.raises(FeeError, match="no fee rule matches card type CREDIT") as info:
        compute_fee(table, 100, CardType.CREDIT, 5411)
    assert isinstance(info.value, NoFeeRuleError)
    assert isinstance(info.value, ProtocolError)
    assert info.value.code == "57"
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is NoFeeRuleError
    assert back.code == "57"


@pytest.mark.parametrize(
    ("amount", "card_type", "mcc", "exc"),
    [
        (-1, 1, 5411, ValueError),
        (True, 1, 5411, TypeError),
        (100.0, 1, 5411, TypeError),
        ("100", 1, 5411, TypeError),
        (100, 0, 5411, ValueError),  # ANY is for rules, never a sale's card type
        (100, 5, 5411, ValueError),
        (100, True, 5411, TypeError),
        (100, 1, -1, ValueError),
        (100, 1, 10000, ValueError),
        (100, 1, 5411.0, TypeError),
    ],
)
def test_compute_fee_rejects_bad_input(
    amount: object, card_type: object, mcc: object, exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        compute_fee(GOLDEN_TABLE, amount, card_type, mcc)  # type: ignore[arg-type]


# --- hypothesis -------------------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
MONEY = st.one_of(st.integers(0, 10_000), U32)
AMOUNT = st.one_of(st.integers(0, 100_000), st.integers(0, 999_999_999_999), st.integers(0, 2**64))


@st.composite
def rules(draw: st.DrawFn) -> FeeRule:
    lo = draw(st.integers(0, MAX_MCC))
    hi = draw(st.integers(lo, MAX_MCC))
    min_fee = draw(MONEY)
    max_fee = draw(st.one_of(st.just(0), st.integers(min_fee, 2**32 - 1)))
    return FeeRule(
        card_type=draw(st.sampled_from(CardType)),
        mcc_lo=lo,
        mcc_hi=hi,
        rate_ppm=draw(st.one_of(st.integers(0, 50_000), st.integers(0, PPM))),
        fixed=draw(MONEY),
        min_fee=min_fee,
        max_fee=max_fee,
    )


tables = st.builds(
    FeeTable,
    version=st.integers(1, 2**32 - 1),
    effective=st.integers(0, 253_402_300_799).map(
        lambda s: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
    ),
    currency=st.integers(1, 999),
    rules=st.lists(rules(), min_size=1, max_size=12).map(tuple),
)


def reference_fee(rule: FeeRule, amount: int) -> int:
    """§6 with exact rational arithmetic: the spec read literally."""
    exact = Fraction(amount) * Fraction(rule.rate_ppm, 1_000_000)
    fee = math.floor(exact + Fraction(1, 2)) + rule.fixed  # half up
    fee = max(fee, rule.min_fee)
    if rule.max_fee > 0:
        fee = min(fee, rule.max_fee)
    return min(fee, amount)


@given(tables)
def test_random_tables_round_trip(table: FeeTable) -> None:
    raw = table.to_bytes()
    assert len(raw) == 24 + 21 * len(table.rules)
    assert FeeTable.from_bytes(raw) == table
    assert b"".join(table.blocks()) == raw
    assert table.digest() == hashlib.sha256(raw).digest()


@given(tables, st.data())
def test_truncations_of_random_tables(table: FeeTable, data: st.DataObject) -> None:
    raw = table.to_bytes()
    n = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(FeeTableError):
        FeeTable.from_bytes(raw[:n])


@given(st.binary(max_size=200))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    try:
        table = FeeTable.from_bytes(data)
    except FeeTableError:
        return
    assert table.to_bytes() == data  # whatever parses is canonical


@given(st.binary(min_size=20, max_size=200))
def test_random_bodies_with_good_magic_and_crc(tail: bytes) -> None:
    # Past the magic and the CRC, so the size and format checks get exercised.
    data = recrc(b"FEE1" + tail)
    try:
        table = FeeTable.from_bytes(data)
    except FeeTableError as err:
        assert err.field is not None
        assert err.offset is not None
        return
    assert table.to_bytes() == data


@given(tables, st.data())
def test_mutated_tables_with_fixed_crc(table: FeeTable, data: st.DataObject) -> None:
    body = bytearray(table.to_bytes()[:-4])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    raw = recrc(bytes(body))
    try:
        back = FeeTable.from_bytes(raw)
    except FeeTableError as err:
        assert err.offset is not None
        return
    assert back.to_bytes() == raw


@given(tables, st.data())
def test_single_byte_mutations_of_random_tables(table: FeeTable, data: st.DataObject) -> None:
    raw = bytearray(table.to_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(FeeTableError):
        FeeTable.from_bytes(bytes(raw))


@settings(max_examples=500)
@given(rules(), AMOUNT)
def test_fee_equals_fraction_reference(rule: FeeRule, amount: int) -> None:
    assert rule.fee(amount) == reference_fee(rule, amount)


@given(rules(), AMOUNT)
def test_fee_between_zero_and_amount(rule: FeeRule, amount: int) -> None:
    assert 0 <= rule.fee(amount) <= amount


@given(rules(), AMOUNT, AMOUNT)
def test_fee_monotone_in_amount(rule: FeeRule, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert rule.fee(lo) <= rule.fee(hi)


@given(rules(), st.integers(0, PPM), AMOUNT)
def test_fee_monotone_in_rate(rule: FeeRule, other_rate: int, amount: int) -> None:
    lo, hi = sorted((rule.rate_ppm, other_rate))
    low = FeeRule(
        rule.card_type, rule.mcc_lo, rule.mcc_hi, lo, rule.fixed, rule.min_fee, rule.max_fee
    )
    high = FeeRule(
        rule.card_type, rule.mcc_lo, rule.mcc_hi, hi, rule.fixed, rule.min_fee, rule.max_fee
    )
    assert low.fee(amount) <= high.fee(amount)


@given(rules(), AMOUNT)
def test_fee_respects_min_and_max(rule: FeeRule, amount: int) -> None:
    fee = rule.fee(amount)
    if rule.max_fee > 0:
        assert fee <= rule.max_fee
    assert fee >= min(rule.min_fee, amount)


@given(
    tables,
    AMOUNT,
    st.sampled_from([c for c in CardType if c is not CardType.ANY]),
    st.integers(0, MAX_MCC),
)
def test_compute_fee_is_first_matching_rule(
    table: FeeTable, amount: int, card_type: CardType, mcc: int
) -> None:
    matching = [
        r for r in table.rules if r.card_type in (0, card_type) and r.mcc_lo <= mcc <= r.mcc_hi
    ]
    if not matching:
        with pytest.raises(NoFeeRuleError):
            compute_fee(table, amount, card_type, mcc)
        return
    assert match_rule(table, card_type, mcc) is matching[0]
    assert compute_fee(table, amount, card_type, mcc) == reference_fee(matching[0], amount)


@given(tables, rules(), AMOUNT, st.integers(1, 4), st.integers(0, MAX_MCC))
def test_catch_all_rule_first_decides(
    table: FeeTable, rule: FeeRule, amount: int, card_type: int, mcc: int
) -> None:
    catch_all = FeeRule(
        CardType.ANY, 0, MAX_MCC, rule.rate_ppm, rule.fixed, rule.min_fee, rule.max_fee
    )
    first = FeeTable(table.version, table.effective, table.currency, (catch_all, *table.rules))
    assert compute_fee(first, amount, card_type, mcc) == catch_all.fee(amount)


@given(st.integers(0, 10**12), st.integers(0, PPM))
def test_rounding_matches_decimal_style_half_up(amount: int, rate_ppm: int) -> None:
    # Independent restatement: remainder of the exact division decides, ties go up.
    q, r = divmod(amount * rate_ppm, PPM)
    expected = q + (1 if 2 * r >= PPM else 0)
    rule = FeeRule(CardType.ANY, 0, MAX_MCC, rate_ppm)
    assert rule.fee(amount) == expected


def test_a_huge_number_is_refused_with_a_typed_error() -> None:
    """Fuzz find (fuzz/corpus/fee_toml/find-huge-min): a 6,667-digit minimum fee made the
    error message itself fail (Python refuses to format ints over 4,300 digits)."""
    from protocols.errors import EncodeError  # noqa: PLC0415

    with pytest.raises(EncodeError, match="a 22144-bit number does not fit u32"):
        FeeRule(CardType.CREDIT, 0, 9999, 6000, min_fee=10**6666)
