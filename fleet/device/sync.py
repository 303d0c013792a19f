"""``posfleet sync``: sign on to a terminal (0800/001) and record what it reports.

The terminal is found by serial (its recorded link, or ``--port``) or by the link URL
alone. What it reports must agree with the inventory on identity (serial, MID) and name
a model and firmware the catalog knows; then model, firmware, active and pending table
versions and ``last_seen`` are written, with an audit entry of what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import FIRMWARE, TERMINALS, now
from fleet.inventory.service import NotFoundError, get_terminal, terminal_cells
from protocols.errors import ProtocolError
from protocols.link import Link
from protocols.session import HostSession, SignOn

__all__ = ["SyncError", "SyncResult", "find_target", "record_sign_on", "sync"]

_UNSIGNED = bytes(16)
"""Sign-on is not MACed (wire protocol §5), so sync needs no terminal key."""


class SyncError(Exception):
    """The terminal answered, but its answer can't be recorded (names what disagrees)."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    serial: str
    url: str
    sign_on: SignOn
    changes: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        info = self.sign_on.info
        return {
            "serial": self.serial,
            "url": self.url,
            "model": info.model,
            "firmware": info.firmware,
            "active_version": info.active_version,
            "pending_version": info.pending_version,
            "mid": self.sign_on.mid,
            "changes": self.changes,
        }


def find_target(engine: Engine, serial: str | None, port: str | None) -> tuple[dict[str, Any], str]:
    """The inventory row to sync and the URL to reach it on."""
    with engine.connect() as conn:
        if serial is not None:
            row = get_terminal(conn, serial)
            if row is None:
                raise NotFoundError(f"unknown terminal {serial}")
        elif port is not None:
            found = conn.execute(select(TERMINALS).where(TERMINALS.c.link == port)).all()
            if not found:
                raise NotFoundError(
                    f"no terminal in the inventory has link {port}: give --terminal"
                )
            if len(found) > 1:
                names = ", ".join(r.serial for r in found)
                raise NotFoundError(
                    f"{len(found)} terminals have link {port} ({names}): give --terminal"
                )
            row = dict(found[0]._mapping)
        else:
            raise ValueError("give a serial or a port")
    url = port or row["link"]
    if not url:
        raise NotFoundError(f"terminal {row['serial']} has no link URL: give --port")
    if not row["tid"]:
        raise SyncError(f"terminal {row['serial']} has no TID: it can't be signed on to")
    return row, url


def record_sign_on(
    engine: Engine, serial: str, url: str, signed: SignOn, *, actor: str
) -> dict[str, list[str]]:
    """Check a sign-on against the inventory and write it; returns the changed cells."""
    info = signed.info
    with writer(engine).begin() as conn:
        row = get_terminal(conn, serial)
        if row is None:
            raise NotFoundError(f"unknown terminal {serial}")
        if info.serial != serial:
            raise SyncError(f"{url} answers as serial {info.serial}, not {serial}: check the link")
        if row["mid"] and signed.mid != row["mid"]:
            raise SyncError(f"{serial} reports MID {signed.mid}, the inventory has {row['mid']}")
        known = conn.execute(
            select(FIRMWARE.c.version).where(
                FIRMWARE.c.model == info.model, FIRMWARE.c.version == info.firmware
            )
        ).first()
        if known is None:
            raise SyncError(
                f"{serial} reports model {info.model} firmware {info.firmware}, "
                "not in the catalog: import it first (posfleet catalog import)"
            )
        values = {
            "model": info.model,
            "firmware": info.firmware,
            "active_version": info.active_version,
            "pending_version": info.pending_version,
            "link": url,
            "last_seen": now(),
        }
        before = terminal_cells(row)
        after = terminal_cells(row | values)
        changes = {
            k: [before[k], after[k]] for k in after if before[k] != after[k] and k != "last_seen"
        }
        conn.execute(update(TERMINALS).where(TERMINALS.c.serial == serial).values(**values))
        audit.record(
            conn,
            actor=actor,
            action="sync",
            target=f"terminal:{serial}",
            details={"url": url, "changes": changes, "mid": signed.mid},
        )
    return changes


def sync(
    engine: Engine,
    *,
    actor: str,
    serial: str | None = None,
    port: str | None = None,
    baud: int = 115200,
    t2: float = 5.0,
) -> SyncResult:
    """Sign on to one terminal and record it. Raises ProtocolError, SyncError, NotFoundError."""
    row, url = find_target(engine, serial, port)
    try:
        with Link(url, baud, t2=t2) as link:
            signed = HostSession(link, row["tid"], _UNSIGNED).sign_on()
    except ProtocolError as exc:
        raise SyncError(f"{row['serial']} at {url}: {exc}") from exc
    except OSError as exc:
        raise SyncError(f"{row['serial']} at {url}: {exc.strerror or exc}") from exc
    changes = record_sign_on(engine, row["serial"], url, signed, actor=actor)
    return SyncResult(row["serial"], url, signed, changes)
