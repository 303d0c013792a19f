"""What ``possim show`` tells about a terminal's keys and hardware, from its state store.

Never a key: versions and check values only (:func:`protocols.mac.key_check_value`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from protocols.health import HealthInfo
from protocols.mac import key_check_value
from terminal_sim.state import StateStore
from terminal_sim.wear import health_info, profile_for

__all__ = ["health_document", "keys_document", "print_keys_and_health"]


def keys_document(store: StateStore) -> dict[str, Any]:
    """The MAC key's version and check value (never the key): those of a key change, else
    those the terminal was configured with at its last boot."""
    stored = store.mac_keys()
    boot = store.boot_info()
    if "current" in stored:
        version, key = stored["current"]
        source, kcv = "key change", key_check_value(key)
    elif boot is not None:
        version, source, kcv = boot.key_version, "--key-file", boot.key_kcv
    else:
        return {"version": None, "check_value": None, "source": None, "next_version": None}
    nxt = stored.get("next")
    return {
        "version": version,
        "check_value": kcv.hex().upper(),
        "source": source,
        "next_version": nxt[0] if nxt else None,
        "next_check_value": key_check_value(nxt[1]).hex().upper() if nxt else None,
    }


def health_document(store: StateStore) -> dict[str, Any] | None:
    wear, boot = store.wear(), store.boot_info()
    if wear is None or boot is None:
        return None
    uptime = int(datetime.now(UTC).timestamp() - boot.booted_at.timestamp())
    h: HealthInfo = health_info(
        wear, profile_for(boot.model), uptime=uptime, tampered_at=store.tampered_at()
    )
    return {
        "model": boot.model,
        "running": store.running(),
        "booted_at": boot.booted_at.isoformat(),
        "last_reboot": h.last_reboot.name.lower(),
        "card_reads": {
            "chip": h.card_reads.chip,
            "contactless": h.card_reads.contactless,
            "magstripe": h.card_reads.magstripe,
        },
        "printer": None
        if h.printer is None
        else {"paper": h.printer.paper.name.lower(), "lines": h.printer.lines},
        "battery": None
        if h.battery is None
        else {"level": h.battery.level, "health": h.battery.health, "cycles": h.battery.cycles},
        "free_storage": h.free_storage,
        "tampered": h.tampered,
        "tampered_at": h.tampered_at.isoformat() if h.tampered_at else None,
    }


def print_keys_and_health(out: Console, doc: dict[str, Any]) -> None:
    """The key and health lines of ``possim show``."""
    keys = doc["keys"]
    if keys["version"] is None:
        out.print("MAC key: not known yet (the terminal has not booted with this version)")
    else:
        nxt = (
            f"; next key version {keys['next_version']} (check value "
            f"{keys['next_check_value']}) awaits confirmation"
            if keys["next_version"]
            else ""
        )
        out.print(
            f"MAC key: version {keys['version']} (check value {keys['check_value']}, from "
            f"{keys['source']}){nxt}"
        )
    h = doc["health"]
    if h is None:
        return
    state = "running" if h["running"] else "stopped"
    out.print(f"health ({h['model']}, {state}, last boot: {h['last_reboot'].replace('_', ' ')})")
    reads = h["card_reads"]
    out.print(
        f"  card reads: chip {reads['chip']:,} · contactless {reads['contactless']:,} · "
        f"magstripe {reads['magstripe']:,}",
        highlight=False,
    )
    if h["printer"]:
        p = h["printer"]
        out.print(f"  printer: {p['lines']:,} lines, paper {p['paper']}", highlight=False)
    if h["battery"]:
        b = h["battery"]
        out.print(
            f"  battery: {b['level']} %, {b['health']} % of new capacity, {b['cycles']:,} cycles",
            highlight=False,
        )
    out.print(f"  storage: {h['free_storage'] / 2**20:,.1f} MiB free", highlight=False)
    if h["tampered"]:
        when = h["tampered_at"] or "an unknown time"
        out.print(f"[bold red]TAMPERED[/] at {when}: downloads and key changes refused (66)")
