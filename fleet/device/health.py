"""Each terminal's health history: samples from sign-ons and health polls, kept per
terminal, and the poll of many terminals at once.

Every health report (tags 0x10-0x16, :class:`~protocols.health.HealthInfo`) the fleet
receives is one ``health_sample`` row, keyed by terminal and the instant the fleet
received it (the same report twice at the same instant is stored once). With it,
``terminal_health`` (one row per terminal) keeps the latest sample and, per wear counter,
the sums of its least-squares line over the whole history
(:class:`~fleet.replacements.wear.Fit`) with the slope and intercept they give: flagging
reads one row per terminal, never the history, and each line as two numbers.
:func:`record_health` writes both in the caller's transaction (a re-sent sample changes
nothing; one that arrives late adds to the sums all the same); a terminal whose tamper
switch is newly tripped is flagged P1 at once (``terminal.flagged``,
:func:`fleet.replacements.flags.flag_tampered`).

:func:`poll` asks many terminals (0800/303, or a sign-on that also checks the serial) from
one thread (:mod:`protocols.engine`, ``socket://`` links) and one at a time over other
links (ptys, serial ports), and stores what they report in batches.

Over 400 lines because storing, reading, polling and importing health share the sample row's
shape and the least-squares sums kept beside it; each public function is short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from fleet.core.clock import now
from fleet.core.db import writer
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import HEALTH_SAMPLES, MODELS, TERMINAL_HEALTH, TERMINALS
from fleet.core.policy import ReplacementPolicy
from fleet.core.records import Column, RejectedFileError, Row, Schema, read_rows
from fleet.core.values import parse_bool, parse_datetime, parse_int, parse_serial
from fleet.inventory.importing import FileErrors, parse_row, record_import
from fleet.replacements.flags import flag_tampered
from fleet.replacements.wear import COUNTERS, Fit, days, wear_state
from protocols.errors import LinkError, ProtocolError
from protocols.health import Battery, CardReads, HealthInfo, PaperState, Printer, RebootReason

__all__ = [
    "HealthReport",
    "PollResult",
    "health_history",
    "health_lines",
    "health_summary",
    "import_health",
    "latest_health",
    "poll",
    "poll_targets",
    "record_health",
    "sample_row",
]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One terminal's health as received: what :func:`record_health` stores."""

    serial: str
    health: HealthInfo
    at: datetime
    source: str = "poll"
    """``sync`` (a sign-on) or ``poll`` (a health poll)."""


def sample_row(report: HealthReport) -> dict[str, Any]:
    """The ``health_sample`` row of a report."""
    h = report.health
    return {
        "serial": report.serial,
        "at": report.at,
        "source": report.source,
        "battery_level": h.battery.level if h.battery else None,
        "battery_health": h.battery.health if h.battery else None,
        "battery_cycles": h.battery.cycles if h.battery else None,
        "paper": int(h.printer.paper) if h.printer else None,
        "printer_lines": h.printer.lines if h.printer else None,
        "chip": h.card_reads.chip,
        "contactless": h.card_reads.contactless,
        "magstripe": h.card_reads.magstripe,
        "tamper": h.tampered,
        "tampered_at": h.tampered_at,
        "uptime": h.uptime,
        "last_reboot": int(h.last_reboot),
        "free_storage": h.free_storage,
    }


def _counters(sample: dict[str, Any]) -> dict[str, int | None]:
    return {
        "reader": sample["chip"] + sample["magstripe"],
        "printer": sample["printer_lines"],
        "battery": sample["battery_cycles"],
    }


def _latest(sample: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "tamper", "tampered_at", "battery_level", "battery_health", "battery_cycles",
        "paper", "printer_lines", "contactless", "uptime", "last_reboot", "free_storage",
    )  # fmt: skip
    return {k: sample[k] for k in keep} | {
        "at": sample["at"],
        "reader": sample["chip"] + sample["magstripe"],
    }


def _fit(row: dict[str, Any], counter: str) -> Fit:
    return Fit(*(row[f"{counter}_{s}"] for s in ("n", "sx", "sxx", "sy", "sxy")))


def _fit_columns(counter: str, fit: Fit) -> dict[str, Any]:
    return {
        f"{counter}_n": fit.n,
        f"{counter}_sx": fit.sx,
        f"{counter}_sxx": fit.sxx,
        f"{counter}_sy": fit.sy,
        f"{counter}_sxy": fit.sxy,
        f"{counter}_slope": fit.slope(),
        f"{counter}_intercept": fit.intercept(),
    }


