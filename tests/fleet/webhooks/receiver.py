"""A webhook receiver on loopback, as another system would write one: it checks every
request's signature and timestamp (:func:`fleet.webhooks.signing.check`), records what it
got, answers 2xx once it has kept it, and drops a delivery id it has already accepted.

``fail_first``: answer 503 to the first N attempts of each delivery; ``delay_s``: take
that long to answer (so that a batch is in flight long enough to be killed)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fleet.webhooks.signing import DELIVERY, SignatureError, check


@dataclass
class Received:
    secret: str
    fail_first: int = 0
    delay_s: float = 0.0
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Delivery id → body, the first time it was accepted."""
    requests: Counter[str] = field(default_factory=Counter)
    """Delivery id → requests that arrived with a good signature."""
    refused: list[str] = field(default_factory=list)
    """Why requests were refused (bad signature, stale timestamp)."""
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.requests.values())


@contextmanager
def receiver(secret: str, **kwargs: Any) -> Iterator[tuple[str, Received]]:
    got = Received(secret, **kwargs)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = dict(self.headers.items())
            try:
                check(got.secret, headers, body, now=time.time())
            except SignatureError as exc:
                with got.lock:
                    got.refused.append(str(exc))
                self.send_response(401)
                self.end_headers()
                return
            key = headers[DELIVERY]
            doc = json.loads(body)
            assert doc["id"] == key  # the key is in the signed body too
            with got.lock:
                got.requests[key] += 1
                got.raw.append((headers, body))
                attempt = got.requests[key]
            if got.delay_s:
                time.sleep(got.delay_s)
            if attempt <= got.fail_first:
                self.send_response(503)
                self.end_headers()
                return
            with got.lock:
                got.accepted.setdefault(key, doc)  # a repeat is dropped, answered 200
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/posfleet", got
    finally:
        server.shutdown()
        server.server_close()
