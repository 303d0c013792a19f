"""The fleet report: terminals by model and status, firmware in use (supported on the
as-of date or not: a version past its end of support, or with a security advisory that has
no fix, is not supported — the replacements list flags both), and the age of the fleet.
Pure: aggregated rows in, a :class:`~fleet.reports.model.Report` out
(:mod:`fleet.reports.queries` reads them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fleet.reports.model import Chart, Column, Fact, Report, Section, columns, series, stacks

__all__ = [
    "FLEET_STATUSES",
    "IN_FLEET",
    "AgeHistogram",
    "FleetAggregates",
    "age_histogram",
    "age_years",
    "build_fleet",
]

FLEET_STATUSES = ("in_stock", "deployed", "faulty", "swapped_out", "retired")
IN_FLEET = ("in_stock", "deployed", "faulty")
"""Terminals still in the fleet: the firmware table and the age histogram count these."""
STATUS_COLORS = {
    "in_stock": "#4c6ef5",
    "deployed": "#2f9e44",
    "faulty": "#e8590c",
    "swapped_out": "#adb5bd",
    "retired": "#495057",
}


@dataclass(frozen=True, slots=True)
class FleetAggregates:
    """What :func:`fleet.reports.queries.fleet_aggregates` reads."""

    counts: Sequence[tuple[str, str, str, int]] = ()
    """(model, firmware, status, terminals) for every terminal."""
    vendors: Mapping[str, str] = field(default_factory=dict)
    """Model → vendor, from the catalog."""
    firmware_eos: Mapping[tuple[str, str], date | None] = field(default_factory=dict)
    """(model, version) → end of support, from the catalog."""
    by_made: Sequence[tuple[date | None, int]] = ()
    """(manufactured on, terminals) for the terminals in the fleet (:data:`IN_FLEET`),
    which are also the ones the firmware table counts."""
    open_advisories: Mapping[tuple[str, str], Sequence[str]] = field(default_factory=dict)
    """(model, version) → the ids of its advisories that have no fix."""
    health: Sequence[tuple[str, int, int, Sequence[float | None]]] = ()
    """(model, terminals that reported health, tampered, mean share of rated life in % of
    reader, printer, battery) over the terminals in the fleet."""


def age_years(made: date, as_of: date) -> int:
    """Whole years from ``made`` to ``as_of`` (negative when made later).

    >>> age_years(date(2020, 3, 1), date(2026, 2, 28))
    5
    >>> age_years(date(2020, 3, 1), date(2026, 3, 1))
    6
    >>> age_years(date(2024, 2, 29), date(2025, 2, 28))
    0
    >>> age_years(date(2027, 1, 1), date(2026, 1, 1))
    -1
    """
    before = (as_of.month, as_of.day) < (made.month, made.day)
    return as_of.year - made.year - before


@dataclass(frozen=True, slots=True)
class AgeHistogram:
    buckets: tuple[int, ...]
    """Terminals per whole year of age: ``buckets[k]`` are ``k`` to ``k+1`` years old."""
    unknown: int = 0
    """No manufacture date."""
    not_yet_made: int = 0
    """Made after the as-of date."""


def age_histogram(by_made: Iterable[tuple[date | None, int]], as_of: date) -> AgeHistogram:
    """Counts per manufacture date → counts per year of age (empty years included).

    >>> h = age_histogram([(date(2025, 6, 1), 3), (date(2022, 1, 1), 2), (None, 1)],
    ...                   date(2026, 1, 1))
    >>> h.buckets, h.unknown, h.not_yet_made
    ((3, 0, 0, 0, 2), 1, 0)
    """
    counts: Counter[int] = Counter()
    unknown = later = 0
    for made, n in by_made:
        if made is None:
            unknown += n
            continue
        years = age_years(made, as_of)
        if years < 0:
            later += n
        else:
            counts[years] += n
    top = max(counts, default=-1)
    return AgeHistogram(tuple(counts[k] for k in range(top + 1)), unknown, later)


def _models(
    counts: Iterable[tuple[str, str, str, int]], vendors: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], Counter[str], Counter[tuple[str, str]]]:
    """Rows per model (a count per status and the total), terminals per status, and
    terminals in the fleet per (model, firmware)."""
    models: dict[str, dict[str, Any]] = {}
    by_status: Counter[str] = Counter()
    in_use: Counter[tuple[str, str]] = Counter()
    for model, version, status, n in sorted(counts):
        row = models.setdefault(
            model,
            {"model": model, "vendor": vendors.get(model, "")} | dict.fromkeys(FLEET_STATUSES, 0),
        )
        row[status] = row.get(status, 0) + n
        by_status[status] += n
        if status in IN_FLEET:
            in_use[(model, version)] += n
    for row in models.values():
        row["total"] = sum(row[s] for s in FLEET_STATUSES)
    return models, by_status, in_use


def _firmware(
    in_use: Mapping[tuple[str, str], int],
    firmware_eos: Mapping[tuple[str, str], date | None],
    advisories: Mapping[tuple[str, str], Sequence[str]],
    as_of: date,
) -> list[dict[str, Any]]:
    """Firmware in use; supported on ``as_of`` when before its end of support and without
    an advisory that has no fix (there is nothing to upgrade to: it must be replaced)."""
    rows: list[dict[str, Any]] = []
    for (model, version), n in sorted(in_use.items()):
        eos = firmware_eos.get((model, version))
        unfixed = list(advisories.get((model, version), ()))
        rows.append(
            {
                "model": model,
                "firmware": version,
                "terminals": n,
                "end_of_support": eos,
                "open_advisories": unfixed,
                "supported": (eos is None or eos > as_of) and not unfixed,
            }
        )
    return rows


def _summary(
    by_status: Mapping[str, int],
    models: int,
    firmware: Sequence[Mapping[str, Any]],
    ages: AgeHistogram,
    as_of: date,
) -> tuple[Fact, ...]:
    total = sum(by_status.values())
    in_fleet = sum(by_status.get(s, 0) for s in IN_FLEET)
    unsupported = sum(r["terminals"] for r in firmware if not r["supported"])
    return (
        Fact.count("terminals", "terminals", total),
        Fact.count("in_fleet", "in the fleet (in stock, deployed, faulty)", in_fleet),
        Fact.counts("by_status", "by status", {s: by_status.get(s, 0) for s in FLEET_STATUSES}),
        Fact.count("models", "models", models),
        Fact.count("firmware_versions", "firmware versions in use", len(firmware)),
        Fact.count("unsupported_firmware", f"on firmware unsupported on {as_of}", unsupported),
        Fact.count("unknown_age", "no manufacture date", ages.unknown),
        Fact.count("not_yet_made", f"made after {as_of}", ages.not_yet_made),
    )


def _charts(
    models: Mapping[str, Mapping[str, Any]], ages: AgeHistogram, buckets: Sequence[str], as_of: date
) -> tuple[Chart, ...]:
    names = tuple(models)
    composition = Chart(
        "composition",
        "Fleet composition by model",
        names,
        stacks(FLEET_STATUSES, STATUS_COLORS, [models[m] for m in names]),
        stacked=True,
        xlabel="model",
        ylabel="terminals",
        description="Terminals per model, stacked by status.",
    )
    age = Chart(
        "age",
        f"Age as of {as_of.isoformat()}",
        tuple(buckets),
        (series("terminals", ages.buckets, "#4c6ef5"),),
        xlabel="years since manufacture",
        ylabel="terminals",
        description="Terminals in the fleet per whole year since manufacture.",
    )
    return composition, age


def _sections(
    models: Sequence[Mapping[str, Any]],
    firmware: Sequence[Mapping[str, Any]],
    ages: Sequence[Mapping[str, Any]],
    as_of: date,
) -> tuple[Section, ...]:
    return (
        Section(
            "models",
            "Terminals by model and status",
            (
                Column("model"),
                Column("vendor"),
                *(Column(s, s.replace("_", " "), "int") for s in FLEET_STATUSES),
                Column("total", kind="int"),
            ),
            tuple(models),
        ),
        Section(
            "firmware",
            f"Firmware in the fleet, supported on {as_of.isoformat()}",
            columns(
                "model",
                "firmware",
                ("terminals", "terminals", "int"),
                ("end_of_support", "end of support", "date"),
                ("open_advisories", "advisories with no fix", "list"),
                ("supported", "supported", "bool"),
            ),
            tuple(firmware),
            note="terminals in stock, deployed or faulty; a version with an advisory that has "
            "no fix is not supported",
        ),
        Section(
            "age",
            "Age histogram (years since manufacture)",
            columns(
                ("bucket", "years"),
                ("from_years", "from", "int"),
                ("to_years", "to", "int"),
                ("terminals", "terminals", "int"),
            ),
            tuple(ages),
            note="terminals in stock, deployed or faulty; a bucket k-(k+1) holds those at "
            "least k and under k+1 whole years old",
        ),
    )


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share:.1f}%"


def _health_section(agg: FleetAggregates) -> tuple[Section, ...]:
    """Terminals' own health per model; no section when none reported any."""
    if not agg.health:
        return ()
    rows = tuple(
        {
            "model": model,
            "reporting": n,
            "tampered": tampered,
            **{
                f"{c}_share": _percent(x)
                for c, x in zip(("reader", "printer", "battery"), shares, strict=True)
            },
        }
        for model, n, tampered, shares in agg.health
    )
    return (
        Section(
            "health",
            "Health reported by the terminals",
            columns(
                "model",
                ("reporting", "reporting", "int"),
                ("tampered", "tampered", "int"),
                ("reader_share", "reader, mean % of rated"),
                ("printer_share", "printer, mean % of rated"),
                ("battery_share", "battery, mean % of rated"),
            ),
            rows,
            note="terminals in stock, deployed or faulty that reported health (sync or health "
            "poll): their latest report; a share is blank when the model's part is not rated",
        ),
    )


def build_fleet(agg: FleetAggregates, as_of: date) -> Report:
    """The fleet report on ``as_of`` from its aggregates."""
    models, by_status, in_use = _models(agg.counts, agg.vendors)
    firmware = _firmware(in_use, agg.firmware_eos, agg.open_advisories, as_of)
    ages = age_histogram(agg.by_made, as_of)
    buckets = [f"{k}-{k + 1}" for k in range(len(ages.buckets))]
    age_rows = [
        {"bucket": b, "from_years": k, "to_years": k + 1, "terminals": n}
        for k, (b, n) in enumerate(zip(buckets, ages.buckets, strict=True))
    ]
    return Report(
        name="fleet",
        title=f"Fleet as of {as_of.isoformat()}",
        as_of=as_of,
        params={"statuses_counted": list(IN_FLEET)},
        summary=_summary(by_status, len(models), firmware, ages, as_of),
        sections=(
            *_sections(list(models.values()), firmware, age_rows, as_of),
            *_health_section(agg),
        ),
        main="models",
        charts=_charts(models, ages, buckets, as_of),
    )
