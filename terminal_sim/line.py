"""A serial line emulator: a null-modem cable between two ports, at a baud rate, with faults.

A pty moves bytes at memory speed whatever baud it is set to; :class:`Line` delivers each
byte no earlier than ``max(arrival + latency, previous byte's end) + 10 bits / baud``, so
the far side sees a real 9600- or 115200-baud line (8N1: 10 bits a byte). Bytes are
forwarded as they arrive (cut-through), in small groups at their due times.

Faults are decided **per unit**, not per byte (1 % of bytes lost would destroy every
986-byte frame): a unit is a frame — from STX through LRC, its size known from the BCD
length (LEN + 5 bytes) — or a single byte outside a frame (ACK, NAK, noise). An STX whose
length is not BCD is a unit of one byte. Each unit is dropped with probability ``drop``;
otherwise corrupted with probability ``corrupt`` (one random bit of one random byte of
it flipped). ``cut_after`` cuts the cable that many seconds after it starts: every byte
both ways is lost for ``cut_for`` seconds (forever when None), then the line is back.

Each end is ``pty`` (a fresh pty: the line serves its master, users open the printed slave
path), a device path or any pyserial URL, or an already-open port object.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import sys
import termios
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from protocols.errors import LinkError
from protocols.framing import STX, bcd_length
from protocols.pty import FdPort, open_pty

__all__ = ["Line", "LineConfig", "line_command", "parse_duration"]

log = logging.getLogger("possim.line")

BITS_PER_BYTE = 10
_POLL = 0.001


@dataclass(frozen=True, slots=True)
class LineConfig:
    """How the emulated line behaves (see the module docstring)."""

    baud: int = 9600
    latency: float = 0.0
    drop: float = 0.0
    corrupt: float = 0.0
    cut_after: float | None = None
    cut_for: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.baud <= 0:
            raise ValueError(f"baud must be positive, got {self.baud}")
        for name in ("drop", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in 0..1, got {value}")
        for name in ("latency", "cut_after", "cut_for"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass
class DirectionStats:
    bytes_in: int = 0
    bytes_out: int = 0
    units: int = 0
    dropped_units: int = 0
    corrupted_units: int = 0
    lost_to_cut: int = 0


@dataclass
class _Unit:
    """The unit being forwarded: its size once known, and its fate."""

    drop: bool
    corrupt: bool
    size: int | None = None  # None until the length bytes have arrived
    seen: int = 0
    flip_at: int = 0
    head: bytearray = field(default_factory=bytearray)


class _Direction:
    """Bytes from ``src`` to ``dst``: faults on arrival, pacing on delivery."""

    def __init__(self, name: str, src: Any, dst: Any, cfg: LineConfig, rng: random.Random,
                 line: Line) -> None:  # fmt: skip
        self.name, self.src, self.dst, self.cfg, self.rng, self.line = (
            name,
            src,
            dst,
            cfg,
            rng,
            line,
        )
        self.stats = DirectionStats()
        self.byte_time = BITS_PER_BYTE / cfg.baud
        self.queue: deque[tuple[float, int]] = deque()  # (due time, byte)
        self.free_at = 0.0  # when the wire is free for the next byte
        self.unit: _Unit | None = None
        self.thread = threading.Thread(target=self._run, name=f"line {name}", daemon=True)

    # -- faults, per unit ----------------------------------------------------------------

    def _new_unit(self, byte: int) -> _Unit:
        self.stats.units += 1
        drop = self.rng.random() < self.cfg.drop
        corrupt = not drop and self.rng.random() < self.cfg.corrupt
        unit = _Unit(drop, corrupt)
        if byte != STX:
            unit.size = 1
        if drop:
            self.stats.dropped_units += 1
        elif corrupt:
            self.stats.corrupted_units += 1
        return unit

    def _admit(self, data: bytes, now: float) -> None:
        out = bytearray()
        self._split(data, out)
        self._schedule(out, now)

    def _split(self, data: bytes, out: bytearray) -> None:
        for byte in data:
            if self.unit is None:
                self.unit = self._new_unit(byte)
            unit = self.unit
            unit.seen += 1
            if unit.size is None:
                unit.head.append(byte)
                if len(unit.head) == 3:
                    length = bcd_length(unit.head[1], unit.head[2]) or None
                    if length is None:  # not a frame (or LEN 0000): the STX alone was the unit
                        self.unit = None
                        self._emit(bytes(unit.head[:1]), unit, out, first=True)
                        self._split(bytes(unit.head[1:]), out)
                        continue
                    unit.size = length + 5
                    unit.flip_at = self.rng.randrange(unit.size)
                    self._emit(bytes(unit.head), unit, out, first=True)
            elif unit.size == 1:
                unit.flip_at = 0
                self._emit(bytes((byte,)), unit, out, first=True)
            else:
                self._emit(bytes((byte,)), unit, out, first=False)
            if unit.size is not None and unit.seen >= unit.size:
                self.unit = None

    def _emit(self, chunk: bytes, unit: _Unit, out: bytearray, *, first: bool) -> None:
        if unit.drop:
            return
        start = unit.seen - len(chunk) if not first else 0
        data = bytearray(chunk)
        if unit.corrupt and start <= unit.flip_at < start + len(data):
            data[unit.flip_at - start] ^= 1 << self.rng.randrange(8)
        out += data

    def _schedule(self, data: bytes | bytearray, now: float) -> None:
        ready = now + self.cfg.latency
        t = self.free_at
        for byte in data:
            t = max(t, ready) + self.byte_time
            self.queue.append((t, byte))
        self.free_at = t

    # -- the pump -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self.line._stop.is_set():
                self._deliver_due()
                wait = _POLL
                if self.queue:
                    wait = max(0.0, min(_POLL, self.queue[0][0] - time.monotonic()))
                if isinstance(self.src, FdPort):  # cheap to change; a pyserial port keeps _POLL
                    self.src.timeout = wait
                data = self.src.read(self.src.in_waiting or 1) if wait > 0 else b""
                now = time.monotonic()
                if data:
                    self.stats.bytes_in += len(data)
                    if self.line.is_cut(now):
                        self.stats.lost_to_cut += len(data)
                        self.unit = None
                    else:
                        self._admit(data, now)
        except Exception as exc:  # a port went away: end the line, say why
            if not self.line._stop.is_set():
                self.line.error = f"{self.name}: {exc}"
                log.error("%s", self.line.error)
                self.line._stop.set()

    def _deliver_due(self) -> None:
        now = time.monotonic()
        if self.line.is_cut(now) and self.queue:
            self.stats.lost_to_cut += len(self.queue)
            self.queue.clear()
            self.free_at = now
            return
        group = bytearray()
        while self.queue and self.queue[0][0] <= now:
            group.append(self.queue.popleft()[1])
        if group:
            self.dst.write(bytes(group))
            self.stats.bytes_out += len(group)


class Line:
    """A paced, faulty null-modem between ``a`` and ``b`` (see the module docstring)."""

    def __init__(self, a: Any, b: Any, config: LineConfig | None = None) -> None:
        self.config = config or LineConfig()
        self.error: str | None = None
        self._stop = threading.Event()
        self._owned: list[Any] = []
        rng = random.Random(self.config.seed)
        try:
            self.port_a, self.a_name = self._open(a)
            self.port_b, self.b_name = self._open(b)
        except BaseException:
            self._close_owned()
            raise
        self.started = time.monotonic()
        self.ab = _Direction("A→B", self.port_a, self.port_b, self.config, rng, self)
        self.ba = _Direction("B→A", self.port_b, self.port_a, self.config, rng, self)
        self.ab.thread.start()
        self.ba.thread.start()

    @property
    def paths(self) -> tuple[str, str]:
        return self.a_name, self.b_name

    def _open(self, end: Any) -> tuple[Any, str]:
        if not isinstance(end, str):
            return end, str(getattr(end, "name", end))
        if end == "pty":
            master, path = open_pty()
            port: Any = FdPort(master, timeout=_POLL, name=path, close_fd=True)
            self._owned.append(port)
            return port, path
        if "://" not in end:  # a device path: raw, and read with exact timeouts
            try:
                fd = os.open(end, os.O_RDWR | os.O_NOCTTY)
            except OSError as exc:
                raise LinkError(f"cannot open {end!r}: {exc.strerror}") from exc
            if os.isatty(fd):
                tty.setraw(fd, termios.TCSANOW)
            port = FdPort(fd, timeout=_POLL, name=end, close_fd=True)
            self._owned.append(port)
            return port, end
        import serial  # noqa: PLC0415 - only a URL end needs pyserial; `possim --help` does not

        try:
            port = serial.serial_for_url(end, baudrate=self.config.baud, timeout=_POLL)
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot open {end!r}: {exc}") from exc
        self._owned.append(port)
        return port, end

    def is_cut(self, now: float) -> bool:
        cfg = self.config
        if cfg.cut_after is None:
            return False
        since = now - self.started - cfg.cut_after
        return since >= 0 and (cfg.cut_for is None or since < cfg.cut_for)

    def stats(self) -> dict[str, dict[str, int]]:
        return {"A→B": vars(self.ab.stats).copy(), "B→A": vars(self.ba.stats).copy()}

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the line stops (a port failed) or ``timeout``; True if it stopped."""
        return self._stop.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        for direction in (self.ab, self.ba):
            if direction.thread.is_alive() and direction.thread is not threading.current_thread():
                direction.thread.join(5)
        self._close_owned()

    def _close_owned(self) -> None:
        while self._owned:
            with contextlib.suppress(OSError):
                self._owned.pop().close()

    def __enter__(self) -> Line:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def parse_duration(text: str) -> float:
    """``20ms`` → 0.02, ``5s``/``5`` → 5.0, ``2m`` → 120.0.

    >>> parse_duration("20ms"), parse_duration("1.5s"), parse_duration("2m"), parse_duration("3")
    (0.02, 1.5, 120.0, 3.0)
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 20ms, 5s, 2m)")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def line_command(
    a: Annotated[str, typer.Argument(help="End A: 'pty', a device or a pyserial URL.")],
    b: Annotated[str, typer.Argument(help="End B: 'pty', a device or a pyserial URL.")],
    baud: Annotated[int, typer.Option(help="Line speed: bytes are paced at baud / 10.")] = 9600,
    latency: Annotated[str, typer.Option(help="One-way delay added to every byte.")] = "0ms",
    drop: Annotated[float, typer.Option(help="Probability a frame (or lone byte) is lost.")] = 0.0,
    corrupt: Annotated[float, typer.Option(help="Probability a frame gets a bit flipped.")] = 0.0,
    cut_after: Annotated[str | None, typer.Option(help="Cut the cable after this long.")] = None,
    cut_for: Annotated[
        str | None, typer.Option(help="How long the cut lasts (default: for good).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible faults.")] = None,
) -> None:
    """A null-modem cable emulator between A and B: pacing, latency, drops, corruption, cuts.

    Prints `READY <A> <B>` (a 'pty' end as its path), then logs to stderr.
    """
    try:
        config = LineConfig(
            baud=baud,
            latency=_duration(latency) or 0.0,
            drop=drop,
            corrupt=corrupt,
            cut_after=_duration(cut_after),
            cut_for=_duration(cut_for),
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        line = Line(a, b, config)
    except LinkError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        sys.stdout.write(f"READY {line.a_name} {line.b_name}\n")
        sys.stdout.flush()
        log.info("line %s ⇄ %s: %s", line.a_name, line.b_name, config)
        while not stop.wait(0.2):
            if line.wait(0):
                break
    finally:
        line.close()
        log.info("line stats: %s", line.stats())
    if line.error:
        typer.echo(f"error: {line.error}", err=True)
        raise typer.Exit(1)
