"""The host's many-links engine: thousands of terminal conversations over TCP from one thread.

Each job is one terminal (``socket://HOST:PORT``) and one sans-I/O flow of
:mod:`protocols.flows`; the engine connects (non-blocking), runs the flow over a
:class:`~protocols.linkstate.LinkMachine` (the link rules :class:`~protocols.link.Link`
follows: same code), and reports the flow's result or error. Up to ``concurrency`` links
are open at once; everything runs in one :class:`~protocols.netloop.NetLoop` thread. It is
I/O and protocol only: no database, no retry policy (a failed job's report says whether
it is worth retrying; a retried download resumes where the terminal stopped).

Two ways in:

* :meth:`Engine.run` — in the calling thread: give jobs, iterate reports as they finish;
* :meth:`Engine.start` + :meth:`Engine.submit` — the loop in a thread of its own; any thread
  submits jobs and gets a :class:`concurrent.futures.Future` per job (what a rollout
  worker with its own database threads calls).

Three kinds of job, each what the fleet does per terminal, with the semantics of the
matching :class:`~protocols.session.HostSession` call (the same flows run them):

* :func:`push_job` — a fee table: sign on (the serial must be the expected one), skip a
  terminal that has the version, resume from the block it reports, commit, then a status
  query that must show the version active or pending, and an optional test sale whose
  outcome the caller checks against its own fee computation. Blocks are encoded and MAC'd
  once per table and terminal key (:class:`~protocols.flows.PreparedTable`).
* :func:`health_job` — the health poll (0800/303), or a sign-on when the serial must be
  checked (its answer carries the same health tags).
* :func:`rotate_job` — a key rotation (0800/161 then 162), resumed from what the sign-on
  reports; the confirmation's answer must show the new key in use.

**Keys.** A job is given the terminal's key, or its keys of several versions (a
:class:`~protocols.keys.TerminalKeyRing`, terminal keys, or a lookup ``version ->
TerminalKey | None`` such as :meth:`TerminalKeyRing.derived` from the fleet's master
keys); the sign-on picks the key of the version the terminal reports, so pushes go on in
the middle of a rotation. No key of its versions: the job fails with
:class:`~protocols.errors.KeyVersionError` (its ``held`` says what the terminal holds)
before anything signed is sent.

**Failures** are typed: :class:`~protocols.errors.LinkError` (worth retrying:
:attr:`Outcome.retryable`; a download or a rotation resumes), and, never retryable,
:class:`~protocols.errors.RefusedError` with its code — ``66``
:class:`~protocols.errors.TamperedError`, ``94`` :class:`~protocols.errors.ReplayedError`,
``F2`` :class:`~protocols.errors.KeyCheckError` —, :class:`KeyVersionError`,
:class:`CheckError` and decode or MAC errors.

(Over 400 lines: the engine and the jobs built on it are read together.)
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import MISSING, dataclass, field, fields
from time import monotonic
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

from protocols.errors import LinkError, ProtocolError, RefusedError
from protocols.flows import (
    Conversation,
    Flow,
    KeyRotation,
    PreparedTable,
    PushResult,
    RotationStep,
    SaleOutcome,
    SignOn,
)
from protocols.health import HealthInfo
from protocols.keys import KeySource, KeyVersions
from protocols.linkstate import LinkMachine, LinkStats
from protocols.mac import TerminalKey
from protocols.messages import EntryMode
from protocols.netloop import Channel, NetLoop
from protocols.tlv import DownloadStatus
from protocols.values import CardType

__all__ = [
    "CheckError",
    "Engine",
    "HealthOutcome",
    "Job",
    "JobKey",
    "Outcome",
    "PushOutcome",
    "RotateOutcome",
    "VerifySale",
    "conversation_for",
    "health_job",
    "push_job",
    "rotate_job",
    "tcp_address",
]

_WRITE: Final = 2  # selectors.EVENT_WRITE


class CheckError(ProtocolError):
    """The terminal answered, but not what the host expects (another serial, a version
    missing after commit): trying again at once would not change it."""


def tcp_address(url: str) -> tuple[str, int]:
    """``socket://HOST:PORT`` → ``(HOST, PORT)``; :class:`LinkError` for anything else.

    >>> tcp_address("socket://127.0.0.1:9000")
    ('127.0.0.1', 9000)
    >>> tcp_address("/dev/ttyUSB0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocols.errors.LinkError: cannot open '/dev/ttyUSB0': the engine drives socket://... only
    """
    parts = urlsplit(url)
    if parts.scheme != "socket" or not parts.hostname or parts.port is None:
        raise LinkError(f"cannot open {url!r}: the engine drives socket://HOST:PORT only")
    return parts.hostname, parts.port


@dataclass(frozen=True, slots=True)
class Job:
    """One conversation: ``flow()`` makes the flow once the link is up."""

    url: str
    flow: Callable[[], Flow[Any]]
    tag: Any = None
    """The caller's reference, handed back in the :class:`Outcome`."""
    state: Any = None
    """What the flow fills in as it goes (kept when it fails), e.g. a :class:`PushOutcome`."""


@dataclass(slots=True)
class Outcome:
    """How a job ended: ``value`` (the flow's result) or ``error``."""

    job: Job
    value: Any = None
    error: ProtocolError | None = None
    stats: LinkStats = field(default_factory=LinkStats)
    seconds: float = 0.0
    """From the connect to the end of the flow."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retryable(self) -> bool:
        """The link broke (no ACK, T2, refused or lost connection): a new attempt may pass.
        Refusals (``66``, ``94``, ``F2``, ``A0``...), key, check and decode errors are not."""
        return isinstance(self.error, LinkError)

    @property
    def code(self) -> str | None:
        """The terminal's response code when it refused (field 39), else None."""
        return self.error.code if isinstance(self.error, RefusedError) else None


class _HostChannel(Channel):
    __slots__ = ("connecting", "engine", "flow", "future", "job", "started")

    def __init__(
        self, engine: Engine, job: Job, future: Future[Outcome], sock: socket.socket
    ) -> None:
        machine = LinkMachine(
            engine.baud,
            t1_margin=engine.t1_margin,
            t2=engine.t2,
            resends=engine.resends,
            name=job.url,
        )
        super().__init__(engine.loop, sock, machine)
        self.engine = engine
        self.job = job
        self.future = future
        self.flow: Flow[Any] | None = None
        self.connecting = True
        self.started = monotonic()

    def connected(self, now: float) -> None:
        self.connecting = False
        self.loop.watch(self)
        try:
            self.flow = self.job.flow()
            body = next(self.flow)
        except StopIteration as done:
            self.finish(done.value, None)
            return
        except Exception as exc:  # one job's failure, never the loop's
            self.finish(None, _as_protocol_error(exc))
            return
        self.machine.start_request(body, now)
        self.flush(now)

    def _writable(self) -> None:
        if not self.connecting:
            super()._writable()
            return
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.finish(None, LinkError(f"cannot open {self.job.url!r}: {_strerror(code)}"))
            return
        self.connected(monotonic())

    def progressed(self, now: float) -> None:
        machine = self.machine
        while True:
            response = machine.response
            if response is None:
                if machine.error is not None:
                    self.finish(None, machine.error)
                return
            assert self.flow is not None
            try:
                body = self.flow.send(response)
            except StopIteration as done:
                self.finish(done.value, None)
                return
            except Exception as exc:  # one job's failure, never the loop's
                self.finish(None, _as_protocol_error(exc))
                return
            machine.start_request(body, now)
            data = machine.take_output()
            if data:
                self._send(data)
                if self.is_closed:
                    return

    def closed(self, reason: str | None) -> None:
        if not self.future.done():
            self.finish(None, LinkError(f"{self.job.url}: {reason or 'closed'}"))

    def finish(self, value: Any, error: ProtocolError | None) -> None:
        if not self.future.done():
            outcome = Outcome(
                self.job, value, error, self.machine.stats, monotonic() - self.started
            )
            self.future.set_result(outcome)
        if not self.is_closed:
            self.close()
        self.engine._done(self)


def _as_protocol_error(exc: Exception) -> ProtocolError:
    """A flow's failure as a typed error (an untyped one is a bug, named as such)."""
    if isinstance(exc, ProtocolError):
        return exc
    return CheckError(f"the conversation failed unexpectedly: {type(exc).__name__}: {exc}")


def _strerror(code: int) -> str:
    return os.strerror(code)


class Engine:
    """Many host links from one loop (see the module docstring).

    Args:
        baud, t1_margin, t2, resends: the link's timers (wire contract: T1 = frame time +
            0.5 s, T2 = 5 s, 3 resends).
        concurrency: most links open at once.
        connect_timeout: seconds a TCP connect may take.
    """

    def __init__(
        self,
        *,
        baud: int = 115200,
        t1_margin: float = 0.5,
        t2: float = 5.0,
        resends: int = 3,
        concurrency: int = 256,
        connect_timeout: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.baud = baud
        self.t1_margin = t1_margin
        self.t2 = t2
        self.resends = resends
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.loop = NetLoop()
        self.stats = LinkStats()
        """Counters of every finished link, added up."""
        self._queue: deque[tuple[Job, Future[Outcome]]] = deque()
        self._active: set[_HostChannel] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._next_sweep = 0.0

    # -- in the caller's thread --------------------------------------------------------------

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Run ``jobs`` (up to ``concurrency`` at once) in this thread; yield each outcome
        as it comes. Jobs are pulled from ``jobs`` lazily."""
        if self._thread is not None:
            raise RuntimeError("the engine runs in its own thread: use submit()")
        source = iter(jobs)
        finished: deque[Outcome] = deque()
        exhausted = False
        while True:
            while not exhausted and len(self._active) + len(self._queue) < self.concurrency:
                try:
                    job = next(source)
                except StopIteration:
                    exhausted = True
                    break
                future: Future[Outcome] = Future()
                future.add_done_callback(lambda f: finished.append(f.result()))
                self._queue.append((job, future))
            self._launch()
            while finished:
                yield finished.popleft()
            if exhausted and not self._active and not self._queue:
                return
            self._turn()

    # -- in a thread of its own -------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a background thread (then use :meth:`submit`, :meth:`close`)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="posfleet-engine")
            self._thread.start()

    def submit(self, job: Job) -> Future[Outcome]:
        """Queue ``job`` (any thread); its future resolves to its :class:`Outcome`."""
        future: Future[Outcome] = Future()
        if self._thread is None:
            raise RuntimeError("start() the engine first (or use run())")
        self.loop.call_soon_threadsafe(lambda: self._enqueue(job, future))
        return future

    def close(self) -> None:
        """Stop the loop thread (open links are closed, their jobs fail) and free the loop."""
        if self._thread is not None:
            self._stop.set()
            self.loop.call_soon_threadsafe(lambda: None)
            self._thread.join()
            self._thread = None
        for channel in list(self._active):
            channel.finish(None, LinkError(f"{channel.job.url}: engine closed"))
        for job, future in self._queue:
            future.set_result(Outcome(job, error=LinkError(f"{job.url}: engine closed")))
        self._queue.clear()
        self.loop.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._launch()
            self._turn()

    def _enqueue(self, job: Job, future: Future[Outcome]) -> None:
        self._queue.append((job, future))

    # -- internals --------------------------------------------------------------------------

    def _turn(self) -> None:
        self.loop.run_once(0.1)
        now = monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + 0.25
            for channel in [c for c in self._active if c.connecting]:
                if now - channel.started > self.connect_timeout:
                    error = LinkError(
                        f"cannot open {channel.job.url!r}: no connection within "
                        f"{self.connect_timeout} s"
                    )
                    channel.finish(None, error)

    def _launch(self) -> None:
        while self._queue and len(self._active) < self.concurrency:
            job, future = self._queue.popleft()
            if future.set_running_or_notify_cancel():
                self._connect(job, future)

    def _connect(self, job: Job, future: Future[Outcome]) -> None:
        try:
            address = tcp_address(job.url)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except (LinkError, OSError) as exc:
            error = exc if isinstance(exc, LinkError) else LinkError(f"{job.url}: {exc}")
            future.set_result(Outcome(job, error=error))
            return
        channel = _HostChannel(self, job, future, sock)
        self._active.add(channel)
        try:
            code = sock.connect_ex(address)
        except OSError as exc:  # e.g. a host name that does not resolve
            channel.finish(None, LinkError(f"cannot open {job.url!r}: {exc.strerror or exc}"))
            return
        if code in (0, errno.EISCONN):
            channel.connected(monotonic())
        elif code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            self.loop.watch(channel, _WRITE)
        else:
            channel.finish(None, LinkError(f"cannot open {job.url!r}: {_strerror(code)}"))

    def _done(self, channel: _HostChannel) -> None:
        if channel in self._active:
            self._active.discard(channel)
            self.stats.add(channel.machine.stats)


# -- the push ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifySale:
    """The verification sale after a push (the caller checks its fee)."""

    amount: int
    card_type: CardType
    currency: int = 156
    entry_mode: EntryMode = EntryMode.CHIP


@dataclass(slots=True)
class PushOutcome:
    """What a push learnt, step by step (a failed push keeps what it got before failing)."""

    signed_on: SignOn | None = None
    result: PushResult | None = None
    status: DownloadStatus | None = None
    sale: SaleOutcome | None = None


JobKey: TypeAlias = "bytes | TerminalKey | KeySource | None"
"""What a job signs with: one key (bytes, or a :class:`~protocols.mac.TerminalKey`), or the
terminal's keys of several versions (a :class:`~protocols.keys.TerminalKeyRing`, terminal
keys, or a lookup ``version -> TerminalKey | None``); None for a job that signs nothing."""


def conversation_for(tid: str, key: JobKey) -> Conversation:
    """A :class:`~protocols.flows.Conversation` with terminal ``tid`` signing with ``key``."""
    if key is None or isinstance(key, bytes | TerminalKey):
        return Conversation(tid, key)
    return Conversation(tid, keys=key)


def _fresh(state: PushOutcome | HealthOutcome | RotateOutcome) -> None:
    """Empty a job's state for a new attempt (a resubmitted job keeps nothing stale)."""
    for item in fields(state):
        default = item.default_factory() if item.default_factory is not MISSING else item.default
        setattr(state, item.name, default)


def _check_serial(signed: SignOn, serial: str | None) -> None:
    if serial is not None and signed.info.serial != serial:
        raise CheckError(f"the terminal answers as serial {signed.info.serial}, not {serial}")


def push_flow(
    conversation: Conversation,
    table: PreparedTable,
    into: PushOutcome,
    *,
    serial: str | None = None,
    sale: VerifySale | None = None,
) -> Flow[PushOutcome]:
    """Sign on, download and commit ``table``, check the status, make the test sale."""
    signed = yield from conversation.sign_on()
    into.signed_on = signed
    _check_serial(signed, serial)
    into.result = yield from conversation.push(table, signed_on=signed)
    status = yield from conversation.status()
    into.status = status
    if table.version not in (status.active_version, status.pending_version):
        raise CheckError(
            f"after commit the terminal reports active {status.active_version}, "
            f"pending {status.pending_version}, not {table.version}"
        )
    if sale is not None:
        into.sale = yield from conversation.sale(
            sale.amount, sale.card_type, sale.entry_mode, sale.currency
        )
    return into


def push_job(
    url: str,
    tid: str,
    key: JobKey,
    table: PreparedTable,
    *,
    serial: str | None = None,
    sale: VerifySale | None = None,
    tag: Any = None,
) -> Job:
    """A :class:`Job` that pushes ``table`` to one terminal (:func:`push_flow`), signed
    with ``key`` (:data:`JobKey`: with several versions, the one the terminal reports).

    Its :attr:`Job.state` is the :class:`PushOutcome` the flow fills in: the outcome's
    ``value`` when it succeeds, what was learnt before the failure when it does not.
    """
    into = PushOutcome()

    def flow() -> Flow[PushOutcome]:
        _fresh(into)
        return push_flow(conversation_for(tid, key), table, into, serial=serial, sale=sale)

    return Job(url, flow, tag, into)


# -- the health poll -------------------------------------------------------------------------


@dataclass(slots=True)
class HealthOutcome:
    """What a health poll learnt: the sign-on (when the serial was checked) and the health."""

    signed_on: SignOn | None = None
    health: HealthInfo | None = None


def health_flow(
    conversation: Conversation, into: HealthOutcome, *, serial: str | None = None
) -> Flow[HealthOutcome]:
    """0800/303; with ``serial``, a sign-on instead (it checks the serial and carries the
    same health tags), then 303 only if the sign-on carried none."""
    if serial is not None:
        signed = yield from conversation.sign_on()
        into.signed_on = signed
        _check_serial(signed, serial)
        if signed.health is not None:
            into.health = signed.health
            return into
    into.health = yield from conversation.health()
    return into


def health_job(url: str, tid: str, *, serial: str | None = None, tag: Any = None) -> Job:
    """A :class:`Job` that polls one terminal's health (:func:`health_flow`); unsigned, no
    key needed. A v1 terminal answers 303 with ``30``: a :class:`RefusedError` saying it
    does not support it. Its :attr:`Job.state` is the :class:`HealthOutcome`."""
    into = HealthOutcome()

    def flow() -> Flow[HealthOutcome]:
        _fresh(into)
        return health_flow(Conversation(tid), into, serial=serial)

    return Job(url, flow, tag, into)


# -- the key rotation ------------------------------------------------------------------------


@dataclass(slots=True)
class RotateOutcome:
    """What a key rotation learnt, step by step (a failed one keeps what it got)."""

    signed_on: SignOn | None = None
    steps: list[RotationStep] = field(default_factory=list)
    """The steps done in this attempt (:class:`~protocols.flows.RotationStep`)."""
    rotation: KeyRotation | None = None
    versions: KeyVersions | None = None
    """The key versions the terminal reported last (after the confirmation: the new one)."""


def rotate_flow(
    conversation: Conversation,
    new: TerminalKey,
    into: RotateOutcome,
    *,
    serial: str | None = None,
) -> Flow[RotateOutcome]:
    """Sign on (check the serial), then rotate to ``new`` from where the terminal stands;
    the terminal must report ``new`` as its current key at the end."""
    signed = yield from conversation.sign_on()
    into.signed_on = signed
    into.versions = signed.keys
    _check_serial(signed, serial)
    into.rotation = yield from conversation.rotate_key(new, into.steps.append, signed_on=signed)
    into.versions = held = into.rotation.keys
    if held is None or held.current != new.version:
        raise CheckError(
            f"after the rotation the terminal reports key versions {held}, not {new.version}"
        )
    return into


def rotate_job(
    url: str,
    tid: str,
    keys: JobKey,
    new: TerminalKey,
    *,
    serial: str | None = None,
    tag: Any = None,
) -> Job:
    """A :class:`Job` that moves one terminal to key ``new`` (:func:`rotate_flow`).

    ``keys``: the terminal's current key — usually a ring of every version the fleet holds
    (:data:`JobKey`), so that a terminal on any of them, or halfway through this rotation,
    is signed for. Resumable: after a :class:`LinkError` (the terminal or the host died
    mid-way) submit it again; the sign-on says whether to change, only confirm, or nothing.
    Its :attr:`Job.state` is the :class:`RotateOutcome`.
    """
    into = RotateOutcome()

    def flow() -> Flow[RotateOutcome]:
        _fresh(into)
        return rotate_flow(conversation_for(tid, keys), new, into, serial=serial)

    return Job(url, flow, tag, into)
