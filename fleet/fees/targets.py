"""Targets: which published table each merchant (and so each terminal) should have.

A merchant's **target** is the newest published table that **covers** it: whose group
includes it and whose currency is the merchant's (legal tender in the merchant's country,
:func:`fleet.core.money.countries_using`; a merchant with no country, whose currency the
fleet does not know, is covered by the group alone). A CNY table with no ``[applies]``
applies to merchants in China, never to a bakery in Dublin: no push, no notice quoting a
foreign currency. A terminal's target is its merchant's. It is derived here and only here,
**in SQL**: a group and a currency become a predicate on the merchant row
(:func:`covers`), and the target a ``CASE`` over the published tables, newest first
(:func:`target_expr`). Asking for one merchant's target is one indexed query; no caller
scans the fleet in Python.

Tags are a JSON list on the merchant: a tag criterion is an ``EXISTS`` over
``json_each`` (SQLite) or ``json_array_elements_text`` (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
)

from fleet.core.errors import ConflictError
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.core.money import countries_using
from fleet.fees.group import Group
from fleet.fees.tables import Published, load_tables, published

__all__ = [
    "LIVE",
    "covers",
    "currency_clause",
    "foreign_merchants",
    "group_clause",
    "merchants_in",
    "push_targets",
    "target_counts",
    "target_expr",
    "target_of",
    "targeted_terminals",
    "targets",
]

LIVE = ("deployed", "faulty")
"""Terminals a push or a rollout reaches."""


def _has_tag(tags: tuple[str, ...], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        each = func.json_array_elements_text(MERCHANTS.c.tags).table_valued("value")
        each = each.render_derived()  # AS anon(value): name the set's one column
        return exists(select(literal(1)).select_from(each).where(each.c.value.in_(tags)))
    items = func.json_each(MERCHANTS.c.tags).table_valued("value")
    return exists(select(literal(1)).select_from(items).where(items.c.value.in_(tags)))


def group_clause(group: Group, dialect: str) -> ColumnElement[bool]:
    """The SQL predicate, on the merchant table, of ``group.includes(mcc, region, tags)``."""
    if group.everyone:
        return true()
    parts: list[ColumnElement[bool]] = []
    if group.mcc:
        parts.append(or_(*(MERCHANTS.c.mcc.between(lo, hi) for lo, hi in group.mcc)))
    if group.regions:
        parts.append(MERCHANTS.c.region.in_(group.regions))
    if group.tags:
        parts.append(_has_tag(group.tags, dialect))
    return and_(*parts)


def currency_clause(currency: int | str) -> ColumnElement[bool]:
    """The SQL predicate "this merchant is paid in ``currency``" (or its country, and so its
    currency, is unknown)."""
    countries = countries_using(currency)
    return or_(MERCHANTS.c.country.is_(None), MERCHANTS.c.country.in_(countries))


def covers(group: Group, currency: int | str, dialect: str) -> ColumnElement[bool]:
    """The SQL predicate of the merchants a table of ``group`` in ``currency`` applies to."""
    return and_(group_clause(group, dialect), currency_clause(currency))


def target_expr(tables: Mapping[int, Published], dialect: str) -> ColumnElement[Any]:
    """The version of a merchant row's target table (NULL when no table covers it)."""
    whens: list[tuple[ColumnElement[bool], int]] = []
    everyone: set[int] = set()  # currencies a newer table covers whole: older ones unreached
    for version in sorted(tables, reverse=True):
        group, currency = tables[version].group, tables[version].table.currency
        if currency in everyone:
            continue
        whens.append((covers(group, currency, dialect), version))
        if group.everyone:
            everyone.add(currency)
    if not whens:
        return null()
    return case(*whens, else_=null())


def _tables(conn: Connection, tables: Mapping[int, Published] | None) -> Mapping[int, Published]:
    return load_tables(conn) if tables is None else tables


def target_of(
    conn: Connection, merchant_id: str, tables: Mapping[int, Published] | None = None
) -> int | None:
    """The version of ``merchant_id``'s target (None: no table covers it, or no merchant)."""
    expr = target_expr(_tables(conn, tables), conn.dialect.name)
    value = conn.execute(select(expr).where(MERCHANTS.c.id == merchant_id)).scalar()
    return None if value is None else int(value)


