"""Link-layer throughput and protocol overhead of a fee-table download.

Pushes a 64 KiB payload over a :class:`protocols.pty.PtyPair` (a virtual null-modem) as
0800/360-like requests: each body is an ISO 8583 header of 86 bytes (MTI, bitmap, STAN,
TID, MID, fields 60 and 61, MAC: the 986 - 900 bytes of a real block message) followed by
up to 900 payload bytes. The terminal side answers every request with a 60-byte body
(an 0810-like response). Everything goes through :class:`protocols.link.Link` on both
ends: frames, ACKs, T1 discipline.

Reported: payload bytes/s and frames/s on the pty (which moves bytes at memory speed:
this is the software's ceiling, not a line's), and the share of wire bytes that is
protocol overhead (framing + ACK bytes + response frames + ISO headers). With those
shares, the ceiling on a real line is ``baud / 10 * payload / wire bytes`` (8N1, 10 bits
a byte; line turnaround and processing time not counted).

Run: ``python -m bench.link_throughput`` or ``python bench/link_throughput.py``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.framing import OVERHEAD
from protocols.link import Link
from protocols.pty import PtyPair

PAYLOAD_SIZE = 64 * 1024
BLOCK = 900
ISO_HEADER = 86  # a 986-byte 0800/360 body carries 900 bytes of table
RESPONSE_SIZE = 60
RUNS = 3


def _request_body(stan: int, index: int, count: int, block: bytes) -> bytes:
    fields = (
        b"0800"
        + b"\x20\x20\x01\x00\x00\xc0\x00\x1d"  # bitmap: 3, 11, 24... (shape only)
        + f"{stan:06d}".encode()
        + b"TID00001"
        + b"MID000000000001"
        + b"011"
        + b"00000001360"  # field 60: LLL + 60.1, 60.2 batch, 60.3 = 360
        + b"016"
        + f"{7:08d}{index:04d}{count:04d}".encode()  # field 61
        + f"{len(block):03d}".encode()  # field 62 length prefix
    )
    # pad to a real block message's header size (the MAC of field 64 included)
    return fields.ljust(ISO_HEADER, b" ") + block


def _response_body(request: bytes) -> bytes:
    return (b"0810" + request[4:18] + b"00").ljust(RESPONSE_SIZE, b"\x00")


def _one_run(payload: bytes) -> tuple[float, int, dict[str, int], dict[str, int]]:
    blocks = [payload[i : i + BLOCK] for i in range(0, len(payload), BLOCK)]
    stop = threading.Event()
    with PtyPair() as pair:
        terminal = Link(pair.b, 115200, request_key=lambda body: body[12:18])
        host = Link(pair.a, 115200, response_check=lambda q, r: r[12:18] == q[12:18])
        server = threading.Thread(
            target=terminal.serve_forever, args=(_response_body, stop), daemon=True
        )
        server.start()
        try:
            start = time.perf_counter()
            for index, block in enumerate(blocks):
                host.request(_request_body(index + 1, index, len(blocks), block))
            elapsed = time.perf_counter() - start
        finally:
            stop.set()
            server.join(5)
            host.close()
            terminal.close()
    return elapsed, len(blocks), host.stats.as_dict(), terminal.stats.as_dict()


def run() -> list[str]:
    """Run the benchmark; return the report lines."""
    payload = bytes((i * 131 + 7) & 0xFF for i in range(PAYLOAD_SIZE))
    results = [_one_run(payload) for _ in range(RUNS)]
    elapsed = statistics.median(r[0] for r in results)
    _, exchanges, host, terminal = results[0]

    wire = host["bytes_sent"] + host["bytes_received"]
    framing = (host["frames_sent"] + terminal["frames_sent"]) * OVERHEAD
    acks = host["acks_sent"] + terminal["acks_sent"] + host["naks_sent"] + terminal["naks_sent"]
    response_bodies = terminal["frames_sent"] * RESPONSE_SIZE
    iso_headers = host["frames_sent"] * ISO_HEADER
    overhead = wire - len(payload)

    def share(n: int) -> str:
        return f"{n:>7} B  {100 * n / wire:5.1f} %"

    lines = [
        f"link throughput over a PtyPair: {len(payload)} B payload in {exchanges} requests "
        f"of <= {BLOCK} B (+{ISO_HEADER} B ISO header), {RESPONSE_SIZE} B responses; "
        f"median of {RUNS} runs",
        f"  time               {elapsed * 1000:8.1f} ms",
        f"  payload            {len(payload) / elapsed / 1e6:8.2f} MB/s",
        f"  exchanges          {exchanges / elapsed:8.0f} /s  "
        f"({(host['frames_sent'] + terminal['frames_sent']) / elapsed:.0f} frames/s)",
        f"  resends            {host['resends'] + terminal['resends']:8d}",
        f"wire bytes (both directions): {wire} B",
        f"  payload          {share(len(payload))}",
        f"  overhead         {share(overhead)}",
        f"    framing (STX LEN ETX LRC) {share(framing)}",
        f"    ACK/NAK bytes             {share(acks)}",
        f"    ISO headers of requests   {share(iso_headers)}",
        f"    response bodies           {share(response_bodies)}",
    ]
    efficiency = len(payload) / wire
    for baud in (9600, 115200):
        line_rate = baud / 10
        ceiling = line_rate * efficiency
        lines.append(
            f"at {baud:>6} baud: line {line_rate:7.0f} B/s -> payload ceiling "
            f"{ceiling:7.0f} B/s ({100 * efficiency:.1f} %), 64 KiB in >= "
            f"{len(payload) / ceiling:6.1f} s"
        )
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
