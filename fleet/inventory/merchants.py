"""Merchants: who owns terminals and how to reach them.

Imported as one atomic upsert (phones checked and stored as E.164, contact preferences
checked against opt-outs); listed with their terminal counts; shown with their terminals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import MERCHANTS, TERMINALS, Merchant
from fleet.core.records import Column, RejectedFileError, Row, Schema, read_rows
from fleet.core.status import LIVE_STATUSES
from fleet.core.values import (
    parse_channels,
    parse_country,
    parse_email,
    parse_language,
    parse_list,
    parse_mcc,
    parse_phone,
    parse_timezone,
)
from fleet.inventory.cells import bounded_text, token
from fleet.inventory.importing import (
    CHUNK,
    FileErrors,
    ImportResult,
    count_rows,
    parse_row,
    record_import,
    schema_defaults,
    upsert,
)

__all__ = [
    "CONTACT_FIELDS",
    "MERCHANT",
    "MerchantDetail",
    "MerchantSummary",
    "TerminalBrief",
    "get_merchant",
    "import_merchants",
    "list_merchants",
    "update_merchant",
]

MERCHANT = Schema(
    "merchants",
    (
        Column("id", token(15, "merchant id")),
        Column("name", bounded_text(120)),
        Column("mcc", parse_mcc),
        Column("phone", str, required=False),
        Column("email", parse_email, required=False),
        Column("language", parse_language, required=False, default="en"),
        Column("timezone", parse_timezone, required=False, default="UTC"),
        Column("country", parse_country, required=False),
        Column("region", bounded_text(40), required=False),
        Column("tags", parse_list, required=False, default=[]),
        Column("channels", parse_channels, required=False, default=[]),
        Column("opt_out", parse_channels, required=False, default=[]),
    ),
)


def _check_merchant(row: Row, v: dict[str, Any], errors: FileErrors) -> None:
    phone = v.get("phone")
    if phone:
        try:
            v["phone"] = parse_phone(phone, v.get("country"))
        except ValueError as exc:
            errors.add(row, "phone", str(exc))
    opted = set(v.get("opt_out") or [])
    prefs = v.get("channels") or []
    if prefs and opted.issuperset(prefs):
        errors.add(row, "opt_out", "opts out of every preferred channel")


def import_merchants(
    engine: Engine, path: Path, *, actor: str, fmt: str | None = None
) -> ImportResult:
    """Merchants from a CSV file or a JSON/TOML array, as one atomic upsert."""
    chosen, header, rows = read_rows(path, "merchants", fmt)
    errors = FileErrors()
    if chosen == "csv":
        errors.items.extend(MERCHANT.check_header(str(path), header))
    if errors:
        raise RejectedFileError(errors.items)
    seen: dict[str, int | str] = {}
    good: list[dict[str, Any]] = []
    defaults = schema_defaults(MERCHANT)
    total = 0
    for row in rows:
        total += 1
        v = parse_row(MERCHANT, row, errors, named=chosen != "csv")
        if v is None:
            continue
        if v["id"] in seen:
            errors.add(row, "id", f"merchant {v['id']} also on line {seen[v['id']]}")
        seen[v["id"]] = row.line
        _check_merchant(row, v, errors)
        good.append(defaults | v)
    if errors:
        raise RejectedFileError(errors.items, total)
    with writer(engine).begin() as conn:
        before = count_rows(conn, MERCHANTS)
        for start in range(0, len(good), CHUNK):
            upsert(conn, MERCHANTS, good[start : start + CHUNK], ["id"], header)
        inserted = count_rows(conn, MERCHANTS) - before
        result = record_import(conn, "merchants", path, total, inserted, actor=actor)
    return result


# --- listing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantSummary:
    merchant: Merchant
    terminals: int
    """Its deployed and faulty terminals."""


@dataclass(frozen=True, slots=True)
class TerminalBrief:
    """A terminal as a merchant's page lists it."""

    serial: str
    model: str
    firmware: str
    tid: str | None
    status: str
    active_version: int


@dataclass(frozen=True, slots=True)
class MerchantDetail:
    merchant: Merchant
    terminals: tuple[TerminalBrief, ...]
    """Every terminal it has or had, by serial."""


