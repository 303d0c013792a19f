"""Fuzz: random bytes, random frames and mutated valid frames at the terminal for a while;
it must keep serving and answer a sign-on correctly afterwards."""

from __future__ import annotations

import contextlib
import os
import random
import termios
import time
import tty

import pytest

from protocols import messages as m
from protocols.codec import encode
from protocols.framing import encode_frame
from protocols.keys import KeyChange, KeyConfirm
from protocols.mac import MasterKey
from protocols.tlv import SaleRequest
from protocols.values import CardType
from tests.terminal_sim.conftest import KEY, SERIAL, TID, Served, make_table

FUZZ_SECONDS = 4.0
NEXT = MasterKey(2, bytes(range(100, 116))).terminal_key(SERIAL)


def _valid_requests(rng: random.Random) -> list[bytes]:
    table = make_table(5, rules=60)
    stan = rng.randrange(1, 999_999)
    reqs = [
        m.sign_on(stan, TID),
        m.echo(stan + 1, TID),
        m.download_status(stan + 2, TID),
        m.sale(stan + 3, TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv()),
        m.sign(m.block(stan + 4, TID, 5, 0, 2, table.blocks()[0]), KEY),
        m.sign(m.commit(stan + 5, TID, 5, 2, table.digest()), KEY),
        # additions to v1: health poll, key change and confirmation
        m.health(stan + 6, TID),
        m.sign(m.key_change(stan + 7, TID, KeyChange.build(KEY, NEXT).to_tlv()), KEY),
        m.sign(m.key_confirm(stan + 8, TID, KeyConfirm(2).to_tlv()), NEXT.key),
    ]
    return [encode(r) for r in reqs]


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        pos = rng.randrange(len(data))
        if choice < 0.5:
            data[pos] = rng.randrange(256)
        elif choice < 0.7 and len(data) > 1:
            del data[pos]
        elif choice < 0.85:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            data = data[: rng.randint(1, len(data))]
    return bytes(data) or b"\x00"


@pytest.mark.timeout(120)
def test_fuzzed_line_then_a_correct_sign_on(served: Served) -> None:
    rng = random.Random(7)
    valid = _valid_requests(rng)
    fd = os.open(served.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    sent = {"noise": 0, "mutated frame": 0, "mutated bytes": 0, "oversized": 0}
    try:
        deadline = time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < deadline:
            kind = rng.random()
            if kind < 0.2:
                chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
                sent["noise"] += 1
            elif kind < 0.65:  # a good frame around a mutated message: reaches the decoder
                chunk = encode_frame(_mutate(rng, rng.choice(valid)))
                sent["mutated frame"] += 1
            elif kind < 0.95:  # a damaged frame: bad LRC, BCD, ETX or cut short
                chunk = _mutate(rng, encode_frame(rng.choice(valid)))
                sent["mutated bytes"] += 1
            else:  # a frame announcing far more than it carries
                chunk = b"\x02\x99\x99" + bytes(rng.randrange(256) for _ in range(100))
                sent["oversized"] += 1
            with contextlib.suppress(BlockingIOError):
                os.write(fd, chunk)
            # drain the answers so the pty never fills up
            try:
                while os.read(fd, 65536):
                    pass
            except (BlockingIOError, OSError):
                pass
            time.sleep(0.001)
    finally:
        os.close(fd)
    assert all(sent.values()), sent
    time.sleep(0.3)  # let a half-sent frame time out on the terminal's side
    session = served.session()
    try:
        signon = session.sign_on()
        assert signon.info.serial == SERIAL
        # mutated key requests never pass: the current key is still the one it had
        assert served.terminal.key_slots().current.key == KEY
        assert session.health().card_reads.chip >= 0
        session.echo()
        # the fuzz may have started a download; a real push still works afterwards
        result = session.push(make_table(6, rules=60))
        assert not result.already
        assert session.sign_on().info.active_version == 6
    finally:
        session.link.close()
