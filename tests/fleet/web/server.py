"""A real ``posfleet serve`` on loopback for the console's tests, and a signed-in client.

:func:`serve` starts the command line as a user would (a subprocess, its own port),
waits for ``/health`` and stops it afterwards (SIGTERM, then SIGKILL); :class:`Client`
is an httpx client that signs in through the real form (pre-session cookie and CSRF
token included) and finds a page's form token.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

POSFLEET = str(Path(sys.executable).with_name("posfleet"))
ROLES = ("admin", "ops", "engineer", "agent", "auditor")


def password_of(role: str) -> str:
    return f"pw-{role}-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    db: str
    log: Path
    proc: subprocess.Popen[bytes]
    facts: dict[str, object] = field(default_factory=dict)
    """What the seeding made (serials, a rollout id, a genuine code…)."""


@contextmanager
def serve(
    db: str, tmp: Path, *, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Served]:
    env = os.environ | {"POSFLEET_DB": db, "POSFLEET_ACTOR": "test"} | (extra_env or {})
    for attempt in range(10):
        port = free_port()
        log = tmp / f"serve-{port}.log"
        cmd = [POSFLEET, "serve", "--port", str(port),
               "--log-level", "warning", *args]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if _up(proc, port, log):
                break
        except BaseException:
            _stop(proc)
            raise
        # the port found free was taken (another test, another xdist worker) before the
        # server bound it: another port
        if attempt == 9:
            raise RuntimeError(f"posfleet serve found no free port: {log.read_text()}")
    try:
        yield Served(url, db, log, proc)
    finally:
        _stop(proc)


def _up(proc: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """Wait for the server to answer ``/health``: True when up, False when it exited for
    want of its port, an error otherwise."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")
            if "address already in use" in text.lower():
                return False
            raise RuntimeError(f"posfleet serve exited {proc.returncode}: {text}")
        try:
            # ours, not another process that took the port before our bind
            if httpx.get(f"{url}/health", timeout=2).status_code == 200 and _listens(
                proc.pid, port
            ):
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"posfleet serve not up in 60 s: {log.read_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on ``port`` (Linux ``/proc``): a
    port found free can be taken by another test's server before ours binds it, and that
    one would answer ``/health`` too. Elsewhere: assume so."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    inodes = set()
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def form_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token in the page"
    return found.group(1)


class Client(httpx.Client):
    def __init__(self, base: str, **kwargs: object) -> None:
        super().__init__(base_url=base, timeout=30, follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def sign_in(self, name: str, password: str) -> httpx.Response:
        page = self.get("/login")
        return self.post(
            "/login",
            data={"name": name, "password": password, "csrf_token": form_token(page.text)},
        )

    def token(self, path: str = "/verify") -> str:
        """The form token of a signed-in page."""
        return form_token(self.get(path).text)


def signed_in(base: str, role: str) -> Client:
    client = Client(base)
    answer = client.sign_in(role, password_of(role))
    assert answer.status_code == 303, answer.text
    return client
