"""Each terminal's maintenance window: its merchant's own, else the first policy group
that includes the merchant, else the default (:class:`~fleet.core.policy.MaintenancePolicy`),
on the merchant's local clock (:class:`~fleet.core.windows.Window`). A terminal without a
merchant is on UTC.

:func:`windows_for` looks them up; :func:`outside` says which terminals a push now would
reach outside their window (``posfleet push`` refuses those unless ``--now --reason``);
the rollout worker defers such jobs to their window's opening.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from fleet.core.errors import InputError
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.core.policy import MaintenancePolicy
from fleet.core.windows import Window
from fleet.fees.errors import FeeFileError
from fleet.fees.group import Group, parse_group

__all__ = ["TerminalWindow", "has_windows", "outside", "windows_for"]

_CHUNK = 900


@dataclass(frozen=True, slots=True)
class TerminalWindow:
    serial: str
    zone: str
    window: Window
    source: str
    """Where it comes from: ``merchant M…``, ``group region=east``, ``default``."""

    def is_open(self, at: datetime) -> bool:
        return self.window.is_open(self.zone, at)

    def next_open(self, at: datetime) -> datetime:
        return self.window.next_open(self.zone, at)

    def describe(self) -> str:
        return f"{self.window.text()} {self.zone} ({self.source})"


def has_windows(policy: MaintenancePolicy) -> bool:
    """Some terminal may have a window (a default, a group's or a merchant's)."""
    windows = [policy.default, *(w for _, w in policy.groups), *(w for _, w in policy.merchants)]
    return any(start != end for start, end in windows)


def _groups(policy: MaintenancePolicy) -> list[tuple[str, Group, Window]]:
    found = []
    for text, (start, end) in policy.groups:
        try:
            found.append((text, parse_group(text), Window(start, end)))
        except FeeFileError as exc:
            raise InputError(str(exc), where=f"policy: maintenance.groups.{text}") from None
    return found


def windows_for(
    conn: Connection, serials: Iterable[str], policy: MaintenancePolicy
) -> dict[str, TerminalWindow]:
    """Each known terminal's window (serials the inventory lacks are left out)."""
    groups = _groups(policy)
    own = {m: Window(*w) for m, w in policy.merchants}
    default = Window(*policy.default)
    found: dict[str, TerminalWindow] = {}
    wanted = list(dict.fromkeys(serials))
    t, m = TERMINALS, MERCHANTS
    for i in range(0, len(wanted), _CHUNK):
        rows = conn.execute(
            select(t.c.serial, m.c.id, m.c.timezone, m.c.mcc, m.c.region, m.c.tags)
            .select_from(t)
            .outerjoin(m, m.c.id == t.c.merchant_id)
            .where(t.c.serial.in_(wanted[i : i + _CHUNK]))
        )
        for row in rows:
            found[row.serial] = _window_of(row, own, groups, default)
    return found


def _window_of(
    row: Any,
    own: dict[str, Window],
    groups: Sequence[tuple[str, Group, Window]],
    default: Window,
) -> TerminalWindow:
    zone = row.timezone or "UTC"
    if row.id is not None:
        if row.id in own:
            return TerminalWindow(row.serial, zone, own[row.id], f"merchant {row.id}")
        for text, group, window in groups:
            if group.includes(row.mcc, row.region, row.tags or []):
                return TerminalWindow(row.serial, zone, window, f"group {text}")
    return TerminalWindow(row.serial, zone, default, "default")


def outside(
    conn: Connection, serials: Sequence[str], policy: MaintenancePolicy, at: datetime
) -> list[TerminalWindow]:
    """The terminals of ``serials`` whose window is closed at ``at``."""
    return [w for w in windows_for(conn, serials, policy).values() if not w.is_open(at)]
