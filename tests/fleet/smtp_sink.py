"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests and
the notices benchmark."""

from __future__ import annotations

import email
import email.policy
import errno
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    envelope_to: list[str]
    raw: bytes
    peer: Any = None
    """The client's (host, port): which connection brought it."""

    @property
    def message(self) -> Message:
        """Parsed on demand (the benchmark only needs the Message-ID)."""
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        found = _MESSAGE_ID.search(self.raw.split(b"\r\n\r\n", 1)[0])
        return found.group(1).decode() if found else ""


_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:\s*(<[^>]*>)")


@dataclass
class Sink:
    """The SMTP handler: every accepted message; ``reply`` forces an answer (e.g. 451)."""

    received: list[Received] = field(default_factory=list)
    reply: str | None = None
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow server: blocks its loop, as a slow MTA would
        if self.reply is not None:
            return self.reply
        with self.lock:
            self.received.append(
                Received(list(envelope.rcpt_tos), bytes(envelope.content), session.peer)
            )
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(sink: Sink | None = None) -> Iterator[tuple[str, Sink]]:
    """``smtp://127.0.0.1:PORT`` and its sink, for the duration of the block."""
    sink = sink or Sink()
    for attempt in range(20):
        # a port found free may be taken (another test, another xdist worker) before the
        # controller binds it: then another one
        port = free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        try:
            controller.start()
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 19:
                raise
    try:
        yield f"smtp://127.0.0.1:{port}", sink
    finally:
        controller.stop()


def main(argv: list[str]) -> int:
    """``python -m tests.fleet.smtp_sink PORT OUT``: serve until SIGTERM, then write every
    received Message-ID (one per line) to OUT. Prints READY when listening."""
    import signal  # noqa: PLC0415

    port, out = int(argv[0]), argv[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(sink.message_ids()) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
