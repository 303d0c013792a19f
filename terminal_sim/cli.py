"""`possim`: emulated POS terminals on virtual serial ports, for labs and tests."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from protocols.pty import PtyPair

app = typer.Typer(
    name="possim",
    help="Emulated POS terminals on virtual serial ports, and a line emulator with faults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()


@app.callback()
def _root() -> None:
    """Emulated POS terminals on virtual serial ports, and a line emulator with faults."""


@app.command("cable")
def cable(
    seconds: Annotated[
        float, typer.Option(help="Keep the cable up this long (0 = until Ctrl-C).")
    ] = 0.0,
) -> None:
    """Open a virtual null-modem cable: two pty paths wired to each other.

    Prints `READY <end A> <end B>`; connect any serial tool to either end.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PtyPair() as pair:
        print(f"READY {pair.a} {pair.b}", flush=True)
        stop.wait(seconds or None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
