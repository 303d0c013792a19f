"""Catalog, merchant and terminal records: validation and the import/update jobs.

An import is **atomic**: every row is checked (cells, references to the catalog and to
merchants, duplicates, status rules) and every bad row is reported as
``file:line: column: reason``; one bad row rejects the file and nothing is written. It is
also an **idempotent upsert**: re-importing a file changes nothing, and columns a file
does not have are left as they are (a re-imported inventory keeps what ``sync`` learnt).

Terminals stream through in chunks inside one transaction, so a 1 M-row inventory never
sits in memory as rows, and a killed import leaves the database as it was.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import (
    ADVISORIES,
    ADVISORY_FIRMWARE,
    FIRMWARE,
    MERCHANTS,
    MODELS,
    TERMINALS,
    Status,
)
from fleet.core.records import (
    Column,
    RejectedFileError,
    Row,
    RowError,
    Schema,
    file_format,
    read_rows,
    read_sections,
    shape_error,
)
from fleet.core.values import (
    parse_bool,
    parse_channels,
    parse_country,
    parse_currency,
    parse_date,
    parse_datetime,
    parse_email,
    parse_int,
    parse_language,
    parse_link,
    parse_list,
    parse_mcc,
    parse_money,
    parse_phone,
    parse_timezone,
    parse_token,
)

__all__ = [
    "ADVISORY",
    "FIRMWARE_SCHEMA",
    "MERCHANT",
    "MODEL",
    "TERMINAL",
    "ImportResult",
    "NotFoundError",
    "import_catalog",
    "import_merchants",
    "import_terminals",
    "terminal_cells",
    "upsert_terminal",
]

CHUNK = 5000
SEVERITIES = ("low", "medium", "high", "critical")


class NotFoundError(LookupError):
    """An unknown serial, merchant or model."""


def _ascii_fixed(size: int, what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if len(value) != size or not value.isascii() or not value.isprintable():
            raise ValueError(f"{what} must be {size} printable ASCII characters, not {text!r}")
        return value

    return parse


def _token(max_len: int, what: str) -> Callable[[str], str]:
    return lambda text: parse_token(text, max_len=max_len, what=what)


def _text(max_len: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if len(value) > max_len:
            raise ValueError(f"longer than {max_len} characters")
        return value

    return parse


def _amount(text: str) -> str:
    """A non-negative decimal; its decimals are checked against the row's currency later."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative amount: {text!r}")
    return text.strip()


def _status(text: str) -> str:
    value = text.strip().lower().replace(" ", "_").replace("-", "_")
    if value not in Status.__members__.values():
        raise ValueError(f"unknown status {text!r} (want {', '.join(s.value for s in Status)})")
    return value


def _severity(text: str) -> str:
    value = text.strip().lower()
    if value not in SEVERITIES:
        raise ValueError(f"unknown severity {text!r} (want {', '.join(SEVERITIES)})")
    return value


def _uint(text: str) -> int:
    return parse_int(text)


