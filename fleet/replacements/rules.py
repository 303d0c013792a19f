"""Which terminals must be replaced, why, how urgently, by when, and what it will cost.

The filtering runs **in the database**: one query joins terminals to their model, their
firmware, the model's successor and the open advisories, evaluates every rule as a
boolean column and returns only the terminals where at least one holds. Python then
words the reasons, ranks them and sums the forecast for the rows that came back.

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
==================  ===========================================================

Priority: **P1** when a security or compliance reason is already in effect (PTS
expired, model or firmware unsupported, open advisory); **P2** when the terminal is
over age or faults, or its replace-by date is within ``urgent_days``; **P3** otherwise.
The replace-by date is the earliest reason's date (today when that is already past).
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, and_, false, func, or_, select

from fleet.core.models import ADVISORIES, ADVISORY_FIRMWARE, FIRMWARE, MODELS, TERMINALS
from fleet.core.money import format_minor as format_money
from fleet.core.policy import ReplacementPolicy
from fleet.core.values import add_years

__all__ = [
    "REASONS",
    "Forecast",
    "Reason",
    "Replacement",
    "flag",
    "format_money",
    "quarter",
]

REASONS = ("age", "model-eos", "pts", "firmware-eos", "advisory", "capability", "faults")
_SECURITY = frozenset({"pts", "model-eos", "firmware-eos", "advisory"})


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
            "cost": format_money(self.cost, self.currency),
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
                "cost": format_money(amount, currency),
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


def _query(policy: ReplacementPolicy, as_of: date, horizon_end: date) -> Any:
    t, m, f = TERMINALS, MODELS, FIRMWARE
    succ = MODELS.alias("successor_model")
    open_adv = (
        select(
            ADVISORY_FIRMWARE.c.model,
            ADVISORY_FIRMWARE.c.version,
            func.count().label("n"),
        )
        .join(
            ADVISORIES,
            and_(
                ADVISORIES.c.id == ADVISORY_FIRMWARE.c.advisory,
                ADVISORIES.c.model == ADVISORY_FIRMWARE.c.model,
            ),
        )
        .where(ADVISORIES.c.fixed_in.is_(None))
        .group_by(ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version)
        .subquery("open_advisory")
    )
    # A terminal reaches the age limit by the horizon when made on or before this day.
    made_by = add_years(horizon_end, -policy.max_age_years)
    rules = {
        "age": func.coalesce(t.c.manufactured_on <= made_by, false()),
        "model-eos": func.coalesce(m.c.end_of_support <= horizon_end, false()),
        "pts": func.coalesce(m.c.pts_expires_on <= horizon_end, false()),
        "firmware-eos": func.coalesce(f.c.end_of_support <= horizon_end, false()),
        "advisory": open_adv.c.n.is_not(None),
        "capability": or_(false(), *[~m.c[cap] for cap in policy.require]),
        "faults": t.c.fault_count >= policy.fault_threshold,
    }
    columns = [
        t.c.serial,
        t.c.model,
        t.c.firmware,
        t.c.merchant_id,
        t.c.status,
        t.c.manufactured_on,
        t.c.fault_count,
        m.c.end_of_support.label("model_eos"),
        m.c.pts_version,
        m.c.pts_expires_on,
        f.c.end_of_support.label("firmware_eos"),
        m.c.unit_price,
        m.c.currency,
        succ.c.code.label("successor"),
        succ.c.unit_price.label("successor_price"),
        succ.c.currency.label("successor_currency"),
        *[rule.label(f"r_{code.replace('-', '_')}") for code, rule in rules.items()],
        *[m.c[cap].label(f"cap_{cap}") for cap in policy.require],
    ]
    return (
        select(*columns)
        .select_from(t)
        .join(m, m.c.code == t.c.model)
        .outerjoin(f, and_(f.c.model == t.c.model, f.c.version == t.c.firmware))
        .outerjoin(succ, succ.c.code == m.c.successor)
        .outerjoin(
            open_adv, and_(open_adv.c.model == t.c.model, open_adv.c.version == t.c.firmware)
        )
        .where(t.c.status.in_(policy.statuses), or_(*rules.values()))
    )


def _open_advisories(engine: Engine) -> dict[tuple[str, str], list[str]]:
    """(model, firmware) → ids of its open advisories: catalog-sized, for the wording."""
    stmt = (
        select(ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version, ADVISORIES.c.id)
        .join(
            ADVISORIES,
            and_(
                ADVISORIES.c.id == ADVISORY_FIRMWARE.c.advisory,
                ADVISORIES.c.model == ADVISORY_FIRMWARE.c.model,
            ),
        )
        .where(ADVISORIES.c.fixed_in.is_(None))
        .order_by(ADVISORIES.c.id)
    )
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for model, version, ident in conn.execute(stmt):
            found[(model, version)].append(ident)
    return found


def flag(
    engine: Engine,
    policy: ReplacementPolicy,
    as_of: date,
    horizon_days: int | None = None,
) -> Iterator[Replacement]:
    """The terminals due for replacement as of ``as_of``, streamed in serial order."""
    horizon = policy.horizon_days if horizon_days is None else horizon_days
    horizon_end = as_of + timedelta(days=horizon)
    urgent_end = as_of + timedelta(days=policy.urgent_days)
    advisories = _open_advisories(engine)
    stmt = _query(policy, as_of, horizon_end).order_by(TERMINALS.c.serial)
    with engine.connect() as conn:
        result = conn.execute(stmt.execution_options(yield_per=10_000))
        replacement = _Replacer(
            policy, as_of, horizon_end, urgent_end, advisories, list(result.keys())
        )
        for row in result:
            yield replacement(row)


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
)
"""Columns of the flagging query read for every row (by position: a row's attributes cost
ten times more). The others come from the catalog and are functions of the terminal's
model and firmware (its model, firmware, successor and open advisories), the same for
every terminal of that pair in the one statement."""


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


class _Replacer:
    """Rows of the flagging query → :class:`Replacement`, worded once per distinct input.

    The reasons of a row are worded from its catalog columns (shared by all terminals of a
    model and firmware), its manufacture date (``age``) and its fault count (``faults``).
    Each is worded the first time it is met and the (immutable) :class:`Reason` reused,
    so a million rows cost dictionary look-ups rather than a million f-strings.
    ``columns`` are the query's, in order.
    """

    def __init__(
        self,
        policy: ReplacementPolicy,
        as_of: date,
        horizon_end: date,
        urgent_end: date,
        advisories: dict[tuple[str, str], list[str]],
        columns: list[str],
    ) -> None:
        self.policy = policy
        self.as_of = as_of
        self.horizon_end = horizon_end
        self.urgent_end = urgent_end
        self.advisories = advisories
        self._cells = operator.itemgetter(*[columns.index(name) for name in _PER_TERMINAL])
        self._catalog: dict[tuple[str, str], _CatalogReasons] = {}
        self._age: dict[date, Reason] = {}
        self._faults: dict[int, Reason] = {}

    def _reason(self, code: str, due: date, now: str, later: str) -> Reason:
        effect = due <= self.as_of
        return Reason(code, now if effect else later, due, effect)

    def _catalog_reasons(self, row: Any) -> _CatalogReasons:
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
            any(r.in_effect and r.code in _SECURITY for r in reasons),
            new_model,
            cost,
            currency,
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

    def __call__(self, row: Any) -> Replacement:
        serial, model, firmware, merchant, status, made, count, over_age, over_faults = self._cells(
            row
        )
        part = self._catalog.get((model, firmware))
        if part is None:
            part = self._catalog[(model, firmware)] = self._catalog_reasons(row)
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
        assert due is not None  # the query returns only rows where a rule holds
        replace_by = max(self.as_of, due)
        if part.security:
            priority = 1
        elif pressing or replace_by <= self.urgent_end:
            priority = 2
        else:
            priority = 3
        return Replacement(
            serial,
            model,
            firmware,
            merchant,
            status,
            reasons,
            priority,
            replace_by,
            part.model,
            part.cost,
            part.currency,
        )
