"""`possim`: emulated POS terminals on virtual serial ports, for labs and tests.

Commands: ``serve`` (one terminal), ``fleet`` (many, over TCP), ``show`` (a terminal's
state), ``sale`` (act as the cash register), ``tamper`` (trip a terminal's tamper switch),
``line`` (a line emulator with faults) and ``cable`` (a plain virtual null-modem).

(Over 400 lines: one module per front end, as ``posfleet``'s sub-apps are; every command
here is a thin layer over :mod:`terminal_sim.terminal`, :mod:`terminal_sim.serve` and
:mod:`terminal_sim.state`.)
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from protocols.errors import ProtocolError
from protocols.values import Capability, CardType, check_amount, check_tid
from terminal_sim.defaults import IDLE_TIMEOUT
from terminal_sim.line import line_command
from terminal_sim.wear_profile import WearProfile

if TYPE_CHECKING:
    from terminal_sim.terminal import TerminalConfig
    from terminal_sim.wear import InitialWear

# Each command imports the codec, link, MAC, state and terminal modules it works with (as
# ``posfleet``'s commands do): ``possim --help`` loads none of them
# (tests/terminal_sim/test_cli_startup.py checks).

app = typer.Typer(
    name="possim",
    help="Emulated POS terminals on virtual serial ports, and a line emulator with faults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("line")(line_command)
out = Console()
err = Console(stderr=True)
log = logging.getLogger("possim")

CARDS = {
    "debit": CardType.DEBIT,
    "credit": CardType.CREDIT,
    "international": CardType.INTERNATIONAL,
    "qr": CardType.QR_WALLET,
}
CAPS = {
    "chip": Capability.CHIP,
    "contactless": Capability.CONTACTLESS,
    "magstripe": Capability.MAGSTRIPE,
    "qr": Capability.QR,
    "pinpad": Capability.PIN_PAD,
}


@app.callback()
def _root(
    log_level: Annotated[str, typer.Option(help="Logging level on stderr.")] = "INFO",
) -> None:
    """Emulated POS terminals on virtual serial ports, and a line emulator with faults."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _ready(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


IdleTimeoutOpt = Annotated[
    float,
    typer.Option(
        min=0,
        help="Seconds a TCP host may stay silent before it is disconnected, so that the "
        "next host is served (0: never).",
    ),
]

WearOption = Annotated[
    WearProfile | None,
    typer.Option(
        help="Start terminals seen for the first time worn: new, mixed or worn (default: "
        "fresh out of the box). A terminal with state keeps its wear."
    ),
]
WearSeedOption = Annotated[int, typer.Option(help="Seed of the wear profile.")]
AllowOpenKeyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-open-key-file",
        help="Use a master key file others can read (refused by default, as ssh does).",
    ),
]


def _wear(
    profile: WearProfile | None, seed: int, config: TerminalConfig
) -> Callable[[], InitialWear] | None:
    """The terminal's first-boot wear under ``profile`` (computed only if it boots first)."""
    if profile is None:
        return None
    from terminal_sim.wear import initial_wear, profile_for  # noqa: PLC0415

    model = profile_for(config.model)
    return lambda: initial_wear(
        profile, seed, config.serial, model, config.capabilities, datetime.now(UTC)
    )


def _capabilities(text: str) -> Capability:
    caps = Capability(0)
    for word in filter(None, (w.strip().lower() for w in text.split(","))):
        if word not in CAPS:
            raise ValueError(f"unknown capability {word!r} (known: {', '.join(CAPS)})")
        caps |= CAPS[word]
    return caps


# -- serve ------------------------------------------------------------------------------


