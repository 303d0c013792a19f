"""Which terminals must be replaced, why, how urgently, by when, and what it will cost:
the rules, worded and ranked. Pure: the rows come from the one flagging query
(:mod:`fleet.replacements.query`), which evaluates every rule in the database.

Rules (every one that applies is reported):

==================  ===========================================================
code                the terminal is due when
==================  ===========================================================
``age``             it reaches ``max_age_years`` since manufacture by the horizon
``model-eos``       its model's end of support is passed or within the horizon
``pts``             its model's PCI PTS approval is expired or expires in the horizon
``firmware-eos``    its firmware's end of support is passed or within the horizon
``advisory``        its firmware has an open advisory with no fixed version
``capability``      its model lacks a capability the policy requires
``faults``          it has ``fault_threshold`` recorded faults or more
``key``             it reported a MAC key version the fleet never issued (a leaked
                    master key was used to re-key it: it may be compromised)
``tamper``          its latest health report says the tamper switch tripped
``reader``          its reader (chip + magstripe reads), printer (lines) or battery
``printer``         (charge cycles) is at or past ``wear_percent`` of its model's
``battery``         rated life, or the least-squares line of that counter over its
                    history (``forecast_min_samples`` samples or more) reaches it by
                    the horizon: due that day (:mod:`fleet.replacements.wear`)
==================  ===========================================================

Priority (:func:`priority`): **P1** when a security or compliance reason is already in
effect (PTS expired, model or firmware unsupported, open advisory, a key never issued, a
tripped tamper switch); **P2** when the terminal is over age or faults, or a wear counter
is past its share of rated life, or its replace-by date is within ``urgent_days``; **P3**
otherwise. The replace-by date is the earliest reason's date (today when that is already
past). The forecast (:class:`Forecast`) sums units and cost per quarter of that date.

Over 400 lines because every replacement rule lives here, pure, in the order docs/fleet.md
lists them: one module reads as the one list of rules.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fleet.core.errors import ConflictError
from fleet.core.money import format_minor
from fleet.core.policy import ReplacementPolicy
from fleet.core.values import add_years
from fleet.replacements.wear import reaches

_UNITS = {"reader": "reads", "printer": "lines", "battery": "cycles"}

__all__ = [
    "REASONS",
    "SECURITY_REASONS",
    "Forecast",
    "Reason",
    "Replacement",
    "Replacer",
    "priority",
    "quarter",
]

REASONS = (
    "age", "model-eos", "pts", "firmware-eos", "advisory", "capability", "faults", "key",
    "tamper", "reader", "printer", "battery",
)  # fmt: skip
SECURITY_REASONS = frozenset({"pts", "model-eos", "firmware-eos", "advisory", "key", "tamper"})
"""Reasons of security or compliance: one in effect makes a terminal P1."""


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    detail: str
    due: date
    """When the reason takes (or took) effect."""
    in_effect: bool


@dataclass(frozen=True, slots=True)
class Replacement:
    serial: str
    model: str
    firmware: str
    merchant_id: str | None
    status: str
    reasons: tuple[Reason, ...]
    priority: int
    replace_by: date
    replacement_model: str
    cost: int
    """Minor units of ``currency``: the price of the replacement model."""
    currency: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "model": self.model,
            "firmware": self.firmware,
            "merchant_id": self.merchant_id,
            "status": self.status,
            "priority": f"P{self.priority}",
            "replace_by": self.replace_by.isoformat(),
            "reasons": [
                {
                    "code": r.code,
                    "detail": r.detail,
                    "due": r.due.isoformat(),
                    "in_effect": r.in_effect,
                }
                for r in self.reasons
            ],
            "replacement_model": self.replacement_model,
            "cost": format_minor(self.cost, self.currency),
            "cost_minor": self.cost,
            "currency": self.currency,
        }

    def sort_key(self) -> tuple[int, date, str]:
        return (self.priority, self.replace_by, self.serial)


def quarter(day: date) -> str:
    """The calendar quarter of a day.

    >>> quarter(date(2026, 11, 23))
    '2026-Q4'
    """
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


@dataclass
class Forecast:
    """Units and cost per quarter of the replace-by date, per currency."""

    per: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(quarter, currency) → [units, cost in minor units]."""

    def add(self, r: Replacement) -> None:
        slot = self.per.setdefault((quarter(r.replace_by), r.currency), [0, 0])
        slot[0] += 1
        slot[1] += r.cost

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "quarter": q,
                "units": units,
                "cost": format_minor(amount, currency),
                "cost_minor": amount,
                "currency": currency,
            }
            for (q, currency), (units, amount) in sorted(self.per.items())
        ]

    @property
    def total_units(self) -> int:
        return sum(units for units, _ in self.per.values())

    def total_cost(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for (_, currency), (_, amount) in sorted(self.per.items()):
            totals[currency] += amount
        return dict(totals)

    def total_units_in(self, currency: str) -> int:
        return sum(u for (_, c), (u, _) in self.per.items() if c == currency)


def priority(*, security: bool, pressing: bool, replace_by: date, urgent_end: date) -> int:
    """1, 2 or 3 (see the module's notes): ``security`` when a security or compliance
    reason is in effect, ``pressing`` when the terminal is already over age or faults.

    >>> priority(security=False, pressing=False, replace_by=date(2027, 1, 1),
    ...          urgent_end=date(2026, 12, 31))
    3
    >>> priority(security=False, pressing=False, replace_by=date(2026, 12, 31),
    ...          urgent_end=date(2026, 12, 31))
    2
    """
    if security:
        return 1
    if pressing or replace_by <= urgent_end:
        return 2
    return 3


_HEALTH = ("r_tamper", "r_reader", "r_printer", "r_battery")
"""The health rules' columns, read for every row; the health values only when one holds."""

_PER_TERMINAL = (
    "serial",
    "model",
    "firmware",
    "merchant_id",
    "status",
    "manufactured_on",
    "fault_count",
    "r_age",
    "r_faults",
    "r_key",
    "key_version",
    "key_next",
)
"""Columns of the flagging query read for every row (by position: a row's attributes cost
ten times more). The query sends no catalog column: those are functions of the terminal's
model and firmware (its model, firmware, successor and open advisories), the same for
every terminal of that pair, read once per pair from the catalog statement's rows."""


@dataclass(frozen=True, slots=True)
class _CatalogReasons:
    """What a terminal's model and firmware alone make of it."""

    reasons: tuple[Reason, ...]
    """``model-eos``, ``pts``, ``firmware-eos``, ``advisory``, ``capability``, in order."""
    due: date | None
    """The earliest of their dates."""
    security: bool
    """A security or compliance reason is in effect (P1)."""
    model: str
    cost: int
    currency: str
    """The replacement: the successor model, or the same model, and its price."""
    rated: dict[str, Any]
    """Wear counter → the model's rated life (None: not rated)."""


class Replacer:
    """Rows of the flagging query → :class:`Replacement`, worded once per distinct input.

    The reasons of a row are worded from its model and firmware's catalog row (shared by
    all terminals of the pair), its manufacture date (``age``), its fault count
    (``faults``), its key versions and its health. Each is worded the first time it is met
    and the (immutable) :class:`Reason` reused, so a million rows cost dictionary look-ups
    rather than a million f-strings. ``columns`` are the flagging query's, in order;
    ``catalog`` the catalog statement's rows per (model, firmware)
    (:func:`fleet.replacements.query.catalog_statement`); ``advisories`` the open
    advisories' ids per (model, firmware), for the wording.
    """

    def __init__(
        self,
        policy: ReplacementPolicy,
        as_of: date,
        horizon_end: date,
        urgent_end: date,
        advisories: dict[tuple[str, str], list[str]],
        columns: list[str],
        catalog: Mapping[tuple[str, str], Any],
    ) -> None:
        self.policy = policy
        self.as_of = as_of
        self.horizon_end = horizon_end
        self.urgent_end = urgent_end
        self.advisories = advisories
        self.catalog = catalog
        self._cells = operator.itemgetter(*[columns.index(name) for name in _PER_TERMINAL])
        self._health = operator.itemgetter(*[columns.index(name) for name in _HEALTH])
        self._tampered_at = columns.index("tampered_at")
        self._wear_cells = {
            c: operator.itemgetter(
                *[columns.index(f"{c}_{w}") for w in ("value", "n", "slope", "intercept")]
            )
            for c in ("reader", "printer", "battery")
        }
        self._catalog: dict[tuple[str, str], _CatalogReasons] = {}
        self._age: dict[date, Reason] = {}
        self._faults: dict[int, Reason] = {}

    def _reason(self, code: str, due: date, now: str, later: str) -> Reason:
        effect = due <= self.as_of
        return Reason(code, now if effect else later, due, effect)

    def _catalog_reasons(self, model: str, firmware: str) -> _CatalogReasons:
        row = self.catalog.get((model, firmware))
        if row is None:  # the flagging query joined it: the catalog changed in between
            raise ConflictError(
                f"model {model} firmware {firmware} is not in the catalog read for this "
                "flagging (it changed meanwhile): flag again"
            )
        policy, reason = self.policy, self._reason
        reasons: list[Reason] = []
        if row.r_model_eos:
            d = row.model_eos
            reasons.append(
                reason(
                    "model-eos",
                    d,
                    f"model {row.model} unsupported since {d}",
                    f"model {row.model} support ends {d}",
                )
            )
        if row.r_pts:
            d = row.pts_expires_on
            pts = f"PCI PTS {row.pts_version} approval".replace("  ", " ")
            reasons.append(reason("pts", d, f"{pts} expired {d}", f"{pts} expires {d}"))
        if row.r_firmware_eos:
            d = row.firmware_eos
            fw = f"firmware {row.firmware}"
            reasons.append(
                reason("firmware-eos", d, f"{fw} unsupported since {d}", f"{fw} support ends {d}")
            )
        if row.r_advisory:
            ids = ", ".join(self.advisories.get((row.model, row.firmware), [])) or "advisory"
            reasons.append(
                reason(
                    "advisory",
                    self.as_of,
                    f"firmware {row.firmware}: open {ids}, no fix for {row.model}",
                    "",
                )
            )
        if row.r_capability:
            missing = [c for c in policy.require if not getattr(row, f"cap_{c}")]
            lacks = ", ".join(c.replace("_", " ") for c in missing)
            reasons.append(
                Reason("capability", f"model {row.model} lacks {lacks}", self.horizon_end, False)
            )
        if row.successor is not None:
            new_model, cost, currency = row.successor, row.successor_price, row.successor_currency
        else:
            new_model, cost, currency = row.model, row.unit_price, row.currency
        return _CatalogReasons(
            tuple(reasons),
            min((r.due for r in reasons), default=None),
            any(r.in_effect and r.code in SECURITY_REASONS for r in reasons),
            new_model,
            cost,
            currency,
            {c: getattr(row, f"{c}_rated") for c in _UNITS},
        )

    def _age_reason(self, made: date) -> Reason:
        years = self.policy.max_age_years
        due = add_years(made, years)
        limit = f"{years}-year limit"
        return self._reason(
            "age", due, f"over the {limit} since {due}", f"reaches the {limit} on {due}"
        )

    def _faults_reason(self, count: int) -> Reason:
        threshold = self.policy.fault_threshold
        return self._reason("faults", self.as_of, f"{count} faults (threshold {threshold})", "")

    def _key_reason(self, version: int | None, nxt: int) -> Reason:
        held = f"key version {version}" + (f" (next {nxt})" if nxt else "")
        detail = f"reported {held}, which the fleet never issued: it may be compromised"
        return Reason("key", detail, self.as_of, True)

    def _tamper_reason(self, at: datetime | None) -> Reason:
        when = f"at {at.isoformat(timespec='minutes')}" if at else "at an unknown time"
        return Reason(
            "tamper", f"tamper switch tripped {when}: it may be compromised", self.as_of, True
        )

    def _wear_reason(self, row: Any, counter: str, rated: int) -> Reason | None:
        value, n, rate, intercept = self._wear_cells[counter](row)
        percent = self.policy.wear_percent
        unit = _UNITS[counter]
        if value * 100 >= rated * percent:
            of = f"{value:,} of {rated:,} rated {unit} ({100 * value / rated:.0f}%"
            return Reason(counter, f"{counter} at {of}, limit {percent}%)", self.as_of, True)
        if n < self.policy.forecast_min_samples:
            return None
        forecast = reaches(rate, intercept, rated * percent / 100)
        if forecast is None or forecast > self.horizon_end:
            return None
        detail = (
            f"{counter} reaches {percent}% of {rated:,} rated {unit} about {forecast} "
            f"(now {value:,}, {100 * value / rated:.0f}%); {rate:,.0f} {unit}/day over {n} samples"
        )
        return Reason(counter, detail, forecast, False)

    def _health_reasons(
        self, row: Any, flags: tuple[Any, ...], rated: dict[str, Any]
    ) -> list[Reason]:
        tamper, *wear = flags
        found = [self._tamper_reason(row[self._tampered_at])] if tamper else []
        for counter, holds in zip(("reader", "printer", "battery"), wear, strict=True):
            if holds:
                reason = self._wear_reason(row, counter, rated[counter])
                if reason is not None:
                    found.append(reason)
        return found

    def __call__(self, row: Any) -> Replacement | None:
        (serial, model, firmware, merchant, status, made, count, over_age, over_faults,
         foreign_key, key_version, key_next) = self._cells(row)  # fmt: skip
        part = self._catalog.get((model, firmware))
        if part is None:
            part = self._catalog[(model, firmware)] = self._catalog_reasons(model, firmware)
        reasons = part.reasons
        due = part.due
        pressing = False  # over age, or over the fault threshold, already
        if over_age:
            age = self._age.get(made)
            if age is None:
                age = self._age[made] = self._age_reason(made)
            reasons = (age, *reasons)
            if due is None or age.due < due:
                due = age.due
            pressing = age.in_effect
        if over_faults:
            faults = self._faults.get(count)
            if faults is None:
                faults = self._faults[count] = self._faults_reason(count)
            reasons = (*reasons, faults)
            if due is None or faults.due < due:
                due = faults.due
            pressing = True
        security = part.security
        if foreign_key:  # a key the fleet never issued: compromised, due now
            reasons = (*reasons, self._key_reason(key_version, key_next))
            due, security = self.as_of, True
        health = self._health(row)
        if any(health):  # a tripped tamper switch, or a worn part
            for reason in self._health_reasons(row, health, part.rated):
                reasons = (*reasons, reason)
                if due is None or reason.due < due:
                    due = reason.due
                security = security or reason.code == "tamper"
                pressing = pressing or (reason.in_effect and reason.code != "tamper")
        if due is None:  # only a wear line the SQL kept at a float's edge
            return None
        replace_by = max(self.as_of, due)
        return Replacement(
            serial,
            model,
            firmware,
            merchant,
            status,
            reasons,
            priority(
                security=security,
                pressing=pressing,
                replace_by=replace_by,
                urgent_end=self.urgent_end,
            ),
            replace_by,
            part.model,
            part.cost,
            part.currency,
        )
