"""The engine against a terminal that answers oddly: one job fails with a typed error,
the loop and the other jobs go on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from protocols import messages as m
from protocols.codec import decode, encode
from protocols.engine import Engine, Job
from protocols.errors import DecodeError, RefusedError
from protocols.flows import Conversation
from protocols.link import Link
from protocols.ports import SocketPort
from protocols.session import HostSession

TID = "TERM0001"


@contextmanager
def terminal(answer: Callable[[m.Message], m.Message]) -> Iterator[str]:
    """A TCP terminal on 127.0.0.1 that answers every request with ``answer(request)``."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with Link(SocketPort(conn, timeout=0.05), 115200) as link:
                handler = lambda body: encode(answer(decode(body)))  # noqa: E731
                while not stop.is_set():
                    try:
                        link.serve_once(handler, timeout=0.1)
                    except Exception:
                        break
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_a_sign_on_answer_without_its_fields_is_a_decode_error_not_a_crash() -> None:
    with terminal(lambda req: m.response_to(req, m.ResponseCode.APPROVED)) as url:
        jobs = [Job(url, lambda: Conversation(TID, bytes(16)).sign_on()) for _ in range(3)]
        with Engine(concurrency=1) as engine:
            outcomes = list(engine.run(jobs))
        with Link(url, 115200) as link, pytest.raises(DecodeError, match="lacks field 42"):
            HostSession(link, TID, bytes(16)).sign_on()
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome.error, DecodeError) and not outcome.retryable


def test_a_refusal_is_reported_with_its_code() -> None:
    refuse = lambda req: m.response_to(req, m.ResponseCode.NOT_ACCEPTED)  # noqa: E731
    with terminal(refuse) as url, Engine() as engine:
        [outcome] = engine.run([Job(url, lambda: Conversation(TID, bytes(16)).echo())])
    assert isinstance(outcome.error, RefusedError) and outcome.error.code == "63"
    assert outcome.stats.frames_sent == 1 and outcome.seconds > 0