@app.command()
def serve(
    serial: Annotated[str, typer.Option(help="Serial number (also the MAC key's context).")],
    tid: Annotated[str, typer.Option(help="Terminal ID, 8 characters.")],
    mid: Annotated[str, typer.Option(help="Merchant ID, 15 characters.")],
    key_file: Annotated[Path, typer.Option(help="Fleet master key file (32 hex digits).")],
    state_dir: Annotated[Path, typer.Option(help="Where the terminal keeps its state.")],
    model: Annotated[str, typer.Option(help="Model name.")] = "PF-200",
    firmware: Annotated[str, typer.Option(help="Firmware version.")] = "1.0.0",
    mcc: Annotated[int, typer.Option(help="Merchant category code.")] = 5411,
    capabilities: Annotated[
        str, typer.Option(help="Comma list: chip,contactless,magstripe,qr,pinpad.")
    ] = "chip,contactless,magstripe",
    port: Annotated[
        str, typer.Option(help="'pty', a device such as /dev/ttyUSB0, or tcp://HOST:PORT.")
    ] = "pty",
    baud: Annotated[int, typer.Option(help="Line speed assumed for T1.")] = 9600,
    idle_timeout: IdleTimeoutOpt = IDLE_TIMEOUT,
    wear_profile: WearOption = None,
    wear_seed: WearSeedOption = 0,
    allow_open_key_file: AllowOpenKeyOpt = False,
) -> None:
    """Serve one emulated terminal. Prints `READY <url>` first, then logs to stderr."""
    from terminal_sim.serve import parse_tcp, serve_terminal  # noqa: PLC0415
    from terminal_sim.terminal import Terminal, TerminalConfig  # noqa: PLC0415

    try:
        config = TerminalConfig.from_master_key_file(
            key_file,
            serial=serial,
            model=model,
            firmware=firmware,
            tid=tid,
            mid=mid,
            mcc=mcc,
            capabilities=_capabilities(capabilities),
            allow_open=allow_open_key_file,
        )
        if port.startswith("tcp://"):
            parse_tcp(port)
    except (ValueError, ProtocolError) as exc:
        raise fail(str(exc), 2) from None
    stop = _stop_on_signals()
    terminal = Terminal(config, state_dir, wear=_wear(wear_profile, wear_seed, config))
    try:
        serve_terminal(
            terminal, port, stop, lambda url: _ready(f"READY {url}"), baud=baud, idle_s=idle_timeout
        )
    except (OSError, ProtocolError) as exc:
        raise fail(f"{port}: {exc}") from None
    finally:
        terminal.close()
    log.info("%s: stopped", serial)


# -- fleet -------------------------------------------------------------------------------

MANIFEST_COLUMNS = ("serial", "model", "firmware", "tid", "mid", "mcc")


def read_manifest(path: Path, key_file: Path, *, allow_open: bool = False) -> list[TerminalConfig]:
    """Terminals from a CSV manifest; every bad row is reported as ``file:line: column: why``.
    Serials follow the fleet's rule (:func:`protocols.values.check_serial`): each names its
    terminal's folder under ``--state-dir``, so ``../x`` or ``/tmp/x`` is a bad row."""
    from protocols.mac import read_master_key  # noqa: PLC0415
    from terminal_sim.terminal import DEFAULT_CAPABILITIES, TerminalConfig  # noqa: PLC0415

    master = read_master_key(key_file, allow_open=allow_open)
    configs: list[TerminalConfig] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}:1: missing columns: {', '.join(missing)}")
        for row in reader:
            line = reader.line_num
            try:
                mcc = int(row["mcc"])
            except ValueError:
                problems.append(f"{path}:{line}: mcc: {row['mcc']!r} is not a number")
                continue
            serial = row["serial"].strip()
            if serial in seen:
                problems.append(f"{path}:{line}: serial: {serial!r} repeats line {seen[serial]}")
                continue
            seen[serial] = line
            try:
                caps = _capabilities(row.get("capabilities") or "") or DEFAULT_CAPABILITIES
                configs.append(
                    TerminalConfig(
                        serial,
                        row["model"].strip(),
                        row["firmware"].strip(),
                        row["tid"],
                        row["mid"],
                        mcc,
                        master.terminal_key(serial).key,
                        caps,
                        key_version=master.version,
                    )
                )
            except ValueError as exc:
                problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise ValueError("\n".join(problems))
    return configs


