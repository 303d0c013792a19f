"""ISO 8583 codec: this project's codec beside pyiso8583, same messages, one run.

Prints µs per encode and decode (median of 7 repeats) and the ratio ours / pyiso8583.
Target (issue 2): ratio ≤ 0.6 in both directions.
"""

from __future__ import annotations

import copy
import statistics
import timeit
from collections.abc import Callable

import iso8583
from iso8583.specs import default

from protocols.codec import Message, decode, encode

SPEC = copy.deepcopy(default)
SPEC["62"]["data_enc"] = "b"
SPEC["63"]["data_enc"] = "b"

TID = "TERM0001"

MESSAGES: dict[str, Message] = {
    # the catalog's 0200 sale (wire page §4)
    "0200 sale": Message(
        "0200",
        {
            3: "000000",
            4: "000000010000",
            11: "000123",
            22: "051",
            41: TID,
            49: "156",
            62: b"\x01\x01\x02",
        },
    ),
    # a richer 0200 as card acquirers send it (PAN, track 2, RRN, name/location...)
    "0200 sale, full": Message(
        "0200",
        {
            2: "4111111111111111",
            3: "000000",
            4: "000000010000",
            7: "1122103000",
            11: "000123",
            12: "103000",
            13: "1122",
            14: "2812",
            18: "5411",
            22: "051",
            25: "00",
            35: "4111111111111111=28121010000012300000",
            37: "633210000123",
            41: TID,
            42: "MERCHANT0000001",
            43: "POSFLEET TEST MERCHANT    SHANGHAI    CN",
            49: "156",
            62: b"\x01\x01\x02",
            63: b"\x00" * 20,
        },
    ),
    # 0800/360: one 900-byte fee-table block, signed
    "0800/360 block": Message(
        "0800",
        {
            11: "000124",
            41: TID,
            60: "00000000360",
            61: "0000000700030072",
            62: bytes(range(256)) * 3 + bytes(132),
            64: bytes.fromhex("0123456789abcdef"),
        },
    ),
}


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    runs = timeit.repeat(fn, number=number, repeat=7)
    return statistics.median(runs) / number * 1e6


def _pyiso_doc(msg: Message) -> dict[str, str]:
    doc = {"t": msg.mti}
    doc.update({str(k): v.hex() if isinstance(v, bytes) else v for k, v in msg.fields.items()})
    return doc


def run() -> list[str]:
    lines = [
        "## ISO 8583 codec vs pyiso8583 "
        f"{iso8583.__version__} (µs per message, median of 7; ratio = ours / pyiso8583)",
        f"{'message':<18} {'bytes':>5}  {'encode ours':>11} {'pyiso':>7} {'ratio':>6}"
        f"  {'decode ours':>11} {'pyiso':>7} {'ratio':>6}",
    ]
    worst = 0.0
    for name, msg in MESSAGES.items():
        data = encode(msg)
        doc = _pyiso_doc(msg)
        raw, _ = iso8583.encode(doc, SPEC)
        assert bytes(raw) == data, f"{name}: the two codecs disagree"
        assert decode(data) == msg
        n = 20_000
        enc = _per_call_us(lambda m=msg: encode(m), n)
        dec = _per_call_us(lambda d=data: decode(d), n)
        penc = _per_call_us(lambda d=doc: iso8583.encode(d, SPEC), n // 4)
        pdec = _per_call_us(lambda d=data: iso8583.decode(d, SPEC), n // 4)
        worst = max(worst, enc / penc, dec / pdec)
        lines.append(
            f"{name:<18} {len(data):>5}  {enc:>11.2f} {penc:>7.2f} {enc / penc:>6.2f}"
            f"  {dec:>11.2f} {pdec:>7.2f} {dec / pdec:>6.2f}"
        )
    verdict = "meets" if worst <= 0.6 else "MISSES"
    lines.append(f"worst ratio {worst:.2f} — {verdict} the target ≤ 0.60")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
