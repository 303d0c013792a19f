"""An SMS provider double: a real HTTP server on loopback that Apprise sends to (its
``json://`` form) and that calls posfleet's status endpoint back, like Twilio would.

Each SMS it takes gets a provider id (``SM…``) and a plan of callbacks — ``queued``,
``sent``, then the final status (``delivered`` unless ``final(phone)`` says otherwise,
with an error code when it is bad) — sent by a background thread after configurable
delays, with losses (a callback never sent), duplicates (sent twice) and reordering
(random delays, so ``delivered`` may come before ``sent``). Every callback it made is
kept (:attr:`sent`) so a test can replay them all. :meth:`reply` sends an inbound SMS.
Callbacks are form-encoded as Twilio sends them (or JSON), authenticated with the
provider's secret as HTTP Basic auth.
"""

from __future__ import annotations

import heapq
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Taken:
    provider_id: str
    phone: str
    reference: str
    body: str


@dataclass
class Plan:
    delay: tuple[float, float] = (0.0, 0.0)
    """Each callback waits a random time in this range (seconds) after the send."""
    loss: float = 0.0
    duplicates: float = 0.0
    reorder: bool = False
    """Final status first, then sent, then queued (on top of the random delays)."""
    final: Callable[[str], str] = lambda phone: "delivered"
    """The final status for a number; "" for none ever (a receipt the provider loses)."""
    json_body: bool = False
    seed: int = 7


@dataclass
class ProviderDouble:
    status_url: str
    inbound_url: str
    name: str
    secret: str
    plan: Plan = field(default_factory=Plan)
    taken: list[Taken] = field(default_factory=list)
    sent: list[dict[str, str]] = field(default_factory=list)
    """Every callback made (for replays)."""
    answers: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """The first few answers other than 200, with their text (for a failing test)."""
    port: int = 0
    _queue: list[tuple[float, int, dict[str, str]]] = field(default_factory=list)
    _cv: threading.Condition = field(default_factory=threading.Condition)
    _stop: bool = False
    _seq: int = 0
    _inflight: int = 0
    """Callbacks taken off the queue whose answer has not come back yet."""

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/sms/{{phone}}"

    def _auth(self) -> tuple[str, str]:
        return (self.name, self.secret)

    def _schedule(self, taken: Taken) -> None:
        rnd = random.Random(f"{self.plan.seed}:{taken.provider_id}")
        final = self.plan.final(taken.phone)
        statuses = ["queued", "sent", final] if final else ["queued", "sent"]
        if self.plan.reorder:
            statuses.reverse()
        now = time.monotonic()
        with self._cv:
            for order, status in enumerate(statuses):
                if rnd.random() < self.plan.loss:
                    continue
                doc = {"MessageSid": taken.provider_id, "MessageStatus": status,
                       "reference": taken.reference}  # fmt: skip
                if status in ("undelivered", "failed"):
                    doc["ErrorCode"] = "30005"
                copies = 2 if rnd.random() < self.plan.duplicates else 1
                for _ in range(copies):
                    low, high = self.plan.delay
                    at = (
                        now
                        + rnd.uniform(low, high)
                        + (order * 0.001 if not self.plan.reorder else 0)
                    )
                    self._seq += 1
                    heapq.heappush(self._queue, (at, self._seq, doc))
            self._cv.notify_all()

    def post_status(self, doc: dict[str, str], client: httpx.Client) -> int:
        if self.plan.json_body:
            answer = client.post(self.status_url, json=doc, auth=self._auth())
        else:
            answer = client.post(self.status_url, data=doc, auth=self._auth())
        if answer.status_code != 200 and len(self.refused) < 5:
            self.refused.append(f"{answer.status_code} {answer.text[:200]}")
        return answer.status_code

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with self._cv:
                    while not self._stop and (
                        not self._queue or self._queue[0][0] > time.monotonic()
                    ):
                        wait = self._queue[0][0] - time.monotonic() if self._queue else None
                        self._cv.wait(timeout=wait if wait is None or wait > 0 else 0.001)
                    if self._stop:
                        return
                    _, _, doc = heapq.heappop(self._queue)
                    self._inflight += 1
                self.sent.append(doc)
                try:
                    self.answers.append(self.post_status(doc, client))
                except httpx.HTTPError:
                    self.answers.append(0)
                finally:
                    with self._cv:
                        self._inflight -= 1
                        self._cv.notify_all()

    def idle(self, timeout: float = 120.0) -> bool:
        """Wait until every planned callback went out and its answer came back (the
        timeout only bounds a hung run)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(timeout=min(left, 0.5))
        return True

    def replay(self, client: httpx.Client | None = None) -> list[int]:
        """Send every callback made so far again, in the same order."""
        own = client or httpx.Client(timeout=10)
        try:
            return [self.post_status(doc, own) for doc in list(self.sent)]
        finally:
            if client is None:
                own.close()

    def reply(self, phone: str, text: str, *, provider_id: str | None = None) -> httpx.Response:
        doc = {"MessageSid": provider_id or "SM" + secrets.token_hex(16), "From": phone,
               "Body": text}  # fmt: skip
        return httpx.post(self.inbound_url, data=doc, auth=self._auth(), timeout=10)


def _handler(double: ProviderDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            phone = self.path.rsplit("/", 1)[-1]
            try:
                doc: dict[str, Any] = json.loads(raw)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            taken = Taken("SM" + secrets.token_hex(16), phone.replace("%2B", "+"),
                          self.headers.get("X-Posfleet-Reference", ""), str(doc.get("message")))  # fmt: skip
            double.taken.append(taken)
            double._schedule(taken)  # before the answer: once the send returns, it is planned
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"sid": taken.provider_id}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def provider_double(
    base_url: str, name: str, secret: str, plan: Plan | None = None
) -> Iterator[ProviderDouble]:
    """The double, listening on a free loopback port, calling ``base_url`` back."""
    double = ProviderDouble(
        f"{base_url}/api/v1/hooks/sms/{name}/status",
        f"{base_url}/api/v1/hooks/sms/{name}/inbound",
        name,
        secret,
        plan or Plan(),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    double.port = int(server.server_address[1])
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    caller = threading.Thread(target=double._run, daemon=True)
    serving.start()
    caller.start()
    try:
        yield double
    finally:
        with double._cv:
            double._stop = True
            double._cv.notify_all()
        server.shutdown()
        server.server_close()
        caller.join(timeout=5)