def list_merchants(
    engine: Engine,
    *,
    mcc: int | None = None,
    region: str | None = None,
    limit: int | None = None,
) -> list[MerchantSummary]:
    """Merchants by id (of an MCC, of a region, at most ``limit``), with terminal counts."""
    counts = (
        select(TERMINALS.c.merchant_id, func.count().label("n"))
        .where(TERMINALS.c.status.in_(LIVE_STATUSES))
        .group_by(TERMINALS.c.merchant_id)
        .subquery()
    )
    stmt = (
        select(MERCHANTS, func.coalesce(counts.c.n, 0).label("terminals"))
        .outerjoin(counts, counts.c.merchant_id == MERCHANTS.c.id)
        .order_by(MERCHANTS.c.id)
    )
    if mcc is not None:
        stmt = stmt.where(MERCHANTS.c.mcc == mcc)
    if region is not None:
        stmt = stmt.where(MERCHANTS.c.region == region)
    if limit:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [
            MerchantSummary(Merchant(**_columns(r._mapping)), int(r.terminals))
            for r in conn.execute(stmt)
        ]


def get_merchant(engine: Engine, merchant_id: str) -> MerchantDetail:
    """One merchant and its terminals; :class:`NotFoundError` when there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)).first()
        if row is None:
            raise NotFoundError("unknown merchant", where=merchant_id)
        terminals = conn.execute(
            select(
                TERMINALS.c.serial,
                TERMINALS.c.model,
                TERMINALS.c.firmware,
                TERMINALS.c.tid,
                TERMINALS.c.status,
                TERMINALS.c.active_version,
            )
            .where(TERMINALS.c.merchant_id == merchant_id)
            .order_by(TERMINALS.c.serial)
        ).all()
    return MerchantDetail(Merchant(**row._mapping), tuple(TerminalBrief(*t) for t in terminals))


def _columns(mapping: Any) -> dict[str, Any]:
    """A row's merchant columns (without the computed ones)."""
    return {c.name: mapping[c.name] for c in MERCHANTS.columns}


CONTACT_FIELDS = ("phone", "email", "language")
"""What :func:`update_merchant` changes: how a merchant is reached, without a re-import."""


def update_merchant(
    engine: Engine,
    merchant_id: str,
    changes: dict[str, str],
    *,
    actor: str,
    reason: str = "",
) -> dict[str, list[str]]:
    """Change a merchant's contact data (:data:`CONTACT_FIELDS`), each value checked as an
    import's cell is (a phone number with phonenumbers, for the merchant's country, stored
    as E.164; ``""`` clears a phone or an email), in one audited transaction. Returns what
    changed (field → [before, after]); a merchant left with neither phone nor email, or
    bad values, is refused with every problem (:class:`RejectedFileError`)."""
    unknown = sorted(set(changes) - set(CONTACT_FIELDS))
    if unknown:
        raise InputError(f"not contact data: {', '.join(unknown)}", where=merchant_id)
    where = f"merchant {merchant_id}"
    with writer(engine).begin() as conn:
        row = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)).first()
        if row is None:
            raise NotFoundError("unknown merchant", where=merchant_id)
        current = dict(row._mapping)
        errors = FileErrors()
        cells = Row(where, "", dict(changes))
        values: dict[str, Any] = {}
        for name, text in changes.items():
            if not text.strip():
                if name == "language":
                    errors.add(cells, name, "a merchant needs a language")
                values[name] = None
                continue
            try:
                values[name] = MERCHANT.by_name[name].parse(text)
            except ValueError as exc:
                errors.add(cells, name, str(exc))
        if values.get("phone"):
            try:
                values["phone"] = parse_phone(values["phone"], current["country"])
            except ValueError as exc:
                errors.add(cells, "phone", str(exc))
        after = current | values
        if not errors and not after["phone"] and not after["email"]:
            errors.add(cells, "phone", "a merchant needs a phone or an email to be reached")
        if errors:
            raise RejectedFileError(errors.items, where=where)
        changed = {
            k: ["" if current[k] is None else str(current[k]), "" if v is None else str(v)]
            for k, v in values.items()
            if current[k] != v
        }
        if changed:
            conn.execute(
                update(MERCHANTS)
                .where(MERCHANTS.c.id == merchant_id)
                .values(**{k: values[k] for k in changed})
            )
            audit.record(
                conn,
                actor=actor,
                action="update",
                target=f"merchant:{merchant_id}",
                details=dict(changed),
                reason=reason,
            )
    return changed