def generated_fleet(
    count: int, key_file: Path, model: str, firmware: str, mcc: int, *, allow_open: bool = False
) -> list[TerminalConfig]:
    from protocols.mac import read_master_key  # noqa: PLC0415
    from terminal_sim.terminal import TerminalConfig  # noqa: PLC0415

    master = read_master_key(key_file, allow_open=allow_open)
    return [
        TerminalConfig(
            serial=f"PS{i:08d}",
            model=model,
            firmware=firmware,
            tid=f"T{i:07d}",
            mid=f"M{i:014d}",
            mcc=mcc,
            key=master.terminal_key(f"PS{i:08d}").key,
            key_version=master.version,
        )
        for i in range(1, count + 1)
    ]


@app.command()
def fleet(
    key_file: Annotated[Path, typer.Option(help="Fleet master key file (32 hex digits).")],
    state_dir: Annotated[Path, typer.Option(help="One sub-directory per terminal is kept here.")],
    tcp: Annotated[
        str,
        typer.Option(help="HOST:PORT of the first terminal; the next ones count up (PORT 0: any)."),
    ] = "127.0.0.1:0",
    manifest: Annotated[
        Path | None, typer.Option(help="CSV: serial,model,firmware,tid,mid,mcc[,capabilities].")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Generate N terminals instead.")] = None,
    model: Annotated[str, typer.Option(help="Model of generated terminals.")] = "PF-200",
    firmware: Annotated[str, typer.Option(help="Firmware of generated terminals.")] = "1.0.0",
    mcc: Annotated[int, typer.Option(help="MCC of generated terminals.")] = 5411,
    baud: Annotated[int, typer.Option(help="Line speed assumed for T1.")] = 115200,
    drop: Annotated[
        float, typer.Option(help="Lose this share of frames and ACK/NAKs, both directions.")
    ] = 0.0,
    corrupt: Annotated[float, typer.Option(help="Flip a bit in this share of frames.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault dice.")] = None,
    idle_timeout: IdleTimeoutOpt = IDLE_TIMEOUT,
    wear_profile: WearOption = None,
    wear_seed: WearSeedOption = 0,
    allow_open_key_file: AllowOpenKeyOpt = False,
) -> None:
    """Serve many terminals from one process, one TCP port each.

    Prints `READY <serial> <url>` per terminal, then `READY ALL`.
    """
    import resource  # noqa: PLC0415

    from terminal_sim.serve import FleetServer, parse_tcp  # noqa: PLC0415
    from terminal_sim.terminal import Terminal  # noqa: PLC0415

    if (manifest is None) == (count is None):
        raise fail("give either --manifest or --count", 2)
    if not (0 <= drop < 1 and 0 <= corrupt < 1):
        raise fail("--drop and --corrupt are shares in [0, 1)", 2)
    try:
        host, base = parse_tcp(tcp)
        if manifest is not None:
            configs = read_manifest(manifest, key_file, allow_open=allow_open_key_file)
        else:
            assert count is not None
            if count < 1:
                raise ValueError("--count must be at least 1")
            configs = generated_fleet(
                count, key_file, model, firmware, mcc, allow_open=allow_open_key_file
            )
    except (ValueError, OSError, ProtocolError) as exc:
        raise fail(str(exc), 2) from None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * len(configs) + 256)), hard))
    stop = _stop_on_signals()
    terminals = [
        Terminal(c, state_dir / c.serial, wear=_wear(wear_profile, wear_seed, c)) for c in configs
    ]
    try:
        server = FleetServer(
            terminals, host, base, baud, drop=drop, corrupt=corrupt, seed=seed, idle_s=idle_timeout
        )
    except ProtocolError as exc:
        for t in terminals:
            t.close()
        raise fail(str(exc)) from None
    try:
        for slot in server.slots:
            sys.stdout.write(f"READY {slot.terminal.config.serial} {slot.url}\n")
        _ready("READY ALL")
        server.run(stop)
    finally:
        server.close()


# -- show -----------------------------------------------------------------------------------