MODEL = Schema(
    "models",
    (
        Column("code", _token(40, "model code")),
        Column("vendor", _text(80)),
        Column("name", _text(120), required=False, default=""),
        Column("released_on", parse_date, required=False),
        Column("end_of_sale", parse_date, required=False),
        Column("end_of_support", parse_date, required=False),
        Column("pts_version", _text(20), required=False, default=""),
        Column("pts_expires_on", parse_date, required=False),
        Column("chip", parse_bool, required=False, default=False),
        Column("contactless", parse_bool, required=False, default=False),
        Column("magstripe", parse_bool, required=False, default=False),
        Column("qr", parse_bool, required=False, default=False),
        Column("pin_pad", parse_bool, required=False, default=False),
        Column("unit_price", _amount, required=False, default="0"),
        Column("currency", parse_currency, required=False, default="EUR"),
        Column("successor", _token(40, "model code"), required=False),
    ),
)
FIRMWARE_SCHEMA = Schema(
    "firmware",
    (
        Column("model", _token(40, "model code")),
        Column("version", _token(40, "firmware version")),
        Column("released_on", parse_date, required=False),
        Column("end_of_support", parse_date, required=False),
    ),
)
ADVISORY = Schema(
    "advisories",
    (
        Column("id", _token(40, "advisory id")),
        Column("model", _token(40, "model code")),
        Column("affects", parse_list),
        Column("fixed_in", _token(40, "firmware version"), required=False),
        Column("severity", _severity, required=False, default="high"),
        Column("title", _text(200), required=False, default=""),
        Column("published_on", parse_date, required=False),
    ),
)
MERCHANT = Schema(
    "merchants",
    (
        Column("id", _token(15, "merchant id")),
        Column("name", _text(120)),
        Column("mcc", parse_mcc),
        Column("phone", str, required=False),
        Column("email", parse_email, required=False),
        Column("language", parse_language, required=False, default="en"),
        Column("timezone", parse_timezone, required=False, default="UTC"),
        Column("country", parse_country, required=False),
        Column("region", _text(40), required=False),
        Column("tags", parse_list, required=False, default=[]),
        Column("channels", parse_channels, required=False, default=[]),
        Column("opt_out", parse_channels, required=False, default=[]),
    ),
)
TERMINAL = Schema(
    "terminals",
    (
        Column("serial", _token(40, "serial")),
        Column("model", _token(40, "model code")),
        Column("firmware", _token(40, "firmware version")),
        Column("tid", _ascii_fixed(8, "TID"), required=False),
        Column("mid", _ascii_fixed(15, "MID"), required=False),
        Column("merchant_id", _token(15, "merchant id"), required=False),
        Column("manufactured_on", parse_date, required=False),
        Column("deployed_on", parse_date, required=False),
        Column("status", _status),
        Column("link", parse_link, required=False),
        Column("fault_count", _uint, required=False, default=0),
        Column("last_seen", parse_datetime, required=False),
        Column("active_version", _uint, required=False, default=0),
        Column("pending_version", _uint, required=False, default=0),
    ),
)
TERMINAL_HEADER = (
    "serial",
    "model",
    "firmware",
    "tid",
    "mid",
    "merchant_id",
    "manufactured_on",
    "deployed_on",
    "status",
    "link",
)
"""Columns an inventory file must have (cells may be empty where the status allows)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    kind: str
    path: str
    rows: int
    inserted: int
    updated: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "sha256": self.sha256,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: Iterable[str],
    update: Iterable[str],
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update, in one executemany.

    Every row has the same keys. On SQLite the statement is compiled once and the rows go
    to the driver as tuples (through the columns' own bind processors, so values are
    stored exactly as ``conn.execute`` would store them), without SQLAlchemy's per-row
    parameter handling, which costs as much as SQLite's own work on a 1 M-row import.
    """
    if not rows:
        return
    ins: Any = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
    update = [c for c in update if c not in keys]
    if update:
        stmt = ins.on_conflict_do_update(
            index_elements=list(keys), set_={c: ins.excluded[c] for c in update}
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(keys))
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup
    assert names is not None  # SQLite's parameters are positional
    dialect = conn.dialect
    processors = [
        (i, process)
        for i, name in enumerate(names)
        if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    cells = operator.itemgetter(*names)
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(cells(row)) if len(names) > 1 else [cells(row)]
        for i, process in processors:
            values[i] = process(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(compiled.string, params)


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _defaults(schema: Schema) -> dict[str, Any]:
    return {c.name: c.default for c in schema.columns}


class _Errors:
    """The errors of one file, with the cap on what is kept in memory."""

    def __init__(self) -> None:
        self.items: list[RowError] = []

    def add(self, row: Row, column: str, reason: str) -> None:
        self.items.append(RowError(row.path, row.line, column, reason))

    def __bool__(self) -> bool:
        return bool(self.items)


# --- catalog ---------------------------------------------------------------------------


def _catalog_kind(header: list[str]) -> str:
    if "vendor" in header:
        return "models"
    if "affects" in header:
        return "advisories"
    return "firmware"


def import_catalog(
    engine: Engine, path: Path, *, actor: str, fmt: str | None = None
) -> ImportResult:
    """Models, firmware and advisories from one JSON/TOML document (arrays ``models``,
    ``firmware``, ``advisories``), or one kind per CSV file (told apart by its columns)."""
    chosen = file_format(path, fmt)
    sections = read_sections(path, chosen)
    if chosen == "csv":
        header, rows = sections[""]
        sections = {_catalog_kind(header): (header, rows)}
    errors = _Errors()
    schemas: dict[str, Schema] = {
        "models": MODEL,
        "firmware": FIRMWARE_SCHEMA,
        "advisories": ADVISORY,
    }
    for key, (_, rows) in sections.items():
        if key not in schemas:
            line = rows[0].line if rows else 1
            errors.items.append(
                RowError(
                    str(path), line, key, "unknown section (want models, firmware, advisories)"
                )
            )
    parsed: dict[str, list[tuple[Row, dict[str, Any]]]] = {k: [] for k in schemas}
    for key, schema in schemas.items():
        if key not in sections:
            continue
        header, rows = sections[key]
        if chosen == "csv":
            errors.items.extend(schema.check_header(str(path), header))
        for row in rows:
            bad = shape_error(row)
            if bad:
                errors.items.append(bad)
                continue
            unknown = [c for c in row.cells if c not in schema.by_name]
            for name in unknown if chosen != "csv" else []:
                errors.add(row, name, f"unknown field in {key}")
            values = schema.parse(row, errors.items)
            if values is not None:
                parsed[key].append((row, values))

    with writer(engine).begin() as conn:
        known_models = set(conn.execute(select(MODELS.c.code)).scalars())
        known_fw = {
            (r[0], r[1]) for r in conn.execute(select(FIRMWARE.c.model, FIRMWARE.c.version))
        }
        file_models: dict[str, Row] = {}
        for row, v in parsed["models"]:
            if v["code"] in file_models:
                errors.add(
                    row, "code", f"model {v['code']} also on line {file_models[v['code']].line}"
                )
            file_models[v["code"]] = row
            try:
                v["unit_price"] = parse_money(
                    v.get("unit_price") or "0", v.get("currency") or "EUR"
                )
            except ValueError as exc:
                errors.add(row, "unit_price", str(exc))
        models = known_models | set(file_models)
        for row, v in parsed["models"]:
            if v.get("successor") and v["successor"] not in models:
                errors.add(row, "successor", f"unknown model {v['successor']}")
            for a, b in (("released_on", "end_of_sale"), ("end_of_sale", "end_of_support")):
                if v.get(a) and v.get(b) and v[b] < v[a]:
                    errors.add(row, b, f"{v[b]} is before {a} {v[a]}")
        file_fw: dict[tuple[str, str], Row] = {}
        for row, v in parsed["firmware"]:
            fw_key = (v["model"], v["version"])
            if v["model"] not in models:
                errors.add(row, "model", f"unknown model {v['model']}")
            if fw_key in file_fw:
                line = file_fw[fw_key].line
                errors.add(row, "version", f"{fw_key[0]} {fw_key[1]} also on line {line}")
            file_fw[fw_key] = row
            if (
                v.get("released_on")
                and v.get("end_of_support")
                and v["end_of_support"] < v["released_on"]
            ):
                errors.add(row, "end_of_support", "before released_on")
        firmware = known_fw | set(file_fw)
        file_adv: dict[tuple[str, str], Row] = {}
        for row, v in parsed["advisories"]:
            if v["model"] not in models:
                errors.add(row, "model", f"unknown model {v['model']}")
                continue
            adv_key = (v["id"], v["model"])
            if adv_key in file_adv:
                line = file_adv[adv_key].line
                errors.add(row, "id", f"{adv_key[0]} for {adv_key[1]} also on line {line}")
            file_adv[adv_key] = row
            if not v["affects"]:
                errors.add(row, "affects", "names no firmware version")
            for version in v["affects"]:
                if (v["model"], version) not in firmware:
                    errors.add(row, "affects", f"unknown firmware {version} for model {v['model']}")
            if v.get("fixed_in") and v["fixed_in"] in v["affects"]:
                errors.add(row, "fixed_in", f"{v['fixed_in']} is also listed as affected")
        if errors:
            raise RejectedFileError(errors.items)

        total = sum(len(p) for p in parsed.values())
        before = sum(_count(conn, t) for t in _catalog_tables())
        defaults = {"models": _defaults(MODEL), "firmware": _defaults(FIRMWARE_SCHEMA)}
        model_rows = [defaults["models"] | v for _, v in parsed["models"]]
        _upsert(conn, MODELS, model_rows, ["code"], _present(MODEL, sections, "models"))
        fw_rows = [defaults["firmware"] | v for _, v in parsed["firmware"]]
        _upsert(
            conn,
            FIRMWARE,
            fw_rows,
            ["model", "version"],
            _present(FIRMWARE_SCHEMA, sections, "firmware"),
        )
        adv_rows = []
        links = []
        for _, v in parsed["advisories"]:
            adv = _defaults(ADVISORY) | v
            links += [
                {"advisory": v["id"], "model": v["model"], "version": x} for x in adv.pop("affects")
            ]
            adv_rows.append(adv)
        _upsert(
            conn,
            ADVISORIES,
            adv_rows,
            ["id", "model"],
            _present(ADVISORY, sections, "advisories"),
        )
        if adv_rows:
            pairs = [(a["id"], a["model"]) for a in adv_rows]
            conn.execute(
                delete(ADVISORY_FIRMWARE).where(
                    tuple_(ADVISORY_FIRMWARE.c.advisory, ADVISORY_FIRMWARE.c.model).in_(pairs)
                )
            )
            _upsert(conn, ADVISORY_FIRMWARE, links, ["advisory", "model", "version"], [])
        after = sum(_count(conn, t) for t in _catalog_tables())
        result = ImportResult(
            "catalog", str(path), total, after - before, total - (after - before), _sha256(path)
        )
        audit.record(
            conn,
            actor=actor,
            action="import",
            target=f"catalog:{path.name}",
            details=result.as_dict(),
        )
    return result


def _catalog_tables() -> list[Table]:
    return [MODELS, FIRMWARE, ADVISORIES]


def _present(
    schema: Schema, sections: Mapping[str, tuple[list[str], list[Row]]], key: str
) -> list[str]:
    header = sections.get(key, ([], []))[0]
    return [c.name for c in schema.columns if c.name in header and c.name != "affects"]


# --- merchants -------------------------------------------------------------------------


def _check_merchant(row: Row, v: dict[str, Any], errors: _Errors) -> None:
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
    chosen, header, rows = read_rows(path, "merchants", fmt)
    errors = _Errors()
    if chosen == "csv":
        errors.items.extend(MERCHANT.check_header(str(path), header))
    if errors:
        raise RejectedFileError(errors.items)
    seen: dict[str, int | str] = {}
    good: list[dict[str, Any]] = []
    defaults = _defaults(MERCHANT)
    total = 0
    for row in rows:
        total += 1
        bad = shape_error(row)
        if bad:
            errors.items.append(bad)
            continue
        if chosen != "csv":
            for name in row.cells:
                if name not in MERCHANT.by_name:
                    errors.add(row, name, "unknown field")
        v = MERCHANT.parse(row, errors.items)
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
        before = _count(conn, MERCHANTS)
        for start in range(0, len(good), CHUNK):
            _upsert(conn, MERCHANTS, good[start : start + CHUNK], ["id"], header)
        inserted = _count(conn, MERCHANTS) - before
        result = ImportResult(
            "merchants", str(path), total, inserted, total - inserted, _sha256(path)
        )
        audit.record(
            conn,
            actor=actor,
            action="import",
            target=f"merchants:{path.name}",
            details=result.as_dict(),
        )
    return result


# --- terminals -------------------------------------------------------------------------

_LIVE = (Status.DEPLOYED.value, Status.FAULTY.value)


@dataclass
class _Catalog:
    models: set[str]
    firmware: set[tuple[str, str]]
    merchants: set[str]

    @classmethod
    def load(cls, conn: Connection) -> _Catalog:
        return cls(
            set(conn.execute(select(MODELS.c.code)).scalars()),
            {(r[0], r[1]) for r in conn.execute(select(FIRMWARE.c.model, FIRMWARE.c.version))},
            set(conn.execute(select(MERCHANTS.c.id)).scalars()),
        )


def check_terminal(v: dict[str, Any], catalog: _Catalog, today: date) -> list[tuple[str, str]]:
    """Rules across a terminal's cells and the catalog: (column, reason) for each breach."""
    problems: list[tuple[str, str]] = []
    model = v["model"]
    if model not in catalog.models:
        problems.append(("model", f"unknown model {model}"))
    elif (model, v["firmware"]) not in catalog.firmware:
        problems.append(("firmware", f"unknown firmware {v['firmware']} for model {model}"))
    merchant = v.get("merchant_id")
    if merchant and merchant not in catalog.merchants:
        problems.append(("merchant_id", f"unknown merchant {merchant}"))
    status = v["status"]
    if status in _LIVE:
        for name in ("merchant_id", "tid", "mid", "deployed_on"):
            if not v.get(name):
                problems.append((name, f"required for a {status} terminal"))
    elif status == Status.IN_STOCK and v.get("merchant_id"):
        problems.append(("merchant_id", "an in_stock terminal has no merchant (deployed?)"))
    made, deployed = v.get("manufactured_on"), v.get("deployed_on")
    if made and made > today:
        problems.append(("manufactured_on", f"{made} is in the future"))
    if deployed and deployed > today:
        problems.append(("deployed_on", f"{deployed} is in the future"))
    if made and deployed and deployed < made:
        problems.append(("deployed_on", f"{deployed} is before manufactured_on {made}"))
    seen = v.get("last_seen")
    if seen and seen > datetime.now(UTC).replace(microsecond=0) + _SKEW:
        problems.append(("last_seen", f"{seen.isoformat()} is in the future"))
    return problems


_SKEW = timedelta(minutes=5)


def import_terminals(
    engine: Engine,
    path: Path,
    *,
    actor: str,
    fmt: str | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate and upsert an inventory file in one transaction (see the module's notes)."""
    chosen, header, rows = read_rows(path, "terminals", fmt)
    errors = _Errors()
    name = str(path)
    if chosen == "csv":  # JSON objects: unknown keys and empty cells are checked per row
        errors.items.extend(TERMINAL.check_header(name, header))
        for column in TERMINAL_HEADER:
            if column not in header and TERMINAL.by_name[column].required is False:
                errors.items.append(RowError(name, 1, column, "required column missing"))
    if errors:
        raise RejectedFileError(errors.items)
    defaults = _defaults(TERMINAL)
    update = [c for c in header if c != "serial"]
    table = TERMINALS
    today = datetime.now(UTC).date()
    serials: dict[str, int | str] = {}
    # live TID → its terminal's serial (whose first line is in ``serials``), or (line,
    # serial) when that line is not the serial's first: no tuple per TID on 1 M rows
    tids: dict[str, str | tuple[int | str, str]] = {}
    total = 0
    buffer: list[dict[str, Any]] = []
    with writer(engine).connect() as conn, conn.begin() as tx:
        catalog = _Catalog.load(conn)
        before = _count(conn, table)
        # A refused chunk only needs to leave the connection usable to name the clash (the
        # file is rejected and everything rolled back). PostgreSQL aborts the whole
        # transaction on an error, so each chunk is a SAVEPOINT there; SQLite undoes just
        # the failing statement, and a SAVEPOINT would journal every page the import
        # touches: four times slower.
        savepoint = conn.dialect.name != "sqlite"

        def flush() -> None:
            if errors or not buffer:
                buffer.clear()
                return
            try:
                with conn.begin_nested() if savepoint else nullcontext():
                    _upsert(conn, table, buffer, ["serial"], update)
            except IntegrityError:
                _explain_conflict(conn, buffer, errors, name)
            buffer.clear()

        for row in rows:
            total += 1
            if progress is not None and total % 10_000 == 0:
                progress(total)
            bad = shape_error(row)
            if bad:
                errors.items.append(bad)
                continue
            if chosen != "csv":
                for key in row.cells:
                    if key not in TERMINAL.by_name:
                        errors.add(row, key, "unknown field")
            v = TERMINAL.parse(row, errors.items)
            if v is None:
                continue
            serial = v["serial"]
            first = serials.get(serial)
            if first is None:  # by presence, not by line: one-line JSON holds many rows
                serials[serial] = row.line
            else:
                errors.add(row, "serial", f"duplicate serial {serial} (first on line {first})")
            if v["status"] in _LIVE and v.get("tid"):
                tid = v["tid"]
                prior = tids.get(tid)
                if prior is None:
                    tids[tid] = serial if first is None else (row.line, serial)
                else:
                    line, holder = (serials[prior], prior) if isinstance(prior, str) else prior
                    if holder != serial:
                        errors.add(row, "tid", f"TID {tid} is also {holder}'s (line {line})")
            for column, reason in check_terminal(v, catalog, today):
                errors.add(row, column, reason)
            if not errors:
                buffer.append(defaults | v)
                if len(buffer) >= chunk:
                    flush()
        flush()
        if progress is not None:
            progress(total)
        if errors:
            tx.rollback()
            raise RejectedFileError(errors.items, total)
        inserted = _count(conn, table) - before
        result = ImportResult("terminals", name, total, inserted, total - inserted, _sha256(path))
        audit.record(
            conn,
            actor=actor,
            action="import",
            target=f"terminals:{path.name}",
            details=result.as_dict(),
        )
    return result


def _explain_conflict(
    conn: Connection, rows: list[dict[str, Any]], errors: _Errors, path: str
) -> None:
    """A chunk broke the live-TID index: name which TIDs belong to which other terminals."""
    by_tid = {r["tid"]: r["serial"] for r in rows if r.get("tid") and r["status"] in _LIVE}
    found = conn.execute(
        select(TERMINALS.c.serial, TERMINALS.c.tid).where(
            TERMINALS.c.tid.in_(list(by_tid)),
            TERMINALS.c.status.in_(_LIVE),
        )
    ).all()
    reported = False
    for serial, tid in found:
        if tid in by_tid and by_tid[tid] != serial:
            errors.items.append(
                RowError(path, "?", "tid", f"TID {tid} of {by_tid[tid]} is in use by {serial}")
            )
            reported = True
    if not reported:
        errors.items.append(RowError(path, "?", "", "the database refused a chunk (constraint)"))


# --- single terminals ------------------------------------------------------------------


def terminal_cells(t: Mapping[str, Any]) -> dict[str, str]:
    """A terminal's values as inventory cells (the export's shape; ``import`` reads it back)."""
    cells: dict[str, str] = {}
    for column in TERMINAL.columns:
        value = t.get(column.name)
        if value is None:
            cells[column.name] = ""
        elif isinstance(value, datetime):
            cells[column.name] = value.astimezone(UTC).isoformat()
        elif isinstance(value, date):
            cells[column.name] = value.isoformat()
        else:
            cells[column.name] = str(value)
    return cells


def get_terminal(conn: Connection, serial: str) -> dict[str, Any] | None:
    row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).first()
    return dict(row._mapping) if row else None


def upsert_terminal(
    engine: Engine,
    serial: str,
    changes: Mapping[str, str],
    *,
    actor: str,
    reason: str = "",
    create: bool,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Add (``create``) or update one terminal through the same checks as an import.

    ``changes`` are cells as typed (``{"status": "faulty"}``). Returns (before, after).
    Raises :class:`NotFoundError` / :class:`RejectedFileError` (with ``<cli>`` as the path).
    """
    with writer(engine).begin() as conn:
        before = get_terminal(conn, serial)
        if create and before is not None:
            raise RejectedFileError([RowError("<cli>", serial, "serial", "already exists")])
        if not create and before is None:
            raise NotFoundError(f"unknown terminal {serial}")
        cells = terminal_cells(before) if before else {"serial": serial}
        cells.update(changes)
        row = Row("<cli>", serial, cells)
        errors: list[RowError] = []
        v = TERMINAL.parse(row, errors)
        if v is not None:
            if v["serial"] != serial:
                errors.append(RowError("<cli>", serial, "serial", "cannot change a serial"))
            catalog = _Catalog.load(conn)
            for column, why in check_terminal(v, catalog, datetime.now(UTC).date()):
                errors.append(RowError("<cli>", serial, column, why))
        if errors or v is None:
            raise RejectedFileError(errors)
        after = _defaults(TERMINAL) | v
        try:
            with conn.begin_nested():
                _upsert(conn, TERMINALS, [after], ["serial"], list(after))
        except IntegrityError:
            holder = conn.execute(
                select(TERMINALS.c.serial).where(
                    TERMINALS.c.tid == after["tid"],
                    TERMINALS.c.status.in_(_LIVE),
                )
            ).scalar()
            raise RejectedFileError(
                [RowError("<cli>", serial, "tid", f"TID {after['tid']} is in use by {holder}")]
            ) from None
        audit.record(
            conn,
            actor=actor,
            action="add" if create else "update",
            target=f"terminal:{serial}",
            details=_diff(before, after),
            reason=reason,
        )
    return before, after


def _diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    new = terminal_cells(after)
    if before is None:
        return {k: v for k, v in new.items() if v}
    old = terminal_cells(before)
    return {k: [old[k], new[k]] for k in new if old[k] != new[k]}


def iter_terminals(
    engine: Engine, limit: int | None = None, **filters: Any
) -> Iterator[dict[str, Any]]:
    """Terminals by serial as column → value, filtered by equal columns, streamed."""
    table = TERMINALS
    stmt = select(table).order_by(table.c.serial)
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(table.c[name] == value)
    if limit:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        for row in conn.execute(stmt.execution_options(yield_per=5000)):
            yield dict(row._mapping)


def set_links(engine: Engine, links: Mapping[str, str], *, actor: str, reason: str = "") -> int:
    """Record where terminals are reached (serial → link URL), in one transaction, audited.

    Every serial must be known and every URL valid, or nothing is written."""
    errors = []
    for serial, url in links.items():
        try:
            parse_link(url)
        except ValueError as exc:
            errors.append(RowError("<links>", serial, "link", str(exc)))
    with writer(engine).begin() as conn:
        known = {
            r[0]
            for r in conn.execute(
                select(TERMINALS.c.serial).where(TERMINALS.c.serial.in_(list(links)))
            )
        }
        errors += [
            RowError("<links>", s, "serial", f"unknown terminal {s}")
            for s in links
            if s not in known
        ]
        if errors:
            raise RejectedFileError(errors)
        for serial, url in links.items():
            conn.execute(update(TERMINALS).where(TERMINALS.c.serial == serial).values(link=url))
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"links:{len(links)}",
            details={"links": dict(links)} if len(links) <= 50 else {"count": len(links)},
            reason=reason,
        )
    return len(links)
