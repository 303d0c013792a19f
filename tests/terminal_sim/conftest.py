"""Fixtures: an emulated terminal served on a real pty, and a host session to talk to it."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from protocols.feetable import FeeRule, FeeTable
from protocols.link import Link
from protocols.mac import derive_terminal_key, generate_master_key_file
from protocols.session import HostSession
from protocols.values import CardType
from terminal_sim.serve import FleetServer, serve_terminal
from terminal_sim.terminal import Terminal, TerminalConfig

SERIAL = "PF00000042"
TID = "TERM0042"
MID = "MERCHANT0000042"
MASTER = bytes(range(16))
KEY = derive_terminal_key(MASTER, SERIAL)
PAST = datetime(2026, 1, 1, tzinfo=UTC)


def make_table(version: int, *, rules: int = 2, effective: datetime = PAST) -> FeeTable:
    """Credit 0.60% (min 0.10) for MCC 5000-5999, debit 0.38% for everyone; ``rules`` > 2
    adds filler rules so the table spans several blocks."""
    base = [
        FeeRule(CardType.CREDIT, 5000, 5999, 6000, min_fee=10),
        FeeRule(CardType.DEBIT, 0, 9999, 3800 + version),
    ]
    filler = [FeeRule(CardType.QR_WALLET, n % 10_000, n % 10_000, 1000) for n in range(rules - 2)]
    return FeeTable(version, effective, 156, tuple(base + filler))


class Clock:
    """A settable clock for activation tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    terminal: Terminal
    path: str
    clock: Clock
    state_dir: Path

    def session(self, *, key: bytes = KEY, tid: str = TID, t2: float = 5.0) -> HostSession:
        link = Link(self.path, 115200, t2=t2)
        return HostSession(link, tid, key)


def config(serial: str = SERIAL, mcc: int = 5411) -> TerminalConfig:
    return TerminalConfig(
        serial, "PF-200", "1.4.2", TID, MID, mcc, derive_terminal_key(MASTER, serial)
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    clock = Clock()
    terminal = Terminal(config(), tmp_path / "state", clock=clock)
    stop = threading.Event()
    ready: queue.Queue[str] = queue.Queue()
    thread = threading.Thread(
        target=serve_terminal, args=(terminal, "pty", stop, ready.put), kwargs={"baud": 115200}
    )
    thread.start()
    try:
        yield Served(terminal, ready.get(timeout=10), clock, tmp_path / "state")
    finally:
        stop.set()
        thread.join(10)
        terminal.close()


@contextlib.contextmanager
def fleet_serving(terminals: list[Terminal], **kw: Any) -> Iterator[FleetServer]:
    """``terminals`` served by a FleetServer (loop thread + handler pool) on 127.0.0.1."""
    server = FleetServer(terminals, "127.0.0.1", 0, 115200, **kw)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(10)
        server.close()


@pytest.fixture
def master_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    path.write_text(MASTER.hex() + "\n")
    path.chmod(0o600)  # a key file others can read is refused
    return path


__all__ = [
    "KEY",
    "MID",
    "SERIAL",
    "TID",
    "Served",
    "fleet_serving",
    "generate_master_key_file",
    "make_table",
]
