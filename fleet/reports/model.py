"""What a report is, independent of how it is shown: declarations only, no I/O.

A :class:`Report` is a title, the parameters it was made with, a few summary
:class:`Fact` s, one or more :class:`Section` s (tables of rows) and the :class:`Chart` s
to draw. Every renderer (table, CSV, JSON, HTML) works from this object alone, so a new
report is one function that returns one, and a new format one function that takes one.

Row values are typed: ``str``, ``int``, ``bool``, :class:`~datetime.date`,
:class:`~datetime.datetime`, ``list[str]`` or ``None``. A :class:`Column` says how to show
its values; money is always an ``int`` of minor units whose currency is another column
of the same row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, overload

__all__ = [
    "Chart",
    "Column",
    "ColumnKind",
    "Fact",
    "LazyRows",
    "Report",
    "Row",
    "Section",
    "Series",
    "columns",
    "counts_text",
    "plural",
    "series",
    "stacks",
]

Row = Mapping[str, Any]

ColumnKind = Literal["text", "int", "bool", "date", "datetime", "money", "ppm", "list"]
"""``money``: minor units (currency in ``Column.currency``); ``ppm``: parts per million,
shown as a percent; ``list``: a list of strings."""

RESERVED = frozenset({"report", "title", "as_of", "params", "summary"})
"""Top-level JSON keys a section key may not take."""


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    """The row's key, the CSV header and the JSON key."""
    title: str = ""
    """The header people read (table, HTML); the key when empty."""
    kind: ColumnKind = "text"
    currency: str = "currency"
    """For ``money``: the key of the row's currency column."""
    wrap: bool = False
    """Long text (an error, a description) that may wrap; other cells stay on one line."""

    @property
    def label(self) -> str:
        return self.title or self.key

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "money", "ppm")


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Row]
    total: int | None = None
    """How many rows there are in all when ``rows`` is only the first of them."""
    note: str = ""
    brief: tuple[str, ...] = ()
    """The keys of the columns a terminal table shows (all when empty); HTML, CSV and
    JSON always have every column."""

    @property
    def truncated(self) -> bool:
        return self.total is not None and self.total > len(self.rows)

    def table_columns(self) -> tuple[Column, ...]:
        if not self.brief:
            return self.columns
        by_key = {c.key: c for c in self.columns}
        return tuple(by_key[k] for k in self.brief)


@dataclass(frozen=True, slots=True)
class Fact:
    """One summary figure: ``value`` for JSON (plain JSON types), ``text`` for people."""

    key: str
    label: str
    value: Any
    text: str

    @classmethod
    def count(cls, key: str, label: str, n: int) -> Fact:
        """A number: ``1,234``."""
        return cls(key, label, n, f"{n:,}")

    @classmethod
    def counts(cls, key: str, label: str, counts: Mapping[str, int]) -> Fact:
        """Numbers by name: ``done: 3, failed: 1`` (JSON: the mapping)."""
        return cls(key, label, counts, counts_text(counts))


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float, ...]
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart: one bar (or group, or stack) per category, one colour per series."""

    key: str
    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = False
    xlabel: str = ""
    ylabel: str = ""
    description: str = ""
    """What it shows, in words (the figure's caption and accessible name)."""

    @property
    def empty(self) -> bool:
        return not self.categories or not any(v for s in self.series for v in s.values)


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    """``fleet``, ``replacements``, ``rollout``: the command that makes it."""
    title: str
    as_of: date | None
    params: Mapping[str, Any]
    """What it was made with (plain JSON types): horizon, policy, filters."""
    summary: tuple[Fact, ...]
    sections: tuple[Section, ...]
    main: str
    """The key of the section CSV writes."""
    charts: tuple[Chart, ...] = field(default=())

    def __post_init__(self) -> None:
        keys = [s.key for s in self.sections]
        if len(set(keys)) != len(keys) or RESERVED & set(keys):
            raise ValueError(f"{self.name}: section keys must be unique and not {RESERVED}")
        if self.main not in keys:
            raise ValueError(f"{self.name}: main section {self.main!r} is not one of {keys}")

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)


class LazyRows(Sequence[Row]):
    """Rows made from ``items`` as they are read: half a million rows of a report cost the
    (small, slotted) items they come from, not half a million dicts at once."""

    __slots__ = ("_items", "_make")

    def __init__(self, items: Sequence[Any], make: Callable[[Any], Row]) -> None:
        self._items = items
        self._make = make

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | Sequence[Row]:
        if isinstance(index, slice):
            return [self._make(item) for item in self._items[index]]
        return self._make(self._items[index])

    def __iter__(self) -> Iterator[Row]:
        return map(self._make, self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def columns(*specs: tuple[str, str, ColumnKind] | tuple[str, str] | str) -> tuple[Column, ...]:
    """Shorthand: ``"serial"``, ``("made", "manufactured")``, ``("n", "terminals", "int")``."""
    out: list[Column] = []
    for spec in specs:
        if isinstance(spec, str):
            out.append(Column(spec))
        elif len(spec) == 2:
            out.append(Column(spec[0], spec[1]))
        else:
            out.append(Column(spec[0], spec[1], spec[2]))
    return tuple(out)


def series(name: str, values: Sequence[float], color: str | None = None) -> Series:
    return Series(name, tuple(values), color)


def stacks(
    order: Sequence[str], colors: Mapping[str, str], bars: Sequence[Mapping[str, float]]
) -> tuple[Series, ...]:
    """The series of a stacked chart from its bars (one mapping key → value per category):
    one series per key of ``order`` (a status, a priority) that has a value anywhere, in
    its colour."""
    made = (series(key, [bar.get(key, 0) for bar in bars], colors[key]) for key in order)
    return tuple(s for s in made if any(s.values))


def plural(n: int, word: str) -> str:
    """``n`` and the noun, in the plural unless ``n`` is 1.

    >>> plural(1, "unit"), plural(1200, "segment")
    ('1 unit', '1,200 segments')
    """
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def counts_text(counts: Mapping[str, int]) -> str:
    """Numbers by name as people read them (``none`` when there are none).

    >>> counts_text({"P1": 1200, "P2": 3}), counts_text({})
    ('P1: 1,200, P2: 3', 'none')
    """
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"
