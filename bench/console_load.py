"""The console and the API under load, over a 1,000,000-terminal database (SQLite).

A real ``posfleet serve`` (``--workers 2``: one process per core; SQLite serves any number
of processes on one machine) answers 50 concurrent clients of another process — ``wrk``
(``/usr/bin/wrk``, with a Lua script for the percentiles and for varying the page asked
for) or, where it is missing, a Python load generator (asyncio + httpx, 50 tasks). For
each of

- the **dashboard** (``/dashboard``, signed in: its aggregates cached for all processes),
- a **filtered terminal page** (``/terminals?status=deployed&model=…``, signed in; each
  request starts after a random serial, so every one is a different keyset page),
- **``/api/v1/terminals``** pages (bearer token; ``status=deployed&limit=100``, random
  ``after``),

it prints requests/s and p50/p95/p99 latency. **Target: p95 ≤ 200 ms at 50 concurrent
clients.** The database is built as ``bench.fleet_scale`` builds its own (sample files,
then the real import), in a child process. ``POSFLEET_BENCH_KEEP=DIR`` builds it in
``DIR`` once and reuses it on later runs (to iterate on the console without an import per run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.fleet_scale import MERCHANTS, TERMINALS, child, prepare
from fleet.core import db

CLIENTS = 50
DURATION_S = 20
TARGET_P95_MS = 200.0
WORKERS = 2

LUA = r"""
math.randomseed(os.time())
local n = tonumber(os.getenv("BENCH_N"))
local base = os.getenv("BENCH_PATH")
local vary = os.getenv("BENCH_VARY") == "1"
request = function()
  local path = base
  if vary then
    path = base .. "&after=" .. string.format("PS%08d", math.random(0, n - 200))
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, " ..
    "\"non2xx\": %d, \"p50\": %d, \"p95\": %d, \"p99\": %d}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95),
    latency:percentile(99)))