def _empty_summary(serial: str) -> dict[str, Any]:
    row: dict[str, Any] = {"serial": serial, "samples": 0, "at": None}
    for counter in COUNTERS:
        row |= _fit_columns(counter, Fit())
    return row


def record_health(conn: Connection, reports: Sequence[HealthReport]) -> list[str]:
    """Store ``reports`` (in the caller's transaction) and update each terminal's latest
    health and wear sums; a report already stored (same terminal, same instant) changes
    nothing. Returns the serials whose tamper switch is newly tripped (flagged P1 now)."""
    tampered: list[str] = []
    for i in range(0, len(reports), _CHUNK):
        tampered += _record_chunk(conn, reports[i : i + _CHUNK])
    return tampered


def _record_chunk(conn: Connection, reports: Sequence[HealthReport]) -> list[str]:
    if not reports:
        return []
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [sample_row(r) for r in reports]
    stmt = (
        dialect.insert(HEALTH_SAMPLES)
        .on_conflict_do_nothing()
        .returning(HEALTH_SAMPLES.c.serial, HEALTH_SAMPLES.c.at, sort_by_parameter_order=True)
    )
    stored = {(s, at) for s, at in conn.execute(stmt, rows)}
    fresh = [r for r in rows if (r["serial"], r["at"]) in stored]
    if not fresh:
        return []
    serials = sorted({r["serial"] for r in fresh})
    query = select(TERMINAL_HEALTH).where(TERMINAL_HEALTH.c.serial.in_(serials))
    if conn.dialect.name == "postgresql":
        # Two pollers storing samples of one terminal take turns here: the terminal's row
        # (always there) is locked, in serial order, before its summary is read, so the
        # second reads the first's sums, and a terminal's first summary row is inserted
        # once (locking the missing summary row itself would lock nothing). SQLite: the
        # callers' writer() transactions already take the write lock at BEGIN.
        conn.execute(
            select(TERMINALS.c.serial)
            .where(TERMINALS.c.serial.in_(serials))
            .order_by(TERMINALS.c.serial)
            .with_for_update(key_share=True)
        )
        query = query.with_for_update()
    known = {r.serial: dict(r._mapping) for r in conn.execute(query)}
    summaries = {s: dict(known[s]) if s in known else _empty_summary(s) for s in serials}
    was_tampered = {s: bool(known[s]["tamper"]) if s in known else False for s in serials}
    for sample in fresh:
        row = summaries[sample["serial"]]
        x = days(sample["at"])
        for counter, y in _counters(sample).items():
            if y is not None:
                row |= _fit_columns(counter, _fit(row, counter).add(x, float(y)))
        row["samples"] += 1
        if row["at"] is None or sample["at"] >= row["at"]:
            row |= _latest(sample)
    new = [summaries[s] for s in serials if s not in known]
    if new:
        conn.execute(TERMINAL_HEALTH.insert(), new)
    changed = [summaries[s] for s in serials if s in known]
    if changed:  # one executemany, not a statement per terminal
        names = [k for k in changed[0] if k != "serial"]
        stmt = (
            update(TERMINAL_HEALTH)
            .where(TERMINAL_HEALTH.c.serial == bindparam("key_serial"))
            .values({name: bindparam(f"new_{name}") for name in names})
        )
        params = [{"key_serial": r["serial"]} | {f"new_{n}": r[n] for n in names} for r in changed]
        conn.execute(stmt, params)
    newly = [s for s in serials if summaries[s]["tamper"] and not was_tampered[s]]
    return [s for s in newly if flag_tampered(conn, s, summaries[s]["tampered_at"] or now())]


def latest_health(conn: Connection, serial: str) -> dict[str, Any] | None:
    """A terminal's latest health with its sample count, or None if it never reported."""
    row = conn.execute(select(TERMINAL_HEALTH).where(TERMINAL_HEALTH.c.serial == serial)).first()
    return None if row is None else dict(row._mapping)