def state_document(state_dir: Path) -> dict[str, Any]:
    """The terminal's state as plain data (what ``show --json`` prints)."""
    from terminal_sim.report import health_document, keys_document  # noqa: PLC0415
    from terminal_sim.state import StateStore  # noqa: PLC0415

    store = StateStore(state_dir)
    try:
        if not store.exists:
            raise FileNotFoundError(f"{state_dir}: no terminal state here")
        tables = {
            t.role: {
                "version": t.version,
                "effective": t.effective.isoformat(),
                "bytes": len(t.data),
                "sha256": t.sha256.hex(),
                "committed_at": t.committed_at.isoformat(),
                "activated_at": t.activated_at.isoformat() if t.activated_at else None,
            }
            for t in store.tables()
        }
        partial = store.partial()
        return {
            "keys": keys_document(store),
            "health": health_document(store),
            "active": tables.get("active"),
            "pending": tables.get("pending"),
            "partial_download": None
            if partial is None
            else {
                "version": partial.version,
                "blocks_stored": partial.next_block,
                "block_count": partial.count,
                "started_at": partial.started_at.isoformat(),
            },
            "last_sales": [
                {
                    "at": s.at.isoformat(),
                    "stan": s.stan,
                    "amount": s.amount,
                    "card_type": CardType(s.card_type).name.lower() if s.card_type else None,
                    "code": s.code,
                    "fee": s.fee,
                    "net": s.net,
                    "approval": s.approval,
                    "table_version": s.table_version,
                }
                for s in store.sales(10)
            ],
        }
    finally:
        store.close()


