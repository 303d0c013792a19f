"""Fee tables, replacements, swaps and the audit log: what ops and auditors read.

Each route calls a domain function (:mod:`fleet.fees`, :mod:`fleet.reports`,
:mod:`fleet.swaps`, :mod:`fleet.core.audit`) and shows its answer; CSV exports stream.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from fleet.access import Perm, Principal, allowed
from fleet.core import audit
from fleet.core.models import now
from fleet.core.policy import Policy
from fleet.fees import fee_diff, load_tables, source_of, table_doc
from fleet.replacements import REASONS, due_page
from fleet.reports import csv_rows, replacements_report
from fleet.swaps import SWAP_STATES, list_swaps
from fleet.web.deps import DB, TEXT, get_settings, need
from fleet.web.problems import PROBLEM_RESPONSES
from fleet.web.render import page

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["records"], responses=PROBLEM_RESPONSES)

FeeReader = Annotated[Principal, Depends(need(Perm.FEES))]
DueReader = Annotated[Principal, Depends(need(Perm.REPLACEMENTS))]
Exporter = Annotated[Principal, Depends(need(Perm.EXPORT))]
SwapReader = Annotated[Principal, Depends(need(Perm.SWAPS))]
Auditor = Annotated[Principal, Depends(need(Perm.AUDIT))]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str | None, Query(max_length=80, pattern=TEXT)]
REASON_CODES = tuple(REASONS)
SwapStatus = Annotated[Literal["planned", "done", "cancelled", ""] | None, Query()]


def _tables(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            {"version": p.version, "name": p.name, "effective": p.table.effective.isoformat(),
             "applies_to": p.group.describe(), "published_at": p.published_at.isoformat(),
             "published_by": p.published_by, "raises": p.raises}
            for p in reversed(load_tables(conn).values())
        ]  # fmt: skip


def _diff(request: Request, engine: Any, old: int, new: int) -> dict[str, Any]:
    policy = Policy.load(get_settings(request).policy_path).fees
    with engine.connect() as conn:
        d = fee_diff(conn, old, new, policy)
    return {
        "old": old,
        "new": new,
        "basket": d.basket_text(),
        "rules": d.rules,
        "merchants": [
            {"merchant_id": m.merchant_id, "name": m.name, "mcc": m.mcc,
             "before": d.money(m.before), "after": d.money(m.after), "change": d.money(m.change),
             "raise": m.change > 0}
            for m in d.merchants
        ],
    }  # fmt: skip


@pages.get("/fees")
def fees_page(request: Request, engine: DB, me: FeeReader) -> Response:
    return page(request, "fees.html", tables=_tables(engine))


@pages.get("/fees/{version}")
def fee_page(
    request: Request, version: Version, engine: DB, me: FeeReader,
    against: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:  # fmt: skip
    with engine.connect() as conn:
        doc, source = table_doc(conn, version), source_of(conn, version)
    diff = _diff(request, engine, against, version) if against else None
    others = [t["version"] for t in _tables(engine) if t["version"] != version]
    return page(request, "fee.html", t=doc, source=source, diff=diff, others=others)


class FeeTableRow(BaseModel):
    version: int
    name: str
    effective: str
    applies_to: str
    published_at: str
    published_by: str
    raises: bool


@api.get("/fee-tables", response_model=list[FeeTableRow], summary="Published fee tables")
def fees_api(engine: DB, me: FeeReader) -> list[dict[str, Any]]:
    return _tables(engine)


@api.get("/fee-tables/{version}", summary="One fee table: rules in words, and its TOML")
def fee_api(version: Version, engine: DB, me: FeeReader) -> dict[str, Any]:
    with engine.connect() as conn:
        return table_doc(conn, version) | {"source": source_of(conn, version)}


@api.get("/fee-tables/{version}/diff", summary="Rule changes and each merchant's impact")
def fee_diff_api(
    request: Request, version: Version, engine: DB, me: FeeReader,
    against: Annotated[int, Query(ge=1, le=2**31 - 1)],
) -> dict[str, Any]:  # fmt: skip
    return _diff(request, engine, against, version)


def _policy(request: Request) -> Any:
    return Policy.load(get_settings(request).policy_path).replacement


Priority = Annotated[int | None, Query(ge=1, le=3)]
Reason = Annotated[Literal[REASON_CODES] | None, Query()]  # type: ignore[valid-type]
After = Annotated[str | None, Query(max_length=40, pattern=TEXT)]


def _due_rows(
    request: Request, engine: Any, priority: int | None, model: str | None,
    reason: str | None, after: str | None, limit: int,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    found = due_page(
        engine, _policy(request), now().date(), priority=priority, model=model or None,
        reason=reason, after=after or None, limit=limit,
    )  # fmt: skip
    return [r.as_dict() for r in found.items], found.next_after


@pages.get("/replacements")
def replacements_page(
    request: Request, engine: DB, me: DueReader, priority: Priority = None,
    model: Text = None, reason: Reason = None, after: After = None,
) -> Response:  # fmt: skip
    rows, nxt = _due_rows(request, engine, priority, model, reason, after, 50)
    from fleet.web.routes.fleetview import snapshot  # noqa: PLC0415 - the cached figures

    facts = [f for f in snapshot(request)["facts"] if f["key"].startswith("replacements.")]
    filters = {"priority": priority or "", "model": model or "", "reason": reason or ""}
    return page(request, "replacements.html", rows=rows, facts=facts, filters=filters,
                next_after=nxt, after=after, reasons=REASON_CODES,
                can_export=allowed(me.role, Perm.EXPORT))  # fmt: skip


@pages.get("/replacements.csv")
def replacements_csv(request: Request, engine: DB, me: DueReader, _: Exporter) -> Response:
    header, rows = csv_rows(replacements_report(engine, _policy(request), now().date()))
    return _csv(header, rows, f"replacements-{now():%Y%m%d}.csv")


def _csv(header: list[str], rows: Iterable[dict[str, str]], name: str) -> Response:
    """Rows streamed as a CSV download (64 KB at a time), through the one CSV writer
    (cells made spreadsheet-safe: :mod:`fleet.core.escaping`)."""

    from fleet.core.escaping import CsvWriter  # noqa: PLC0415 - the one CSV writer

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        out = CsvWriter(buf)
        out.header(header)
        for row in rows:
            out.row(row.get(k, "") for k in header)
            if buf.tell() > 64_000:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    disposition = f'attachment; filename="{name}"'
    return StreamingResponse(
        lines(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition}
    )


@api.get("/replacements", summary="Terminals due for replacement: a filtered keyset page")
def replacements_api(
    request: Request, engine: DB, me: DueReader, priority: Priority = None,
    model: Text = None, reason: Reason = None, after: After = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:  # fmt: skip
    rows, nxt = _due_rows(request, engine, priority, model, reason, after, limit)
    return {"items": rows, "next_after": nxt}


def _swaps(engine: Any, status: str | None) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in s.items()}
        for s in list_swaps(engine, status or None)[:500]
    ]


@pages.get("/swaps")
def swaps_page(request: Request, engine: DB, me: SwapReader, status: SwapStatus = None) -> Response:
    return page(request, "swaps.html", swaps=_swaps(engine, status), swap_status=status or "",
                states=SWAP_STATES)  # fmt: skip


@api.get("/swaps", summary="Swaps, newest first (at most 500)")
def swaps_api(engine: DB, me: SwapReader, status: SwapStatus = None) -> list[dict[str, Any]]:
    return _swaps(engine, status)


def _audit(actor: str | None, action: str | None, target: str | None, before: int | None,
           limit: int, engine: Any) -> list[dict[str, str]]:  # fmt: skip
    flt = audit.AuditFilter(actor=actor or None, action=action or None, target=target or None)
    return [
        audit.as_row(e) | {"what": audit.summary(e)}
        for e in audit.recent(engine, flt, before=before, limit=limit)
    ]


Before = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@pages.get("/audit")
def audit_page(
    request: Request, engine: DB, me: Auditor, actor: Text = None, action: Text = None,
    target: Text = None, before: Before = None,
) -> Response:  # fmt: skip
    rows = _audit(actor, action, target, before, 101, engine)
    nxt = int(rows[99]["id"]) if len(rows) > 100 else None
    filters = {"actor": actor or "", "action": action or "", "target": target or ""}
    return page(request, "audit.html", rows=rows[:100], filters=filters, next_before=nxt,
                can_export=allowed(me.role, Perm.EXPORT))  # fmt: skip


@pages.get("/audit.csv")
def audit_csv(
    engine: DB, me: Auditor, _: Exporter, actor: Text = None, action: Text = None,
    target: Text = None,
) -> Response:  # fmt: skip
    flt = audit.AuditFilter(actor=actor or None, action=action or None, target=target or None)
    rows = (audit.as_row(entry) for entry in audit.query(engine, flt))
    return _csv(list(audit.CSV_COLUMNS), rows, "audit.csv")


class AuditRow(BaseModel):
    id: str
    at: str
    actor: str
    action: str
    target: str
    reason: str
    details: str
    what: str


@api.get("/audit", response_model=list[AuditRow], summary="The audit log, newest first")
def audit_api(
    engine: DB, me: Auditor, actor: Text = None, action: Text = None, target: Text = None,
    before: Before = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, str]]:  # fmt: skip
    return _audit(actor, action, target, before, limit, engine)