def health_history(conn: Connection, serial: str, limit: int = 20) -> list[dict[str, Any]]:
    """The terminal's latest ``limit`` samples, newest first."""
    rows = conn.execute(
        select(HEALTH_SAMPLES)
        .where(HEALTH_SAMPLES.c.serial == serial)
        .order_by(HEALTH_SAMPLES.c.at.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def health_summary(
    conn: Connection, serial: str, model: str, *, policy: ReplacementPolicy
) -> dict[str, Any] | None:
    """A terminal's latest health and each rated wear counter judged against its model's
    rated life (:func:`~fleet.replacements.wear.wear_state`); None if it never reported."""
    latest = latest_health(conn, serial)
    if latest is None:
        return None
    rated = rated_life(conn, model)
    values = {"reader": latest["reader"], "printer": latest["printer_lines"],
              "battery": latest["battery_cycles"]}  # fmt: skip
    wear = [
        wear_state(
            c, int(values[c] or 0), int(rated[c] or 0), _fit(latest, c),
            percent=policy.wear_percent, min_samples=policy.forecast_min_samples,
        ).as_dict()
        for c in COUNTERS
        if rated[c] and values[c] is not None
    ]  # fmt: skip
    return {
        "at": latest["at"].isoformat(timespec="seconds"),
        "samples": latest["samples"],
        "tamper": bool(latest["tamper"]),
        "tampered_at": latest["tampered_at"].isoformat() if latest["tampered_at"] else None,
        "reader": latest["reader"],
        "contactless": latest["contactless"],
        "printer_lines": latest["printer_lines"],
        "paper": _PAPER.get(latest["paper"], "") if latest["paper"] is not None else None,
        "battery_cycles": latest["battery_cycles"],
        "battery_health": latest["battery_health"],
        "battery_level": latest["battery_level"],
        "uptime": latest["uptime"],
        "last_reboot": _REBOOT.get(latest["last_reboot"], str(latest["last_reboot"])),
        "free_storage": latest["free_storage"],
        "wear": wear,
    }


_PAPER = {0: "ok", 1: "low", 2: "out"}
_REBOOT = {r.value: r.name.lower().replace("_", " ") for r in RebootReason}


def health_lines(summary: dict[str, Any]) -> dict[str, str]:
    """A health summary as field → text, for a two-column table."""
    lines = {
        "reported": f"{summary['at']} UTC ({summary['samples']} samples)",
        "tamper": (
            f"TRIPPED {summary['tampered_at'] or '(time unknown)'}"
            if summary["tamper"]
            else "intact"
        ),
    }
    for w in summary["wear"]:
        text = f"{w['value']:,} of {w['rated']:,} rated ({w['percent']}%)"
        if w["past"]:
            text += ": past the limit"
        elif w["forecast"]:
            text += f", reaches the limit about {w['forecast']} ({w['samples']} samples)"
        if w["rate_per_day"] is not None:
            text += f"; {w['rate_per_day']:,}/day"
        lines[w["counter"]] = text
    if summary["battery_health"] is not None:
        lines["battery"] = (
            f"{summary['battery_level']}% charged, {summary['battery_health']}% of new capacity"
        )
    if summary["paper"] is not None:
        lines["paper"] = summary["paper"]
    lines["last reboot"] = f"{summary['last_reboot']}, up {summary['uptime']:,} s"
    lines["free storage"] = f"{summary['free_storage']:,} bytes"
    return lines


def rated_life(conn: Connection, model: str) -> dict[str, int | None]:
    """A model's rated life per wear counter (None: not rated)."""
    row = conn.execute(
        select(
            MODELS.c.reader_rated_cycles,
            MODELS.c.printer_rated_lines,
            MODELS.c.battery_rated_cycles,
        ).where(MODELS.c.code == model)
    ).first()
    return dict(zip(COUNTERS, row or (None, None, None), strict=True))


# -- the poll -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollResult:
    """One terminal's poll: its health, or why there is none."""

    serial: str
    url: str
    health: HealthInfo | None = None
    error: str | None = None
    code: str | None = None
    """The terminal's response code when it refused (``30``: a v1 terminal)."""
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.health is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"serial": self.serial, "url": self.url, "ok": self.ok}
        if self.health is not None:
            h = self.health
            out |= {
                "reader": h.card_reads.chip + h.card_reads.magstripe,
                "contactless": h.card_reads.contactless,
                "printer_lines": h.printer.lines if h.printer else None,
                "battery_cycles": h.battery.cycles if h.battery else None,
                "tamper": h.tampered,
            }
        else:
            out |= {"error": self.error, "code": self.code, "retryable": self.retryable}
        return out


@dataclass(frozen=True, slots=True)
class PollTarget:
    serial: str
    tid: str
    url: str


def poll_targets(engine: Engine, serials: Sequence[str] | None = None) -> list[PollTarget]:
    """The terminals to poll: ``serials`` (each must exist and have a link and a TID), or
    every deployed or faulty terminal with a link."""
    t = TERMINALS
    with engine.connect() as conn:
        stmt = select(t.c.serial, t.c.tid, t.c.link).order_by(t.c.serial)
        if serials:
            found = {r.serial: r for r in conn.execute(stmt.where(t.c.serial.in_(serials)))}
            for s in serials:
                if s not in found:
                    raise NotFoundError(f"unknown terminal {s}")
                if not found[s].link or not found[s].tid:
                    raise InputError(f"terminal {s} has no link or no TID", where="health poll")
            rows: Iterable[Any] = [found[s] for s in dict.fromkeys(serials)]
        else:
            rows = conn.execute(
                stmt.where(
                    t.c.status.in_(("deployed", "faulty")),
                    t.c.link.is_not(None),
                    t.c.tid.is_not(None),
                )
            ).all()
    return [PollTarget(r.serial, r.tid, r.link) for r in rows]


def _serial_poll(target: PollTarget, sign_on: bool, t2: float) -> PollResult:
    from protocols.link import Link  # noqa: PLC0415
    from protocols.linkurl import check_url  # noqa: PLC0415
    from protocols.session import HostSession  # noqa: PLC0415

    try:
        check_url(target.url, loop=False)
        with Link(target.url, 115200, t2=t2) as link:
            host = HostSession(link, target.tid, bytes(16))
            health = None
            if sign_on:
                signed = host.sign_on()
                if signed.info.serial != target.serial:
                    return PollResult(
                        target.serial, target.url,
                        error=f"answers as serial {signed.info.serial}, not {target.serial}",
                    )  # fmt: skip
                health = signed.health
            return PollResult(target.serial, target.url, health or host.health())
    except ProtocolError as exc:
        return _failed(target, exc)
    except OSError as exc:
        return PollResult(target.serial, target.url, error=exc.strerror or str(exc), retryable=True)


def _failed(target: PollTarget, exc: ProtocolError) -> PollResult:
    code = getattr(exc, "code", None)
    return PollResult(
        target.serial, target.url, error=str(exc), code=code, retryable=isinstance(exc, LinkError)
    )


def _engine_polls(
    targets: Sequence[PollTarget], sign_on: bool, concurrency: int, t2: float
) -> Iterator[PollResult]:
    from protocols.engine import Engine as Links  # noqa: PLC0415
    from protocols.engine import health_job  # noqa: PLC0415

    links = Links(concurrency=concurrency, t2=t2)
    jobs = (health_job(t.url, t.tid, serial=t.serial if sign_on else None, tag=t) for t in targets)
    for outcome in links.run(jobs):
        target: PollTarget = outcome.job.tag
        if outcome.error is not None:
            yield _failed(target, outcome.error)
        else:
            yield PollResult(target.serial, target.url, outcome.value.health)


def poll(
    engine: Engine,
    targets: Sequence[PollTarget],
    *,
    sign_on: bool = False,
    concurrency: int = 256,
    t2: float = 5.0,
    progress: Callable[[PollResult], None] | None = None,
    clock: Callable[[], datetime] = now,
    batch: int = 200,
) -> list[PollResult]:
    """Poll ``targets`` and store what they report, ``batch`` samples per transaction.
    ``socket://`` links run together in one engine (``concurrency`` at once), other links
    one after the other. ``sign_on``: a sign-on that checks each serial instead of the
    light 0800/303. Returns every terminal's result in the targets' order."""
    on_tcp = [t for t in targets if t.url.startswith("socket://")]
    others = [t for t in targets if not t.url.startswith("socket://")]
    results: dict[str, PollResult] = {}
    pending: list[HealthReport] = []

    def flush() -> None:
        if pending:
            with writer(engine).begin() as conn:
                record_health(conn, pending)
            pending.clear()

    def take(result: PollResult) -> None:
        results[result.serial] = result
        if result.health is not None:
            pending.append(HealthReport(result.serial, result.health, clock(), "poll"))
            if len(pending) >= batch:
                flush()
        if progress is not None:
            progress(result)

    if on_tcp:
        for result in _engine_polls(on_tcp, sign_on, concurrency, t2):
            take(result)
    for target in others:
        take(_serial_poll(target, sign_on, t2))
    flush()
    return [results[t.serial] for t in targets]


# -- importing a history ---------------------------------------------------------------------

HEALTH_SCHEMA = Schema(
    "health",
    (
        Column("serial", parse_serial),
        Column("at", parse_datetime),
        Column("chip", parse_int),
        Column("contactless", parse_int),
        Column("magstripe", parse_int),
        Column("printer_lines", parse_int, required=False),
        Column("paper", lambda t: parse_int(t, high=2), required=False, default=0),
        Column("battery_level", lambda t: parse_int(t, high=100), required=False),
        Column("battery_health", lambda t: parse_int(t, high=100), required=False),
        Column("battery_cycles", parse_int, required=False),
        Column("tampered", parse_bool, required=False, default=False),
        Column("tampered_at", parse_datetime, required=False),
        Column("uptime", parse_int, required=False, default=0),
        Column("last_reboot", lambda t: parse_int(t, high=6), required=False, default=0),
        Column("free_storage", lambda t: parse_int(t, high=2**63 - 1), required=False, default=0),
    ),
)
"""``posfleet health import``: one health sample per row, as a terminal reported it."""


def _health_of(v: dict[str, Any]) -> HealthInfo:
    battery = [v.get(k) for k in ("battery_level", "battery_health", "battery_cycles")]
    if any(x is not None for x in battery) and None in battery:
        raise ValueError("battery_level, battery_health and battery_cycles go together")
    return HealthInfo(
        card_reads=CardReads(v["chip"], v["contactless"], v["magstripe"]),
        uptime=v.get("uptime") or 0,
        last_reboot=RebootReason(v.get("last_reboot") or 0),
        free_storage=v.get("free_storage") or 0,
        battery=Battery(*battery) if battery[0] is not None else None,  # type: ignore[arg-type]
        printer=(
            Printer(PaperState(v.get("paper") or 0), v["printer_lines"])
            if v.get("printer_lines") is not None
            else None
        ),
        tampered=bool(v.get("tampered")),
        tampered_at=v.get("tampered_at"),
    )


def import_health(engine: Engine, path: Path, *, actor: str, fmt: str | None = None) -> int:
    """Import a health history (CSV, JSON or TOML; :data:`HEALTH_SCHEMA`) as samples of
    source ``import``: every row checked first (a known terminal, values the wire allows),
    then all stored in one transaction, or nothing (:class:`RejectedFileError`). Returns
    the samples stored (a sample already there, same terminal and instant, is skipped)."""
    chosen, header, rows = read_rows(path, "health", fmt)
    errors = FileErrors()
    if chosen == "csv":
        errors.items.extend(HEALTH_SCHEMA.check_header(str(path), header))
    parsed: list[tuple[Row, HealthReport]] = []
    for row in rows:
        values = parse_row(HEALTH_SCHEMA, row, errors, named=chosen != "csv")
        if values is None:
            continue
        try:
            parsed.append(
                (row, HealthReport(values["serial"], _health_of(values), values["at"], "import"))
            )
        except (ValueError, ProtocolError) as exc:
            errors.add(row, "", str(exc))
    with writer(engine).begin() as conn:
        known: set[str] = set()
        serials = sorted({r.serial for _, r in parsed})
        for i in range(0, len(serials), _CHUNK):
            chunk = serials[i : i + _CHUNK]
            known |= set(
                conn.execute(
                    select(TERMINALS.c.serial).where(TERMINALS.c.serial.in_(chunk))
                ).scalars()
            )
        for row, report in parsed:
            if report.serial not in known:
                errors.add(row, "serial", f"unknown terminal {report.serial}")
        if errors:
            raise RejectedFileError(errors.items)
        before = conn.execute(select(func.count()).select_from(HEALTH_SAMPLES)).scalar_one()
        record_health(conn, [r for _, r in parsed])
        after = conn.execute(select(func.count()).select_from(HEALTH_SAMPLES)).scalar_one()
        record_import(conn, "health", path, len(parsed), after - before, actor=actor)
    return int(after - before)
