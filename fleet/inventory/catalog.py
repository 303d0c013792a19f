"""The catalog: terminal models, their firmware, and security advisories.

Imported from one JSON/TOML document (arrays ``models``, ``firmware``, ``advisories``) or
one kind per CSV file, as one atomic upsert (:mod:`fleet.inventory.importing`); listed with
each model's firmware, advisories and terminal count (:func:`list_catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, delete, func, select, tuple_

from fleet.core.db import writer
from fleet.core.models import (
    ADVISORIES,
    ADVISORY_FIRMWARE,
    FIRMWARE,
    MODELS,
    TERMINALS,
    TerminalModel,
)
from fleet.core.records import (
    Column,
    RejectedFileError,
    Row,
    RowError,
    Schema,
    file_format,
    read_sections,
)
from fleet.core.values import parse_bool, parse_currency, parse_date, parse_list, parse_money
from fleet.inventory.cells import amount, bounded_text, rated, severity, token
from fleet.inventory.importing import (
    FileErrors,
    ImportResult,
    count_rows,
    parse_row,
    record_import,
    schema_defaults,
    upsert,
)

__all__ = [
    "ADVISORY",
    "FIRMWARE_SCHEMA",
    "MODEL",
    "AdvisoryInfo",
    "FirmwareInfo",
    "ModelInfo",
    "import_catalog",
    "list_catalog",
]

MODEL = Schema(
    "models",
    (
        Column("code", token(40, "model code")),
        Column("vendor", bounded_text(80)),
        Column("name", bounded_text(120), required=False, default=""),
        Column("released_on", parse_date, required=False),
        Column("end_of_sale", parse_date, required=False),
        Column("end_of_support", parse_date, required=False),
        Column("pts_version", bounded_text(20), required=False, default=""),
        Column("pts_expires_on", parse_date, required=False),
        Column("chip", parse_bool, required=False, default=False),
        Column("contactless", parse_bool, required=False, default=False),
        Column("magstripe", parse_bool, required=False, default=False),
        Column("qr", parse_bool, required=False, default=False),
        Column("pin_pad", parse_bool, required=False, default=False),
        Column("unit_price", amount, required=False, default="0"),
        Column("currency", parse_currency, required=False, default="EUR"),
        Column("successor", token(40, "model code"), required=False),
        Column("reader_rated_cycles", rated, required=False),
        Column("printer_rated_lines", rated, required=False),
        Column("battery_rated_cycles", rated, required=False),
    ),
)
FIRMWARE_SCHEMA = Schema(
    "firmware",
    (
        Column("model", token(40, "model code")),
        Column("version", token(40, "firmware version")),
        Column("released_on", parse_date, required=False),
        Column("end_of_support", parse_date, required=False),
    ),
)
ADVISORY = Schema(
    "advisories",
    (
        Column("id", token(40, "advisory id")),
        Column("model", token(40, "model code")),
        Column("affects", parse_list),
        Column("fixed_in", token(40, "firmware version"), required=False),
        Column("severity", severity, required=False, default="high"),
        Column("title", bounded_text(200), required=False, default=""),
        Column("published_on", parse_date, required=False),
    ),
)


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
    errors = FileErrors()
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
            values = parse_row(schema, row, errors, named=chosen != "csv", section=key)
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
        before = sum(count_rows(conn, t) for t in _catalog_tables())
        defaults = {"models": schema_defaults(MODEL), "firmware": schema_defaults(FIRMWARE_SCHEMA)}
        model_rows = [defaults["models"] | v for _, v in parsed["models"]]
        upsert(conn, MODELS, model_rows, ["code"], _present(MODEL, sections, "models"))
        fw_rows = [defaults["firmware"] | v for _, v in parsed["firmware"]]
        upsert(
            conn,
            FIRMWARE,
            fw_rows,
            ["model", "version"],
            _present(FIRMWARE_SCHEMA, sections, "firmware"),
        )
        adv_rows = []
        links = []
        for _, v in parsed["advisories"]:
            adv = schema_defaults(ADVISORY) | v
            links += [
                {"advisory": v["id"], "model": v["model"], "version": x} for x in adv.pop("affects")
            ]
            adv_rows.append(adv)
        upsert(
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
            upsert(conn, ADVISORY_FIRMWARE, links, ["advisory", "model", "version"], [])
        after = sum(count_rows(conn, t) for t in _catalog_tables())
        result = record_import(conn, "catalog", path, total, after - before, actor=actor)
    return result


def _catalog_tables() -> list[Table]:
    return [MODELS, FIRMWARE, ADVISORIES]


def _present(
    schema: Schema, sections: Mapping[str, tuple[list[str], list[Row]]], key: str
) -> list[str]:
    header = sections.get(key, ([], []))[0]
    return [c.name for c in schema.columns if c.name in header and c.name != "affects"]


# --- listing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirmwareInfo:
    version: str
    released_on: date | None
    end_of_support: date | None


@dataclass(frozen=True, slots=True)
class AdvisoryInfo:
    id: str
    model: str
    severity: str
    fixed_in: str | None
    """The version that fixes it; none: replace the terminal."""
    title: str
    versions: int
    """How many firmware versions it affects."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A catalog model, with its firmware, its advisories and how many terminals it has."""

    model: TerminalModel
    firmware: tuple[FirmwareInfo, ...]
    advisories: tuple[AdvisoryInfo, ...]
    terminals: int


def list_catalog(engine: Engine) -> list[ModelInfo]:
    """Every model by code, with its firmware (by version), advisories and terminals."""
    with engine.connect() as conn:
        models = [
            TerminalModel(**r._mapping)
            for r in conn.execute(select(MODELS).order_by(MODELS.c.code))
        ]
        firmware = conn.execute(
            select(FIRMWARE).order_by(FIRMWARE.c.model, FIRMWARE.c.version)
        ).all()
        advisories = conn.execute(
            select(ADVISORIES, func.count(ADVISORY_FIRMWARE.c.version).label("versions"))
            .outerjoin(
                ADVISORY_FIRMWARE,
                (ADVISORY_FIRMWARE.c.advisory == ADVISORIES.c.id)
                & (ADVISORY_FIRMWARE.c.model == ADVISORIES.c.model),
            )
            .group_by(*ADVISORIES.c)
            .order_by(ADVISORIES.c.model, ADVISORIES.c.id)
        ).all()
        counts: dict[str, int] = dict(
            conn.execute(select(TERMINALS.c.model, func.count()).group_by(TERMINALS.c.model)).all()
        )
    fw: dict[str, list[FirmwareInfo]] = {}
    for f in firmware:
        fw.setdefault(f.model, []).append(FirmwareInfo(f.version, f.released_on, f.end_of_support))
    adv: dict[str, list[AdvisoryInfo]] = {}
    for a in advisories:
        info = AdvisoryInfo(a.id, a.model, a.severity, a.fixed_in, a.title, a.versions)
        adv.setdefault(a.model, []).append(info)
    return [
        ModelInfo(m, tuple(fw.get(m.code, ())), tuple(adv.get(m.code, ())), counts.get(m.code, 0))
        for m in models
    ]