def targets(conn: Connection, tables: Mapping[int, Published] | None = None) -> dict[str, int]:
    """Merchant id → the version of its target table (merchants no table covers: absent)."""
    expr = target_expr(_tables(conn, tables), conn.dialect.name).label("target")
    rows = conn.execute(select(MERCHANTS.c.id, expr).where(expr.is_not(None)))
    return {r.id: int(r.target) for r in rows}


def merchants_in(
    conn: Connection,
    group: Group,
    tables: Mapping[int, Published] | None = None,
    *,
    currency: int | str | None = None,
) -> list[Any]:
    """The merchants a table of ``group`` in ``currency`` covers (id, name, mcc, current
    ``target``), by id (``currency`` None: the group alone)."""
    dialect = conn.dialect.name
    expr = target_expr(_tables(conn, tables), dialect).label("target")
    where = group_clause(group, dialect) if currency is None else covers(group, currency, dialect)
    return list(
        conn.execute(
            select(MERCHANTS.c.id, MERCHANTS.c.name, MERCHANTS.c.mcc, expr)
            .where(where)
            .order_by(MERCHANTS.c.id)
            .execution_options(yield_per=5000)
        )
    )


def foreign_merchants(conn: Connection, group: Group, currency: int | str) -> list[Any]:
    """The merchants of ``group`` a table in ``currency`` leaves out: their country pays in
    another currency (id, country), by id."""
    dialect = conn.dialect.name
    return list(
        conn.execute(
            select(MERCHANTS.c.id, MERCHANTS.c.country)
            .where(group_clause(group, dialect), ~currency_clause(currency))
            .order_by(MERCHANTS.c.id)
        )
    )


def targeted_terminals(
    conn: Connection,
    version: int,
    group: Group,
    tables: Mapping[int, Published] | None = None,
) -> list[str]:
    """Serials (sorted) of the deployed and faulty terminals with a link whose target is
    ``version`` and whose merchant is in ``group``: what a push or a rollout of it covers."""
    dialect = conn.dialect.name
    expr = target_expr(_tables(conn, tables), dialect)
    return list(
        conn.execute(
            select(TERMINALS.c.serial)
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(
                TERMINALS.c.status.in_(LIVE),
                TERMINALS.c.link.is_not(None),
                TERMINALS.c.link != "",
                expr == version,
                group_clause(group, dialect),
            )
            .order_by(TERMINALS.c.serial)
        ).scalars()
    )


def push_targets(
    conn: Connection,
    version: int,
    group: Group,
    tables: Mapping[int, Published] | None = None,
) -> list[str]:
    """:func:`targeted_terminals` of a published ``version``, for a push or a rollout:
    an unpublished version or no terminal at all is an error saying why."""
    tables = _tables(conn, tables)
    published(tables, version)
    serials = targeted_terminals(conn, version, group, tables)
    if not serials:
        raise ConflictError(
            f"no deployed terminal with a link has table {version} as its target"
            + ("" if group.everyone else f" in {group.describe()}")
        )
    return serials


def target_counts(
    conn: Connection, tables: Mapping[int, Published] | None = None
) -> dict[int, tuple[int, int, int]]:
    """Version → (merchants whose target it is, their live terminals, those of them that
    have it active or pending), counted by the database."""
    expr = target_expr(_tables(conn, tables), conn.dialect.name).label("target")
    per = select(MERCHANTS.c.id, expr).subquery()  # grouped outside: one CASE, one set of binds
    out: dict[int, tuple[int, int, int]] = {}
    for version, merchants in conn.execute(
        select(per.c.target, func.count()).where(per.c.target.is_not(None)).group_by(per.c.target)
    ):
        out[int(version)] = (int(merchants), 0, 0)
    at_it = or_(
        TERMINALS.c.active_version == per.c.target, TERMINALS.c.pending_version == per.c.target
    )
    for version, terminals, current in conn.execute(
        select(per.c.target, func.count(), func.count().filter(at_it))
        .select_from(TERMINALS.join(per, per.c.id == TERMINALS.c.merchant_id))
        .where(TERMINALS.c.status.in_(LIVE), per.c.target.is_not(None))
        .group_by(per.c.target)
    ):
        out[int(version)] = (out.get(int(version), (0, 0, 0))[0], int(terminals), int(current))
    return out
