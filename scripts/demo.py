"""`make demo`: the end-to-end path built so far, step by step.

Starts emulated terminals (`possim serve`) on fresh ptys — one of them behind a noisy
9600-baud `possim line` — signs on to each, pushes a fee table with progress bars (the
noisy one resumes after its line is cut), checks every terminal with a test sale priced
by the same fee function the terminal uses, and leaves no process running.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from protocols.errors import LinkError, ProtocolError
from protocols.feetable import FeeRule, FeeTable, compute_fee
from protocols.link import Link
from protocols.mac import derive_terminal_key, generate_master_key_file, load_master_key
from protocols.session import HostSession
from protocols.tlv import CardType

console = Console()
BIN = Path(sys.executable).parent
TERMINALS = [
    # serial, model, firmware, tid, mid, mcc
    ("PF00000001", "PF-200", "1.4.2", "TERM0001", "MERCHANT0000001", 5411),
    ("PF00000002", "PF-300", "2.0.1", "TERM0002", "MERCHANT0000002", 5812),
    ("VX00000003", "VX-520", "4.2.0", "TERM0003", "MERCHANT0000003", 5999),
]


def demo_table() -> FeeTable:
    return FeeTable(
        version=1,
        effective=datetime(2026, 1, 1, tzinfo=UTC),
        currency=156,
        rules=(
            # a regional scheme first (airlines, MCC 3000-3399: 0.35 % on debit), so the
            # table spans several blocks
            *(FeeRule(CardType.DEBIT, m, m, 3500) for m in range(3000, 3400)),
            FeeRule(CardType.DEBIT, 0, 9999, rate_ppm=3800, max_fee=2000),  # 0.38 %, cap 20.00
            FeeRule(CardType.CREDIT, 5800, 5899, rate_ppm=6000, min_fee=10),  # restaurants
            FeeRule(CardType.CREDIT, 0, 9999, rate_ppm=5500, min_fee=10),
            FeeRule(CardType.INTERNATIONAL, 0, 9999, rate_ppm=12500),
            FeeRule(CardType.QR_WALLET, 0, 9999, rate_ppm=3000),
        ),
    )


def start(args: list[str], log: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [str(BIN / "possim"), "--log-level", "INFO", *args],
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
    )
    assert proc.stdout is not None
    words = proc.stdout.readline().split()
    if words[:1] != ["READY"]:
        proc.kill()
        raise SystemExit(f"possim {args[0]} did not start; see {log}")
    return proc, words[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "possim.log"
    log.write_text("")
    key_file = out / "master.key"
    if not key_file.exists():
        generate_master_key_file(key_file)
    master = load_master_key(key_file)
    table = demo_table()
    procs: list[subprocess.Popen[str]] = []
    started = time.monotonic()
    try:
        console.rule("[bold]1. emulated terminals on ptys")
        ports: list[tuple[str, str, int]] = []
        for serial, model, fw, tid, mid, mcc in TERMINALS:
            proc, (path,) = start(
                ["serve", "--serial", serial, "--model", model, "--firmware", fw, "--tid", tid,
                 "--mid", mid, "--mcc", str(mcc), "--key-file", str(key_file),
                 "--state-dir", str(out / serial), "--port", "pty", "--baud", "9600"],
                log,
            )  # fmt: skip
            procs.append(proc)
            ports.append((serial, path, 115200))
            console.print(f"possim serve {serial} ({model}, firmware {fw}) → READY {path}")
        serial, path, _ = ports[2]
        line, (_, host_end) = start(
            ["line", path, "pty", "--baud", "9600", "--drop", "0.05", "--corrupt", "0.05",
             "--cut-after", "6s", "--cut-for", "6s", "--seed", "7"],
            log,
        )  # fmt: skip
        procs.append(line)
        ports[2] = (serial, host_end, 9600)
        console.print(
            f"possim line {path} ⇄ {host_end}: 9600 baud, 5 % frames lost, 5 % corrupted, "
            "cut after 6 s for 6 s (longer than the link's 4 sends: the push must resume)"
        )

        console.rule("[bold]2. sign-on")
        sessions = {}
        signons = Table("serial", "model", "firmware", "MID", "MCC", "active", "pending")
        for serial, port, baud in ports:
            key = derive_terminal_key(master, serial)
            tid = next(t[3] for t in TERMINALS if t[0] == serial)
            session = HostSession(Link(port, baud), tid, key)
            sessions[serial] = session
            so = session.sign_on()
            i = so.info
            signons.add_row(serial, i.model, i.firmware, so.mid, str(i.mcc),
                            str(i.active_version), str(i.pending_version))  # fmt: skip
        console.print(signons)

        blocks = len(table.blocks())
        console.rule(f"[bold]3. push fee table v{table.version} ({len(table.to_bytes())} B, "
                     f"{blocks} blocks of 900 B, signed with each terminal's key)")  # fmt: skip
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console,
        ) as progress:  # fmt: skip
            for serial, port, baud in ports:
                task = progress.add_task(serial, total=blocks, note="")
                session = sessions[serial]
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        result = session.push(
                            table, lambda done, _n, t=task: progress.update(t, completed=done)
                        )
                        break
                    except (LinkError, ProtocolError) as exc:
                        progress.update(
                            task, note=f"[yellow]attempt {attempts}: {exc.reason[:28]}…; resuming"
                        )
                        session.link.close()
                        time.sleep(1.2)
                        session.link = Link(port, baud)
                        if attempts > 10:
                            raise
                note = f"[green]committed after {attempts} attempt(s)"
                if result.resumed_from:
                    note += f", resumed at block {result.resumed_from}"
                progress.update(task, completed=blocks, note=note)

        console.rule("[bold]4. verify: a test sale on each terminal, priced by both sides")
        sales = Table("serial", "MCC", "card", "amount", "terminal fee", "fleet fee", "match")
        for (serial, *_), (_, _, _, _, _, mcc) in zip(ports, TERMINALS, strict=True):
            for card in (CardType.CREDIT, CardType.DEBIT):
                outcome = sessions[serial].sale(12_345, card)
                expected = compute_fee(table, 12_345, card, mcc)
                ok = outcome.fee == expected
                match = "[green]yes" if ok else "[red]NO"
                sales.add_row(
                    serial, str(mcc), card.name.lower(), "123.45", str(outcome.fee),
                    str(expected), match,
                )  # fmt: skip
                if not ok:
                    raise SystemExit(f"{serial}: terminal fee {outcome.fee} != fleet {expected}")
        console.print(sales)
        for session in sessions.values():
            session.link.close()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    console.rule("[bold]done")
    console.print(f"in {time.monotonic() - started:.1f} s; no possim process left running")
    console.print(f"terminal state: {out}/<serial>/terminal.db")
    console.print(f"  inspect with: possim show --state-dir {out}/PF00000001")
    console.print(f"master key:     {key_file}")
    console.print(f"possim logs:    {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
