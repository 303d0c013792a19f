"""`make demo`: the whole system, from a fresh clone, in about a minute.

Every step runs the real command line (``posfleet …``, ``possim …``) and prints it with its
output as it happens:

1. a seeded SQLite fleet: the sample catalog (six models, some past PCI PTS expiry or end
   of support, some with vulnerable firmware), hundreds of merchants and terminals;
2. emulated terminals (``possim serve``) on fresh ptys, one of them behind a noisy line
   (``possim line``: lost and corrupted frames), recorded as the terminals' links;
3. ``posfleet sync --all``: sign on to each and record what it reports;
4. ``posfleet replacements``: what must be replaced, why, by when, and the forecast;
5. two fee tables checked and published, each queuing its merchants' fee-change notices;
6. the tables pushed with progress bars: a staged rollout, and a push to a group;
7. two flagged terminals swapped for new ones from stock (each new one is an emulated
   terminal too: synced, pushed its merchant's table and verified with a test sale);
8. the notices dispatched to the local outbox folder, and one verified by its code;
9. health: one terminal's tamper switch tripped, a health poll, a worn reader's history
   imported (flagged P1 and P2 with its forecast date); then the ops reports as
   self-contained HTML files (with their health sections).

At the end it prints where every file is, stops every process it started and checks that
none is left. Output goes to ``out/demo`` (``--out``); a previous demo's output there is
replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from fleet.sample.seed import write_sample

BIN = Path(sys.executable).parent
MARKER = ".posfleet-demo"
TERMINALS = 900
SERVED = 8
"""Deployed terminals served by possim (the first ones of the sample)."""
NOISY = 3
"""The served terminal (by index) that sits behind ``possim line``."""
SWAPS = 2

console = Console(
    highlight=False, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "120"))
)


class DemoError(Exception):
    """A step failed: the message says which and why."""


class Demo:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.db = out / "fleet.db"
        self.policy = out / "posfleet.toml"
        self.key = out / "fleet.key"
        self.outbox = out / "outbox"
        self.reports = out / "reports"
        self.data = out / "data"
        self.sims = out / "terminals"
        self.log = out / "possim.log"
        self.procs: list[subprocess.Popen[str]] = []
        self.served: list[dict[str, str]] = []
        self.swapped: list[tuple[str, str]] = []
        self.env = os.environ | {
            "POSFLEET_DB": str(self.db),
            "POSFLEET_POLICY": str(self.policy),
            "POSFLEET_KEY_FILE": str(self.key),
            "POSFLEET_OUTBOX": str(self.outbox),
            "POSFLEET_ACTOR": "demo",
            "COLUMNS": os.environ.get("COLUMNS", "120"),
        }
        self.env.pop("POSFLEET_SMTP", None)
        self.env.pop("POSFLEET_SMS_URL", None)

    # -- running commands ------------------------------------------------------------------

    def run(self, *args: str, show: bool = True, ok: tuple[int, ...] = (0,)) -> str:
        """Run ``posfleet ARGS`` with its output shown as it comes; returns it."""
        if show:
            console.print(f"[bold cyan]$ posfleet {shlex.join(args)}[/]")
        sys.stdout.flush()
        done = subprocess.run(
            [str(BIN / "posfleet"), *args],
            env=self.env,
            stdout=subprocess.PIPE if not show else None,
            stderr=subprocess.PIPE if not show else None,
            text=True,
            check=False,
        )
        if done.returncode not in ok:
            detail = (done.stderr or "").strip().splitlines()[-1:] if not show else []
            raise DemoError(f"posfleet {shlex.join(args)} exited {done.returncode} {detail}")
        return done.stdout or ""

    def query(self, *args: str) -> object:
        """Run ``posfleet ARGS --format json`` quietly; returns the parsed JSON."""
        return json.loads(self.run(*args, "--format", "json", show=False))

    def possim(self, *args: str) -> list[str]:
        """Start ``possim ARGS``; returns the words after READY (its ports)."""
        console.print(f"[bold cyan]$ possim {shlex.join(args)}[/]")
        proc = subprocess.Popen(
            [str(BIN / "possim"), "--log-level", "INFO", *args],
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        if words[:1] != ["READY"]:
            raise DemoError(f"possim {args[0]} did not start; see {self.log}")
        console.print(f"  READY {' '.join(words[1:])}")
        return words[1:]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        left = [p.pid for p in self.procs if p.poll() is None]
        if left:
            raise DemoError(f"possim processes still running: {left}")
        self.forget_links()

    def forget_links(self) -> None:
        """The stopped terminals' pty links, cleared from the inventory: a pty path is
        reused by the next process that opens a pty, and a later ``sync --all`` would talk
        to whatever owns it now (the serial check would refuse it, but no link beats a
        wrong one). The terminals keep what they reported (``last_seen``, versions)."""
        if not self.db.exists():
            return
        with contextlib.suppress(DemoError, ValueError):
            rows = self.query("terminals", "list", "--limit", "100000")
            listed = rows if isinstance(rows, list) else []
            stale = [
                str(t["serial"])
                for t in listed
                if isinstance(t, dict) and str(t.get("link") or "").startswith("/dev/pts/")
            ]
            for serial in stale:
                self.run("terminals", "update", serial, "--link", "",
                         "--reason", "the demo stopped its terminal", show=False)  # fmt: skip
            if stale:
                console.print(f"cleared the pty links of {len(stale)} stopped terminals")

    # -- the steps ---------------------------------------------------------------------------

    def step(self, number: int, title: str, why: str = "") -> None:
        console.rule(f"[bold]{number}. {title}")
        if why:
            console.print(f"[dim]{why}[/]")

    def prepare(self) -> None:
        if self.out.exists():
            if not (self.out / MARKER).exists() and any(self.out.iterdir()):
                raise DemoError(f"{self.out} exists and is not a posfleet demo's output")
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        (self.out / MARKER).write_text("output of `make demo`; replaced by the next run\n")
        self.log.write_text("")
        self.policy.write_text(POLICY, encoding="utf-8")

    def seed(self) -> list[dict[str, str]]:
        self.step(
            1,
            "a seeded fleet in SQLite",
            f"{TERMINALS} terminals of six models at {TERMINALS // 3} merchants in China, "
            "Europe and Singapore (fleet.sample.seed: same seed, same fleet)",
        )
        sample = write_sample(self.data, terminals=TERMINALS)
        self.run("keys", "new", str(self.key))
        self.run("db", "upgrade")
        self.run("catalog", "import", str(sample.catalog))
        self.run("merchants", "import", str(sample.merchants))
        self.run("terminals", "import", str(sample.terminals))
        return [t for t in self.terminals().values() if t["status"] == "deployed"][:SERVED]

    def record_links(self, links: dict[str, str]) -> None:
        """The served terminals' links, written into the inventory file and imported again
        (an import updates what changed and leaves the rest as it is)."""
        write_sample(self.data, terminals=TERMINALS, links=links)
        self.run("terminals", "import", str(self.data / "terminals.csv"))

    def merchants(self) -> dict[str, dict[str, str]]:
        with (self.data / "merchants.csv").open(encoding="utf-8") as fh:
            return {r["id"]: r for r in csv.DictReader(fh)}

    def serve(self, served: list[dict[str, str]]) -> dict[str, str]:
        self.step(
            2,
            f"{SERVED} emulated terminals on ptys",
            f"possim serve: one process and one pty each; terminal {NOISY + 1} sits behind "
            "possim line (3 % of frames lost, 3 % corrupted: the link retransmits)",
        )
        merchants = self.merchants()
        links: dict[str, str] = {}
        for i, row in enumerate(served):
            (path,) = self.start_terminal(
                row["serial"], row["model"], row["firmware"], row["tid"], row["mid"],
                merchants[row["merchant_id"]]["mcc"],
            )  # fmt: skip
            if i == NOISY:
                _, path = self.possim(
                    "line", path, "pty", "--baud", "115200", "--drop", "0.03",
                    "--corrupt", "0.03", "--seed", "7",
                )  # fmt: skip
            links[row["serial"]] = path
        return links

    def start_terminal(
        self, serial: str, model: str, firmware: str, tid: str, mid: str, mcc: str
    ) -> list[str]:
        return self.possim(
            "serve", "--serial", serial, "--model", model, "--firmware", firmware,
            "--tid", tid, "--mid", mid, "--mcc", mcc, "--key-file", str(self.key),
            "--state-dir", str(self.sims / serial), "--port", "pty",
        )  # fmt: skip

    def fees(self) -> None:
        self.step(
            5,
            "fee tables: check and publish",
            "each publication is immutable and queues a fee-change notice for every merchant "
            "whose fee on the typical basket changes, in the same transaction",
        )
        effective = (datetime.now(UTC) + timedelta(days=35)).date()
        china = self.data / "china-2027.toml"
        europe = self.data / "europe-2027.toml"
        china.write_text(CHINA.format(date=effective.isoformat()), encoding="utf-8")
        europe.write_text(EUROPE.format(date=effective.isoformat()), encoding="utf-8")
        self.run("fees", "check", str(china))
        self.run("fees", "publish", str(china))
        self.run("fees", "publish", str(europe))

    def push(self) -> None:
        self.step(
            6,
            "push the tables to the terminals",
            "a push signs on, sends the blocks, commits and verifies with a status query "
            "and a test sale (refused 57 while the table is still pending)",
        )
        self.run("rollout", "create", "--table", "1", "--waves", "50%,100%", "--max-failures",
                 "20%")  # fmt: skip
        self.run("rollout", "run", "1", "--workers", "2")
        self.run("rollout", "status", "1")
        self.run("push", "--table", "2", "--group", "region=eu")

    def swap(self, merchants: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
        self.step(
            7,
            f"swap {SWAPS} flagged terminals",
            "a swap is one transaction: the old terminal is swapped out, the new one from "
            "stock takes its TID, MID and merchant, and the merchant's notices are queued; "
            "--port then syncs the new terminal, pushes its table and verifies it",
        )
        flagged = self.query("replacements")
        terminals = self.terminals()
        in_stock = [t for t in terminals.values() if t["status"] == "in_stock"]
        flagged_serials = {r["serial"] for r in flagged["terminals"]}  # type: ignore[index]
        chosen: list[tuple[dict[str, str], dict[str, str], str]] = []
        used: set[str] = set()
        for r in flagged["terminals"]:  # type: ignore[index]
            if len(chosen) == SWAPS:
                break
            old = terminals[r["serial"]]
            region = merchants[old["merchant_id"]]["region"]
            if r["priority"] != "P1" or old["status"] != "deployed" or region == "apac":
                continue
            if any(merchants[o["merchant_id"]]["region"] == region for o, _, _ in chosen):
                continue  # one swap in China, one in Europe
            new = next(
                (
                    t for t in in_stock
                    if t["model"] == r["replacement_model"]
                    and t["serial"] not in flagged_serials | used
                ),
                None,
            )  # fmt: skip
            if new is None:
                continue
            used.add(new["serial"])
            chosen.append((old, new, r["reasons"][0]["detail"]))
        if len(chosen) < SWAPS:
            raise DemoError("the sample has too few flagged terminals with a replacement")
        done: list[tuple[str, str]] = []
        for old, new, reason in chosen:
            (path,) = self.start_terminal(
                new["serial"], new["model"], new["firmware"], old["tid"], old["mid"],
                merchants[old["merchant_id"]]["mcc"],
            )  # fmt: skip
            self.run("swap", old["serial"], new["serial"], "--reason", reason,
                     "--engineer", "Li Wei", "--port", path)  # fmt: skip
            done.append((old["serial"], new["serial"]))
        return done

    def terminals(self) -> dict[str, dict[str, str]]:
        with (self.data / "terminals.csv").open(encoding="utf-8") as fh:
            return {r["serial"]: r for r in csv.DictReader(fh)}

    def notices(self) -> None:
        self.step(
            8,
            "notices to the merchants",
            "composed per the contact policy (channel, quiet hours, rate limit, digests) and "
            "sent exactly once; with no --smtp/--sms everything goes to the outbox folder",
        )
        self.run("notices", "dispatch")
        self.run("notices", "list", "--kind", "swap_done")
        messages = self.query("notices", "list", "--kind", "swap_done")
        assert isinstance(messages, list)
        sent = [m for m in messages if m["status"] == "sent"]
        if len(sent) != SWAPS:
            raise DemoError(f"{len(sent)} of {SWAPS} swap notices were sent: {messages}")
        for m in sent:
            if m["channel"] == "sms":  # the outbox keeps an SMS as the text it would send
                (path,) = self.outbox.rglob(f"*{m['code']}*")
                console.print(f"[bold cyan]$ cat {path}[/]")
                console.print(path.read_text(encoding="utf-8").rstrip(), markup=False)
        # what the merchant's call to the hotline finds, quoting the code of a notice
        self.run("notices", "verify", sent[-1]["code"])

    def health(self, served: list[dict[str, str]], swapped: list[tuple[str, str]]) -> None:
        """A served terminal's tamper switch tripped, a health poll of every linked
        terminal, and a worn reader's history imported: each flagged, the reader with the
        day its wear line reaches the policy's share of rated life."""
        console.print(
            "[dim]health: the terminals report wear and tamper (tags 0x10-0x16); a tripped "
            "switch is P1 at once, a worn part P2 with a forecast date from its history[/]"
        )
        gone = {old for old, _ in swapped}
        tampered = next(
            row["serial"]
            for i, row in enumerate(served)
            if i != NOISY and row["serial"] not in gone
        )
        state = self.sims / tampered
        console.print(f"[bold cyan]$ possim tamper --state-dir {state}[/]")
        done = subprocess.run(
            [str(BIN / "possim"), "tamper", "--state-dir", str(state)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise DemoError(f"possim tamper failed: {done.stderr.strip()}")
        self.run("health", "poll")
        flagged = self.query("replacements")
        due = {t["serial"] for t in flagged["terminals"]}  # type: ignore[index]
        worn = next(
            t["serial"]
            for t in self.terminals().values()
            if t["model"] == "PF-300"
            and t["status"] == "deployed"
            and not t.get("link")
            and t["serial"] not in due
        )
        history = self.data / "health.csv"
        now = datetime.now(UTC).replace(microsecond=0)
        with history.open("w", encoding="utf-8") as fh:  # ten weekly samples, 1,000 reads a day
            fh.write("serial,at,chip,contactless,magstripe,printer_lines\n")
            for week in range(9, -1, -1):
                reads = 1_290_000 - 7_000 * week
                at = (now - timedelta(days=7 * week)).isoformat()
                fh.write(f"{worn},{at},{reads - reads // 10},4000,{reads // 10},900000\n")
        self.run("health", "import", str(history))
        found = self.query("replacements")
        for t in found["terminals"]:  # type: ignore[index]
            for reason in t["reasons"]:
                if reason["code"] in ("tamper", "reader") and t["serial"] in (tampered, worn):
                    console.print(
                        f"  {t['serial']}  {t['priority']}  {reason['code']}: {reason['detail']}"
                    )
        self.run("health", "show", worn, "--limit", "3")

    def report(self) -> list[Path]:
        self.step(
            9,
            "ops reports",
            "one self-contained HTML file each: inline SVG charts, nothing fetched, phone "
            "numbers masked",
        )
        self.health(self.served, self.swapped)
        self.reports.mkdir()
        self.run("report", "notices")
        files = []
        for name in ("fleet", "replacements", "rollout", "notices"):
            path = self.reports / f"{name}.html"
            self.run("report", name, "--format", "html", "--out", str(path))
            files.append(path)
        csv_path = self.reports / "replacements.csv"
        self.run("report", "replacements", "--format", "csv", "--out", str(csv_path))
        return [*files, csv_path]

    def console_user(self) -> str:
        """An admin for the web console; returns the one-time password it was given."""
        self.step(
            10,
            "the web console",
            "an admin to sign in with (a one-time password: they choose their own at the first "
            "sign-in); `posfleet serve` below opens this database in the browser",
        )
        shown = self.run("users", "add", "admin", "--role", "admin", show=False)
        console.print("[bold cyan]$ posfleet users add admin --role admin[/]")
        console.print(shown.rstrip(), markup=False, highlight=False)
        return shown.split("one-time password: ", 1)[1].split()[0]


POLICY = """\
# posfleet policy for the demo: the defaults, except as noted
[rollout]
waves = ["50%", "100%"]
backoff = "1s"

[notices]
# The demo sends everything now. The default quiet hours (21:00-08:00 in the merchant's
# zone) would defer the messages of merchants asleep while the demo runs, and the default
# digest window (15m) holds notices for a while so that those due together merge.
quiet_hours = "00:00-00:00"
digest_window = "0s"
"""

CHINA = """\
name = "China 2027"
description = "New merchant discount rates for China from 2027"
currency = "CNY"
effective = {date}T00:00:00+08:00

[applies]
regions = ["east", "south", "west"]

[[rules]]
card = "credit"
mcc = ["5812", "5814"]
rate = "0.80%"
max = "20.00"

[[rules]]
card = "credit"
rate = "0.60%"
min = "0.10"
max = "20.00"

[[rules]]
card = "qr_wallet"
rate = "0.30%"

[[rules]]
card = "any"
rate = "0.38%"
max = "20.00"
"""

EUROPE = """\
name = "Europe 2027"
description = "Interchange-capped rates for the euro area"
currency = "EUR"
effective = {date}T00:00:00+01:00

[applies]
regions = ["eu"]

[[rules]]
card = "debit"
rate = "0.20%"

[[rules]]
card = "international"
rate = "1.50%"

[[rules]]
card = "any"
rate = "0.30%"
min = "0.05"
"""


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="[out/demo]")
    out = parser.parse_args().out.resolve()
    demo = Demo(out)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)  # stopped from outside: still clean up
    try:
        demo.prepare()
        served = demo.seed()
        demo.served = served
        demo.record_links(demo.serve(served))
        demo.step(3, "sync", "sign on to every terminal with a link (0800/001) and record it")
        demo.run("sync", "--all")
        demo.step(4, "what must be replaced", "every rule that fires, a priority and a date")
        demo.run("replacements", "--limit", "8")
        demo.fees()
        demo.push()
        swapped = demo.swap(demo.merchants())
        demo.swapped = swapped
        demo.notices()
        files = demo.report()
        password = demo.console_user()
    except DemoError as exc:
        console.print(f"[red]demo failed: {exc}[/]")
        return 1
    except KeyboardInterrupt:
        console.print("[red]demo interrupted[/]")
        return 130
    finally:
        demo.stop()
    console.rule("[bold]done")
    console.print(
        f"in {time.monotonic() - started:.1f} s; {len(demo.procs)} possim processes "
        "stopped, none left running"
    )
    outbox = sorted(p for p in demo.outbox.rglob("*") if p.is_file())
    console.print(f"swapped: {', '.join(f'{a} → {b}' for a, b in swapped)}")
    rows = [
        ("fleet database", demo.db, "POSFLEET_DB=… posfleet terminals list"),
        ("policy", demo.policy, ""),
        ("master key", demo.key, ""),
        ("sample data", demo.data, "catalog.toml, merchants.csv, terminals.csv, fee tables"),
        ("terminal state", demo.sims, "possim show --state-dir …/<serial>"),
        ("possim log", demo.log, ""),
        ("outbox", demo.outbox, f"{len(outbox)} files: SMS .txt, emails .eml, call lists .csv"),
    ]
    rows += [(f"report: {f.stem} ({f.suffix[1:]})", f, "") for f in files]
    for label, path, hint in rows:
        console.print(f"  {label:<28} {path}" + (f"  [dim]({hint})[/]" if hint else ""))
    console.print("\nopen this fleet in the web console (Ctrl-C stops it):", highlight=False)
    posfleet, fleet_db, policy = BIN / "posfleet", demo.db, demo.policy
    with contextlib.suppress(ValueError):  # shorter, when they are below where we are
        posfleet, fleet_db, policy = (
            p.relative_to(Path.cwd()) for p in (posfleet, fleet_db, policy)
        )
    console.print(
        f"  {posfleet} --db {fleet_db} --policy {policy} serve --port 8000",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  then http://127.0.0.1:8000/ and sign in as admin with the one-time password {password}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
