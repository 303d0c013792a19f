"""`possim cable`: a virtual null-modem from the command line, stopped by SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import termios
import tty
from pathlib import Path

import pytest


@pytest.mark.timeout(60)
def test_cable_carries_bytes_both_ways_and_stops_on_sigterm() -> None:
    exe = Path(sys.executable).with_name("possim")
    proc = subprocess.Popen([exe, "cable"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words[0] == "READY" and len(words) == 3
        a = os.open(words[1], os.O_RDWR | os.O_NOCTTY)
        b = os.open(words[2], os.O_RDWR | os.O_NOCTTY)
        try:
            for fd in (a, b):
                tty.setraw(fd, termios.TCSANOW)
            payload = bytes(range(256))  # 0x03 and \r included: the line must be raw
            os.write(a, payload)
            got = b""
            while len(got) < len(payload):
                ready, _, _ = select.select([b], [], [], 10)
                assert ready, f"only {len(got)} bytes crossed"
                got += os.read(b, 4096)
            assert got == payload
            os.write(b, b"back")
            ready, _, _ = select.select([a], [], [], 10)
            assert ready and os.read(a, 16) == b"back"
        finally:
            os.close(a)
            os.close(b)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
