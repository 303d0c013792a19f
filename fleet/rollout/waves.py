"""Waves and the failure threshold: the pure rules of a staged rollout.

>>> wave_sizes(20, (10_000, 500_000, 1_000_000))
[1, 9, 10]
>>> over_threshold(failed=2, opened=20, max_failure_ppm=50_000)
True
>>> share_text(10_000), share_text(1_000_000), share_text(12_500)
('1%', '100%', '1.25%')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

__all__ = ["order_key", "over_threshold", "share_text", "split_waves", "wave_sizes"]


def order_key(serial: str) -> str:
    """Spread waves evenly over models, merchants and regions: order by a hash."""
    return hashlib.sha256(serial.encode()).hexdigest()


def wave_sizes(terminals: int, waves: Sequence[int]) -> list[int]:
    """Terminals per wave for cumulative shares ``waves`` (ppm), each wave at least what
    the ones before it left."""
    sizes, start = [], 0
    for share in waves:
        end = max(math.ceil(terminals * share / 1_000_000), start)
        sizes.append(end - start)
        start = end
    return sizes


def split_waves(serials: Sequence[str], waves: Sequence[int]) -> list[list[str]]:
    """``serials`` in hash order, cut into waves of :func:`wave_sizes`."""
    ordered = sorted(serials, key=order_key)
    out, start = [], 0
    for size in wave_sizes(len(ordered), waves):
        out.append(ordered[start : start + size])
        start += size
    return out


def over_threshold(*, failed: int, opened: int, max_failure_ppm: int) -> bool:
    """More than ``max_failure_ppm`` of the opened waves' terminals failed: halt."""
    return bool(opened) and failed * 1_000_000 > max_failure_ppm * opened


def share_text(ppm: int) -> str:
    return f"{ppm / 10_000:g}%"
