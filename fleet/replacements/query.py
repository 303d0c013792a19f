"""The one SQL query of the replacements: every rule evaluated in the database.

One statement joins terminals to their model, their firmware, the open advisories and
their latest health with its wear lines (``terminal_health``), evaluates every rule
(:mod:`fleet.replacements.rules`) and returns only the terminals where at least one
holds, with their own columns and rules; the catalog's part, the same for every terminal
of a model and firmware, is read once per pair (:func:`catalog_statement`, catalog-sized).
:func:`flag` streams the rows through the pure :class:`~fleet.replacements.rules.Replacer`,
which words the reasons and ranks them. A million terminals take seconds (``make bench``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)

from fleet.core.models import (
    ADVISORIES,
    ADVISORY_FIRMWARE,
    FIRMWARE,
    ISSUED_KEYS,
    MODELS,
    TERMINAL_HEALTH,
    TERMINALS,
)
from fleet.core.policy import ReplacementPolicy
from fleet.core.prefetch import ahead
from fleet.core.values import add_years
from fleet.replacements.rules import Replacement, Replacer
from fleet.replacements.wear import days

__all__ = ["catalog_statement", "flag", "flag_statement", "open_advisories"]


def _open_advisories(*columns: Any) -> Select[Any]:
    """``columns`` of the (advisory, firmware version) pairs whose advisory has no fix."""
    return (
        select(*columns)
        .join(
            ADVISORIES,
            and_(
                ADVISORIES.c.id == ADVISORY_FIRMWARE.c.advisory,
                ADVISORIES.c.model == ADVISORY_FIRMWARE.c.model,
            ),
        )
        .where(ADVISORIES.c.fixed_in.is_(None))
    )


def _foreign_key() -> ColumnElement[bool]:
    """The terminal reported a key version (current or next) the fleet never issued; false
    while no version is registered (nothing to tell them by)."""
    t, issued = TERMINALS, select(ISSUED_KEYS.c.version)
    return and_(
        exists(issued),
        or_(
            func.coalesce(t.c.key_version.not_in(issued), false()),
            and_(t.c.key_next > 0, t.c.key_next.not_in(issued)),
        ),
    )


WEAR: dict[str, tuple[str, str]] = {
    "reader": ("reader", "reader_rated_cycles"),
    "printer": ("printer_lines", "printer_rated_lines"),
    "battery": ("battery_cycles", "battery_rated_cycles"),
}
"""Wear counter → (its latest value in ``terminal_health``, its rated life in the catalog)."""


def _wear(counter: str, policy: ReplacementPolicy, horizon_end: date) -> ColumnElement[bool]:
    """The counter is past ``wear_percent`` of its model's rated life, or its least-squares
    line (on ``forecast_min_samples`` samples or more) gets there by ``horizon_end``:
    :func:`fleet.replacements.wear.wear_state` in SQL, on the slope and intercept kept in
    ``terminal_health``.

    With T = rated · wear_percent / 100 and H the days since 1970 at the end of the
    horizon's last day, the line (slope b > 0, intercept a) reaches T before H when
    (T − a) / b < H: the quotient :func:`fleet.replacements.wear.reaches` takes the floor
    of, computed in the same order, so the SQL and the wording agree on every row (the
    division sits in a CASE: PostgreSQL evaluates it only for a rising line)."""
    h, m = TERMINAL_HEALTH, MODELS
    value, rated = h.c[WEAR[counter][0]], m.c[WEAR[counter][1]]
    slope, intercept = h.c[f"{counter}_slope"], h.c[f"{counter}_intercept"]
    threshold = rated * policy.wear_percent / literal(100.0)
    end = literal(days(datetime.combine(horizon_end + timedelta(days=1), datetime.min.time(), UTC)))
    reaches = and_(
        h.c[f"{counter}_n"] >= policy.forecast_min_samples,
        case((slope > 0, (threshold - intercept) / slope), else_=None) < end,
    )
    return func.coalesce(
        and_(
            rated.is_not(None),
            value.is_not(None),
            or_(value * 100 >= rated * policy.wear_percent, reaches),
        ),
        false(),
    )


def _open_advisory_counts() -> Any:
    """(model, version) → how many open advisories: a subquery."""
    return (
        _open_advisories(
            ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version, func.count().label("n")
        )
        .group_by(ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version)
        .subquery("open_advisory")
    )


def _catalog_rules(
    policy: ReplacementPolicy, horizon_end: date, open_adv: Any
) -> dict[str, ColumnElement[bool]]:
    """The rules a terminal's model and firmware alone decide (the same SQL in the flagging
    query's WHERE and in :func:`catalog_statement`)."""
    m, f = MODELS, FIRMWARE
    return {
        "model-eos": func.coalesce(m.c.end_of_support <= horizon_end, false()),
        "pts": func.coalesce(m.c.pts_expires_on <= horizon_end, false()),
        "firmware-eos": func.coalesce(f.c.end_of_support <= horizon_end, false()),
        "advisory": open_adv.c.n.is_not(None),
        "capability": or_(false(), *[~m.c[cap] for cap in policy.require]),
    }


def _label(code: str) -> str:
    return f"r_{code.replace('-', '_')}"