end
"""


def _serve(db_url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = 18000 + os.getpid() % 1000
    posfleet = str(Path(sys.executable).with_name("posfleet"))
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [posfleet, "--db", db_url, "serve", "--port", str(port), "--workers", str(WORKERS),
         "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
        env=os.environ | {"POSFLEET_WEB_FLAG_EVERY": "0"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("posfleet serve did not start: " + (tmp / "serve.log").read_text())


def _credentials(db_url: str, url: str) -> tuple[str, str]:
    from fleet.access import add_user, create_token  # noqa: PLC0415

    engine = db.connect(db_url)
    user = f"bench-ops-{os.getpid()}"  # a kept database may have a previous run's
    add_user(engine, user, "ops", actor="bench", password="bench-password-0")
    _, token = create_token(engine, "ops", 1, actor="bench", name="bench")
    engine.dispose()
    client = httpx.Client(base_url=url, timeout=60)
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert csrf is not None
    client.post("/login", data={"name": user, "password": "bench-password-0",
                                "csrf_token": csrf.group(1)})  # fmt: skip
    return client.cookies["pf_session"], token


def _wrk(url: str, path: str, header: str, vary: bool, n: int, tmp: Path) -> dict[str, Any]:
    script = tmp / "bench.lua"
    script.write_text(LUA)
    env = os.environ | {"BENCH_N": str(n), "BENCH_PATH": path, "BENCH_VARY": "1" if vary else "0"}
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{DURATION_S}s", "--timeout", "10s",
         "-H", header, "-s", str(script), url],
        capture_output=True, text=True, env=env, check=True, timeout=DURATION_S + 60,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("JSON "))
    doc = json.loads(line[5:])
    seconds = doc["duration_us"] / 1e6
    return {
        "rps": doc["requests"] / seconds,
        "p50": doc["p50"] / 1000,
        "p95": doc["p95"] / 1000,
        "p99": doc["p99"] / 1000,
        "errors": doc["errors"] + doc["non2xx"],
        "requests": doc["requests"],
        "tool": "wrk",
    }


def _python(url: str, path: str, header: str, vary: bool, n: int) -> dict[str, Any]:
    import random  # noqa: PLC0415

    name, _, value = header.partition(": ")
    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient, until: float) -> None:
        nonlocal errors
        while time.monotonic() < until:
            target = path + (f"&after=PS{random.randint(0, n - 200):08d}" if vary else "")
            t0 = time.perf_counter()
            try:
                answer = await client.get(target)
                errors += answer.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)

    async def main() -> float:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, headers={name: value}, limits=limits,
                                     timeout=10) as client:  # fmt: skip
            t0 = time.monotonic()
            await asyncio.gather(*(worker(client, t0 + DURATION_S) for _ in range(CLIENTS)))
            return time.monotonic() - t0

    seconds = asyncio.run(main())
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {"rps": len(latencies) / seconds, "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "errors": errors, "requests": len(latencies), "tool": "python"}  # fmt: skip


def measure(tmp: Path, terminals: int = TERMINALS, merchants: int = MERCHANTS) -> dict[str, Any]:
    keep = os.environ.get("POSFLEET_BENCH_KEEP")
    kept = Path(keep) / f"fleet-{terminals}.db" if keep else None
    if kept is not None and kept.exists():
        db_path, imported = str(kept), {}
        engine = db.connect(f"sqlite:///{db_path}")
        db.upgrade(engine)  # kept from before a migration
        engine.dispose()
    else:
        db_path, sample, _ = prepare(tmp, terminals, merchants)
        imported = child("import", db_path, sample)
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                if Path(db_path + suffix).exists():
                    shutil.move(db_path + suffix, f"{kept}{suffix}")
            db_path = str(kept)
    db_url = f"sqlite:///{db_path}"
    proc, url = _serve(db_url, tmp)
    try:
        cookie, token = _credentials(db_url, url)
        session, bearer = f"Cookie: pf_session={cookie}", f"Authorization: Bearer {token}"
        t0 = time.perf_counter()
        first = httpx.get(f"{url}/dashboard", headers={"Cookie": f"pf_session={cookie}"},
                          timeout=300)  # fmt: skip
        assert first.status_code == 200, first.text[:300]
        dashboard_first_s = time.perf_counter() - t0
        model = "PF-200"
        cases = {
            "dashboard": ("/dashboard", session, False),
            "terminal page (status + model)": (
                f"/terminals?status=deployed&model={model}", session, True),
            "/api/v1/terminals (100 a page)": (
                "/api/v1/terminals?status=deployed&limit=100", bearer, True),
        }  # fmt: skip
        out: dict[str, Any] = {"terminals": terminals, "import_s": imported.get("terminals_s"),
                               "dashboard_first_s": dashboard_first_s, "cases": {},
                               "imported": bool(imported)}  # fmt: skip
        for name, (path, header, vary) in cases.items():
            if shutil.which("wrk"):
                out["cases"][name] = _wrk(url, path, header, vary, terminals, tmp)
            else:
                out["cases"][name] = _python(url, path, header, vary, terminals)
        return out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(m: dict[str, Any]) -> list[str]:
    lines = [
        f"console and API under load: {m['terminals']:,} terminals (SQLite), posfleet serve "
        f"--workers {WORKERS}, {CLIENTS} concurrent clients for {DURATION_S} s each "
        f"(target p95 ≤ {TARGET_P95_MS:.0f} ms)",
        f"  dashboard's first request (aggregates computed, then cached for every process"
        f"{'' if m['imported'] else '; a kept database: maybe cached by a previous run'}"
        f"): {m['dashboard_first_s']:.1f} s",
    ]
    for name, c in m["cases"].items():
        lines.append(
            f"  {name:<32} {c['rps']:7.0f} req/s  p50 {c['p50']:6.1f} ms  p95 {c['p95']:6.1f} ms"
            f"  p99 {c['p99']:6.1f} ms  ({c['p95'] / TARGET_P95_MS:.2f}x target; "
            f"{c['requests']:,} requests, {c['errors']} errors; {c['tool']})"
        )
    return lines


def run(terminals: int = TERMINALS, merchants: int = MERCHANTS) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return report(measure(Path(tmp), terminals, merchants))


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else TERMINALS
    print("\n".join(run(count, max(1, count // 10))))
