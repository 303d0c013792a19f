"""Which merchants a fee table applies to: a :class:`Group` of MCC ranges, regions and
tags (all merchants when empty). Pure: the SQL form of a group is in
:mod:`fleet.fees.targets`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleet.fees.errors import FeeFileError
from protocols.feetable import MAX_MCC

__all__ = ["Group", "parse_group", "parse_mcc_ranges"]


def parse_mcc_ranges(value: Any, where: str) -> list[tuple[int, int]]:
    """``"5411"``, ``"5811-5814"``, ``5411`` or a list of those → inclusive ranges.

    >>> parse_mcc_ranges(["5411", "5811-5814", 7011], "mcc")
    [(5411, 5411), (5811, 5814), (7011, 7011)]
    """
    items = value if isinstance(value, list) else [value]
    if not items:
        raise FeeFileError(f"{where}: an empty list matches nothing")
    ranges = []
    for item in items:
        text = (
            str(item).strip() if isinstance(item, str | int) and not isinstance(item, bool) else ""
        )
        match = re.fullmatch(r"(\d{1,4})(?:\s*-\s*(\d{1,4}))?", text)
        if not match:
            raise FeeFileError(f'{where}: not an MCC or range: {item!r} (e.g. "5411", "5811-5814")')
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if lo > hi or hi > MAX_MCC:
            raise FeeFileError(f"{where}: {text} is not a range within 0000-{MAX_MCC}")
        ranges.append((lo, hi))
    return ranges


@dataclass(frozen=True)
class Group:
    """Which merchants a table applies to: all, or those matching every given criterion."""

    mcc: tuple[tuple[int, int], ...] = ()
    regions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        return not (self.mcc or self.regions or self.tags)

    def includes(self, mcc: int, region: str | None, tags: Iterable[str]) -> bool:
        if self.mcc and not any(lo <= mcc <= hi for lo, hi in self.mcc):
            return False
        if self.regions and region not in self.regions:
            return False
        return not self.tags or bool(set(self.tags) & set(tags))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mcc": [list(r) for r in self.mcc],
            "regions": list(self.regions),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Group:
        return cls(
            tuple((int(lo), int(hi)) for lo, hi in doc.get("mcc", [])),
            tuple(doc.get("regions", [])),
            tuple(doc.get("tags", [])),
        )

    def describe(self) -> str:
        if self.everyone:
            return "all merchants"
        parts = []
        if self.mcc:
            parts.append(
                "MCC "
                + ", ".join(
                    f"{lo:04d}" if lo == hi else f"{lo:04d}-{hi:04d}" for lo, hi in self.mcc
                )
            )
        if self.regions:
            parts.append("region " + ", ".join(self.regions))
        if self.tags:
            parts.append("tag " + ", ".join(self.tags))
        return "; ".join(parts)


def parse_group(text: str) -> Group:
    """``all``, ``mcc=5411,5811-5814``, ``region=east``, ``tag=vip``; ``;`` joins criteria.

    >>> parse_group("mcc=5411;region=east").describe()
    'MCC 5411; region east'
    """
    if text.strip() in ("", "all"):
        return Group()
    mcc: list[tuple[int, int]] = []
    regions: list[str] = []
    tags: list[str] = []
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not sep or not values:
            raise FeeFileError(f"group: {part!r} (want all, mcc=…, region=…, tag=…)")
        if key == "mcc":
            mcc += parse_mcc_ranges(values, "group mcc")
        elif key in ("region", "regions"):
            regions += values
        elif key in ("tag", "tags"):
            tags += values
        else:
            raise FeeFileError(f"group: unknown criterion {key!r} (want mcc, region, tag)")
    return Group(tuple(mcc), tuple(regions), tuple(tags))