@app.command()
def show(
    state_dir: Annotated[Path, typer.Option(help="The terminal's state directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a terminal's state: tables, pending activation, partial download, last sales."""
    from rich.table import Table  # noqa: PLC0415

    from terminal_sim.report import print_keys_and_health  # noqa: PLC0415

    try:
        doc = state_document(state_dir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _ready(json.dumps(doc, indent=2))
        return
    tables = Table(title=f"fee tables in {state_dir}", title_justify="left")
    for column in ("role", "version", "effective", "bytes", "sha256"):
        tables.add_column(column)
    for role in ("active", "pending"):
        t = doc[role]
        if t:
            tables.add_row(
                role, str(t["version"]), t["effective"], str(t["bytes"]), t["sha256"][:16]
            )
        else:
            tables.add_row(role, "—", "", "", "")
    print_keys_and_health(out, doc)
    out.print(tables)
    partial = doc["partial_download"]
    if partial:
        out.print(
            f"partial download: version {partial['version']}, "
            f"{partial['blocks_stored']} of {partial['block_count']} blocks stored"
        )
    else:
        out.print("partial download: none")
    sales = Table(title="last sales", title_justify="left")
    for column in ("at", "stan", "amount", "card", "code", "fee", "net", "approval", "table"):
        sales.add_column(column)
    for s in doc["last_sales"]:
        sales.add_row(
            s["at"],
            s["stan"],
            str(s["amount"]),
            s["card_type"] or "",
            s["code"],
            "" if s["fee"] is None else str(s["fee"]),
            "" if s["net"] is None else str(s["net"]),
            s["approval"] or "",
            "" if s["table_version"] is None else str(s["table_version"]),
        )
    out.print(sales)


# -- sale ------------------------------------------------------------------------------------


def parse_amount(text: str, exponent: int = 2) -> int:
    """``"100.00"`` → 10000 minor units; refuses more decimals than the currency has.

    >>> parse_amount("100.00"), parse_amount("0.5"), parse_amount("12")
    (10000, 50, 1200)
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"amount {text!r} must be a positive number")
    if value and value.adjusted() > 15:  # past field 4's 12 digits, before any arithmetic
        raise ValueError(f"amount {text!r} is more than a sale can carry")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"amount {text!r} has more than {exponent} decimals")
    try:
        return check_amount(int(minor))
    except ValueError:
        raise ValueError(f"amount {text!r} is more than a sale can carry") from None


def _usage(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An option's value checked as it is parsed: a ``ValueError`` is a usage error (one
    line, exit 2) before anything is opened or sent. possim's options are typed here."""

    def callback(value: Any) -> Any:
        if value is None:
            return value
        try:
            return check(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return callback


def _money(minor: int | None) -> str:
    return "" if minor is None else f"{minor // 100}.{minor % 100:02d}"


@app.command()
def sale(
    port: Annotated[str, typer.Option(help="The terminal: /dev/pts/N, socket://HOST:PORT, …")],
    tid: Annotated[str, typer.Option(help="The terminal's TID.", callback=_usage(check_tid))],
    amount: Annotated[
        int,
        typer.Option(
            help="Amount in major units, e.g. 100.00.",
            parser=str,
            callback=_usage(parse_amount),
            metavar="AMOUNT",
        ),
    ],
    card: Annotated[str, typer.Option(help="debit, credit, international or qr.")] = "credit",
    entry: Annotated[str, typer.Option(help="chip, contactless, magstripe or qr.")] = "chip",
    currency: Annotated[int, typer.Option(help="ISO 4217 numeric currency.")] = 156,
    baud: Annotated[int, typer.Option(help="Line speed.")] = 9600,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Act as the cash register: send a 0200 sale and print the approval and the fee."""
    from protocols.link import Link  # noqa: PLC0415
    from protocols.messages import EntryMode, ResponseCode  # noqa: PLC0415
    from protocols.session import HostSession  # noqa: PLC0415

    try:
        minor = amount
        card_type = CARDS[card.lower()]
        entry_mode = EntryMode[{"magstripe": "MAGSTRIPE"}.get(entry.lower(), entry.upper())]
    except KeyError as exc:
        raise fail(f"unknown value {exc}", 2) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if fmt not in ("text", "json"):
        raise fail("--format must be text or json", 2)
    try:
        with Link(port, baud) as link:
            outcome = HostSession(link, tid, bytes(16)).sale(minor, card_type, entry_mode, currency)
    except ProtocolError as exc:
        raise fail(f"{port}: {exc}") from None
    meaning = ResponseCode(outcome.code).meaning if outcome.code in set(ResponseCode) else "?"
    if fmt == "json":
        _ready(
            json.dumps(
                {
                    "code": outcome.code,
                    "meaning": meaning,
                    "amount": outcome.amount,
                    "fee": outcome.fee,
                    "net": outcome.net,
                    "approval": outcome.approval,
                    "table_version": outcome.table_version,
                }
            )
        )
    elif outcome.approved:
        _ready(
            f"approved {outcome.approval}  amount {_money(outcome.amount)}  fee "
            f"{_money(outcome.fee)}  net {_money(outcome.net)}  table v{outcome.table_version}"
        )
    else:
        _ready(f"declined {outcome.code}: {meaning}")
    if not outcome.approved:
        raise typer.Exit(1)


# -- tamper ------------------------------------------------------------------------------------


@app.command()
def tamper(
    state_dir: Annotated[Path, typer.Option(help="The terminal's state directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Trip a terminal's tamper switch, running or not (its next request sees it).

    A tampered terminal refuses fee-table downloads and key changes with 66 until it is
    replaced; sales, sign-on (which reports the tamper) and health polls still answer.
    """
    import sqlite3  # noqa: PLC0415

    from terminal_sim.state import StateStore  # noqa: PLC0415

    store = StateStore(state_dir)
    try:
        before = store.tampered_at()
        with store.transaction() as conn:
            at = store.trip_tamper(conn, int(datetime.now(UTC).timestamp()))
    except (OSError, sqlite3.Error) as exc:
        raise fail(f"{state_dir}: {exc}") from None
    finally:
        store.close()
    if as_json:
        _ready(json.dumps({"tampered_at": at.isoformat(), "already": before is not None}))
    elif before is not None:
        _ready(f"tamper switch already tripped at {at.isoformat()}")
    else:
        _ready(
            f"tamper switch tripped at {at.isoformat()}: fee-table downloads and key "
            "changes are refused with 66 until the terminal is replaced"
        )


# -- cable -------------------------------------------------------------------------------------


@app.command("cable")
def cable(
    seconds: Annotated[
        float, typer.Option(help="Keep the cable up this long (0 = until Ctrl-C).")
    ] = 0.0,
) -> None:
    """Open a virtual null-modem cable: two pty paths wired to each other.

    Prints `READY <end A> <end B>`; connect any serial tool to either end.
    """
    from protocols.pty import PtyPair  # noqa: PLC0415

    stop = _stop_on_signals()
    with PtyPair() as pair:
        _ready(f"READY {pair.a} {pair.b}")
        stop.wait(seconds or None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
