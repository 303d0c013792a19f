"""Published fee tables, as stored: immutable, one row per version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from fleet.core.errors import NotFoundError
from fleet.core.models import FEE_TABLES
from fleet.fees.group import Group
from protocols.feetable import FeeTable

__all__ = ["Published", "load_tables", "published", "source_of", "table_doc"]


@dataclass(frozen=True, slots=True)
class Published:
    version: int
    name: str
    table: FeeTable
    group: Group
    sha256: str
    published_at: datetime
    published_by: str
    raises: bool
    notice_override: str | None


def load_tables(conn: Connection) -> dict[int, Published]:
    """Every published table, by version (tables are few; the bytes are small)."""
    found: dict[int, Published] = {}
    for row in conn.execute(select(FEE_TABLES).order_by(FEE_TABLES.c.version)):
        found[row.version] = Published(
            row.version,
            row.name,
            FeeTable.from_bytes(row.wire),
            Group.from_dict(row.group),
            row.sha256,
            row.published_at,
            row.published_by,
            row.raises,
            row.notice_override,
        )
    return found


def published(tables: Mapping[int, Published], version: int) -> Published:
    """Table ``version``, or :class:`NotFoundError` naming it."""
    try:
        return tables[version]
    except KeyError:
        raise NotFoundError(f"fee table {version} is not published") from None


def source_of(conn: Connection, version: int) -> str:
    """The TOML of table ``version`` exactly as published."""
    source = conn.execute(
        select(FEE_TABLES.c.source).where(FEE_TABLES.c.version == version)
    ).scalar()
    if source is None:
        raise NotFoundError(f"fee table {version} is not published")
    return str(source)


def table_doc(conn: Connection, version: int) -> dict[str, Any]:
    """Table ``version`` as people read it: name, effective instant, the merchants it
    applies to, who published it, and each rule in words (``posfleet fees show``, the
    console)."""
    from fleet.fees.describe import describe_rule  # noqa: PLC0415 - describe is pure

    p = published(load_tables(conn), version)
    return {
        "version": version,
        "name": p.name,
        "effective": p.table.effective.isoformat(),
        "applies_to": p.group.describe(),
        "sha256": p.sha256,
        "published_at": p.published_at.isoformat(),
        "published_by": p.published_by,
        "raises": p.raises,
        "notice_override": p.notice_override,
        "rules": [
            {"rule": i, "meaning": describe_rule(r, p.table)} for i, r in enumerate(p.table.rules)
        ],
    }