def catalog_statement(policy: ReplacementPolicy, horizon_end: date) -> Select[Any]:
    """One row per (model, firmware version) of the catalog: the catalog rules as boolean
    columns ``r_<code>`` and the catalog columns they are worded from, the replacement
    (successor or same model) and its price, and each wear counter's rated life. The
    flagging query sends only a terminal's serial, model and firmware and its own columns;
    the :class:`~fleet.replacements.rules.Replacer` looks the rest up here once per pair."""
    m, f = MODELS, FIRMWARE
    succ = MODELS.alias("successor_model")
    open_adv = _open_advisory_counts()
    rules = _catalog_rules(policy, horizon_end, open_adv)
    return (
        select(
            m.c.code.label("model"),
            f.c.version.label("firmware"),
            *[rule.label(_label(code)) for code, rule in rules.items()],
            m.c.end_of_support.label("model_eos"),
            m.c.pts_version,
            m.c.pts_expires_on,
            f.c.end_of_support.label("firmware_eos"),
            m.c.unit_price,
            m.c.currency,
            succ.c.code.label("successor"),
            succ.c.unit_price.label("successor_price"),
            succ.c.currency.label("successor_currency"),
            *[m.c[cap].label(f"cap_{cap}") for cap in policy.require],
            *[m.c[rated].label(f"{c}_rated") for c, (_, rated) in WEAR.items()],
        )
        .select_from(m)
        .join(f, f.c.model == m.c.code)
        .outerjoin(succ, succ.c.code == m.c.successor)
        .outerjoin(open_adv, and_(open_adv.c.model == m.c.code, open_adv.c.version == f.c.version))
    )


def flag_statement(
    policy: ReplacementPolicy,
    horizon_end: date,
    *,
    in_serial_order: bool = False,
    catalog_rules: bool = False,
) -> Select[Any]:
    """The flagging query: every terminal (of the policy's statuses) for which some rule
    holds by ``horizon_end``, with the per-terminal rules as boolean columns ``r_<code>``
    and the terminal's own columns the rules are worded from; the catalog's part, the same
    for every terminal of a model and firmware, is :func:`catalog_statement`'s (with
    ``catalog_rules``, the catalog rules' columns are returned too, for one terminal).
    ``in_serial_order``: the status test is kept off the indexes, so the database walks
    terminals in serial order and a page can stop early (else it would gather and sort
    every flagged terminal first)."""
    t, m, f = TERMINALS, MODELS, FIRMWARE
    open_adv = _open_advisory_counts()
    # A terminal reaches the age limit by the horizon when made on or before this day.
    made_by = add_years(horizon_end, -policy.max_age_years)
    catalog = _catalog_rules(policy, horizon_end, open_adv)
    rules = {
        "age": func.coalesce(t.c.manufactured_on <= made_by, false()),
        **catalog,
        "faults": t.c.fault_count >= policy.fault_threshold,
        "key": _foreign_key(),
        "tamper": func.coalesce(TERMINAL_HEALTH.c.tamper, false()),
        **{counter: _wear(counter, policy, horizon_end) for counter in WEAR},
    }
    status = func.coalesce(t.c.status, "") if in_serial_order else t.c.status
    columns = [
        t.c.serial,
        t.c.model,
        t.c.firmware,
        t.c.merchant_id,
        t.c.status,
        t.c.manufactured_on,
        t.c.fault_count,
        t.c.key_version,
        t.c.key_next,
        *[
            rule.label(_label(code))
            for code, rule in rules.items()
            if catalog_rules or code not in catalog
        ],
        TERMINAL_HEALTH.c.tampered_at,
        *[TERMINAL_HEALTH.c[value].label(f"{c}_value") for c, (value, _) in WEAR.items()],
        *[TERMINAL_HEALTH.c[f"{c}_{what}"] for c in WEAR for what in ("n", "slope", "intercept")],
    ]
    return (
        select(*columns)
        .select_from(t)
        .join(m, m.c.code == t.c.model)
        .outerjoin(f, and_(f.c.model == t.c.model, f.c.version == t.c.firmware))
        .outerjoin(TERMINAL_HEALTH, TERMINAL_HEALTH.c.serial == t.c.serial)
        .outerjoin(
            open_adv, and_(open_adv.c.model == t.c.model, open_adv.c.version == t.c.firmware)
        )
        .where(status.in_(policy.statuses), or_(*rules.values()))
    )


def open_advisories(engine: Engine) -> dict[tuple[str, str], list[str]]:
    """(model, firmware) → ids of its open advisories: catalog-sized, for the wording."""
    stmt = _open_advisories(
        ADVISORY_FIRMWARE.c.model, ADVISORY_FIRMWARE.c.version, ADVISORIES.c.id
    ).order_by(ADVISORIES.c.id)
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
    *,
    after: str | None = None,
    model: str | None = None,
) -> Iterator[Replacement]:
    """The terminals due for replacement as of ``as_of``, streamed in serial order (only
    those whose serial sorts after ``after``, of ``model``, when given: a keyset page
    starts where the last one stopped; ``after=""`` starts a first page)."""
    horizon = policy.horizon_days if horizon_days is None else horizon_days
    horizon_end = as_of + timedelta(days=horizon)
    urgent_end = as_of + timedelta(days=policy.urgent_days)
    advisories = open_advisories(engine)
    page = after is not None
    stmt = flag_statement(policy, horizon_end, in_serial_order=page).order_by(TERMINALS.c.serial)
    if page:
        stmt = stmt.where(TERMINALS.c.serial > after)
    if model is not None:
        stmt = stmt.where(TERMINALS.c.model == model)
    with engine.connect() as conn:
        # catalog-sized, read first in the same transaction (one snapshot on SQLite)
        catalog = {
            (row.model, row.firmware): row
            for row in conn.execute(catalog_statement(policy, horizon_end))
        }
        result = conn.execute(stmt.execution_options(yield_per=200 if page else 10_000))
        replacement = Replacer(
            policy, as_of, horizon_end, urgent_end, advisories, list(result.keys()), catalog
        )
        # the whole fleet: the server computes the next batch while this one is worded
        for row in result if page else ahead(result):
            found = replacement(row)
            if found is not None:  # None: a wear line the SQL kept at a float's edge
                yield found
