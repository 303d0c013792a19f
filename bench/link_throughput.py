"""Link throughput and protocol overhead of a real fee-table download over a pty pair.

A 64 KiB fee table (a real ``FEE1`` file) is pushed as signed 0800/360 block messages of
900 bytes, then committed with 0800/361; the far side verifies every MAC, answers each
block with a signed 0810 giving the next expected block, and checks digest and CRC on the
commit. Both ends run :class:`protocols.link.Link` (frames, ACKs, T1 discipline) over a
:class:`protocols.pty.PtyPair`.

Reported: payload bytes/s on the pty (which moves bytes at memory speed: the software's
own ceiling, not a line's), and the share of the wire that is protocol overhead (framing,
ACK bytes, ISO headers and MACs of the requests, the responses). On a real line wire time
is bytes × 10 bits ÷ baud, so the payload ceiling at a baud is ``payload ÷ wire bytes`` of
the line rate (turnaround and terminal processing not counted).
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime

from protocols import messages as m
from protocols.codec import decode, encode
from protocols.errors import MacError
from protocols.feetable import FeeRule, FeeTable
from protocols.framing import OVERHEAD
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.pty import PtyPair

TID = "TERM0001"
KEY = derive_terminal_key(bytes(range(16)), "PF00000001")
RUNS = 3


def table_of_size(target: int, version: int = 7) -> FeeTable:
    """A real fee table of about ``target`` bytes (24 bytes of header and CRC, 21 a rule)."""
    count = (target - 24) // 21
    rules = [FeeRule(1 + i % 4, i % 10_000, i % 10_000, 3000 + i % 5000) for i in range(count)]
    rules.append(FeeRule(0, 0, 9999, 6000))
    return FeeTable(version, datetime(2027, 1, 1, tzinfo=UTC), 156, tuple(rules))


class _Receiver:
    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.committed = False

    def handle(self, body: bytes) -> bytes:
        req = decode(body)
        try:
            m.verify(req, KEY)
        except MacError:
            return encode(m.response_to(req, m.ResponseCode.MAC_FAILED))
        addr = m.block_address(req)
        if m.network_code(req) is m.NetCode.BLOCK:
            if addr.index == len(self.blocks):
                self.blocks.append(req.binary(62))
            nxt = m.BlockAddress(addr.version, len(self.blocks), addr.count).encode()
            return encode(m.sign(m.response_to(req, m.ResponseCode.APPROVED, {61: nxt}), KEY))
        table = FeeTable.from_bytes(b"".join(self.blocks))
        self.committed = table.digest() == req.binary(62)
        code = m.ResponseCode.APPROVED if self.committed else m.ResponseCode.TABLE_CHECK_FAILED
        return encode(m.sign(m.response_to(req, code), KEY))


def push(host: Link, table: FeeTable, tid: str = TID) -> int:
    """Push ``table`` block by block and commit it; return the number of exchanges."""
    stan = m.StanCounter()
    blocks = table.blocks()
    for index, data in enumerate(blocks):
        req = m.sign(m.block(stan.next(), tid, table.version, index, len(blocks), data), KEY)
        rsp = decode(host.request(encode(req)))
        if rsp[39] != "00":
            raise RuntimeError(f"block {index} refused: {rsp[39]}")
    req = m.sign(m.commit(stan.next(), tid, table.version, len(blocks), table.digest()), KEY)
    if decode(host.request(encode(req)))[39] != "00":
        raise RuntimeError("commit refused")
    return len(blocks) + 1


def _one_run(table: FeeTable) -> tuple[float, int, dict[str, int], dict[str, int]]:
    receiver = _Receiver()
    stop = threading.Event()
    with PtyPair() as pair, Link(pair.a, 115200) as host, Link(pair.b, 115200) as terminal:
        server = threading.Thread(target=terminal.serve_forever, args=(receiver.handle, stop))
        server.start()
        try:
            start = time.perf_counter()
            exchanges = push(host, table)
            elapsed = time.perf_counter() - start
        finally:
            stop.set()
            server.join(5)
    assert receiver.committed, "the table did not arrive intact"
    return elapsed, exchanges, host.stats.as_dict(), terminal.stats.as_dict()


def run() -> list[str]:
    """Run the benchmark; return the report lines."""
    table = table_of_size(64 * 1024)
    payload = len(table.to_bytes())
    results = [_one_run(table) for _ in range(RUNS)]
    elapsed = statistics.median(r[0] for r in results)
    _, exchanges, host, terminal = results[0]

    wire = host["bytes_sent"] + host["bytes_received"]
    frames = host["frames_sent"] + terminal["frames_sent"]
    acks = host["acks_sent"] + terminal["acks_sent"] + host["naks_sent"] + terminal["naks_sent"]
    request_bodies = host["bytes_sent"] - host["frames_sent"] * OVERHEAD - host["acks_sent"]
    response_bodies = terminal["bytes_sent"] - terminal["frames_sent"] * OVERHEAD
    response_bodies -= terminal["acks_sent"]

    def share(n: int) -> str:
        return f"{n:>7} B  {100 * n / wire:5.1f} %"

    lines = [
        f"## Link: a {payload} B fee table pushed over a pty pair as {exchanges - 1} signed "
        f"0800/360 blocks + 1 commit (median of {RUNS} runs)",
        f"  time                          {elapsed * 1000:8.1f} ms",
        f"  payload                       {payload / elapsed / 1e6:8.2f} MB/s",
        f"  exchanges                     {exchanges / elapsed:8.0f} /s",
        f"  resends                       {host['resends'] + terminal['resends']:8d}",
        f"wire bytes, both directions: {wire} B",
        f"  payload (table bytes)       {share(payload)}",
        f"  protocol overhead           {share(wire - payload)}",
        f"    framing (STX LEN ETX LRC) {share(frames * OVERHEAD)}",
        f"    ACK/NAK bytes             {share(acks)}",
        f"    request headers + MACs    {share(request_bodies - payload)}",
        f"    response messages         {share(response_bodies)}",
    ]
    efficiency = payload / wire
    for baud in (9600, 115200):
        line_rate = baud / 10
        lines.append(
            f"at {baud:>6} baud: wire time {wire / line_rate:6.1f} s, of which overhead "
            f"{100 * (1 - efficiency):.1f} %; payload ceiling {line_rate * efficiency:6.0f} B/s"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
