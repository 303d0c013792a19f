"""Issue 13, "Security": one test per class of hostile input, each named after its class,
each failing before the class was fixed at its root (on SQLite and PostgreSQL where a
database is involved).

- links are an allow-list (import, update, use; ``spy://`` never truncates a file);
- ``--out`` never overwrites the database, nor an existing file without ``--force``, and
  writes atomically;
- CSV formula injection: text cells escaped in posfleet's one CSV writer;
- terminal escape injection: control and bidi characters never reach a screen raw.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import FEE_TABLES, MERCHANTS, MESSAGES, NOTICES, SWAPS, TERMINALS, now
from fleet.core.policy import NoticePolicy, Policy
from fleet.core.records import RejectedFileError
from fleet.device import SyncError, sync
from fleet.inventory import import_terminals, update_terminal
from fleet.notices.compose import compose
from fleet.swaps import swap
from protocols.errors import LinkError
from protocols.link import Link
from tests.fleet.test_wrong_results import _china_pair

runner = CliRunner()
OPEN = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0)

HOSTILE_LINKS = (
    "spy:///dev/pts/0?file={victim}",
    "hwgrep://.*",
    "alt:///dev/pts/0?class=PosixPollSerial",
    "loop://",
    "/dev/watchdog",
    "/dev/pts/../../{victim}",
    "{victim}",
    "socket://127.0.0.1:9000?file=x",
)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    return victim


def _deployed(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                TERMINALS.select()
                .with_only_columns(TERMINALS.c.serial)
                .where(TERMINALS.c.status == "deployed")
                .order_by(TERMINALS.c.serial)
                .limit(1)
            ).scalar_one()
        )


# -- links: an allow-list, on import, update and use ---------------------------------------


@pytest.mark.parametrize("link", HOSTILE_LINKS)
def test_links_are_an_allow_list_in_protocols(tmp_path: Path, link: str) -> None:
    victim = _victim(tmp_path)
    url = link.format(victim=victim)
    if url == "loop://":
        Link(url).close()  # the in-memory loop-back stays allowed in protocols (tests)
        return
    with pytest.raises(LinkError, match=r"not an allowed link|needs host:port|not allowed"):
        Link(url, 9600)
    assert victim.read_text(encoding="utf-8") == "keep me\n"


def test_links_are_an_allow_list_on_import_update_and_use(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    victim = _victim(tmp_path)
    serial = _deployed(loaded)
    # import: every hostile link is a bad row, nothing written
    rows = io.StringIO()
    export = runner.invoke(app, ["--db", db_url, "terminals", "export"])
    rows.write(export.stdout)
    lines = rows.getvalue().splitlines()
    header = lines[0].split(",")
    reader = list(csv.reader(lines[1:]))
    link_at = header.index("link")
    bad = tmp_path / "terminals.csv"
    with bad.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row, link in zip(reader, HOSTILE_LINKS, strict=False):
            row[link_at] = link.format(victim=victim)
            writer.writerow(row)
    with pytest.raises(RejectedFileError) as rejected:
        import_terminals(loaded, bad, actor="test")
    assert len(rejected.value.errors) == len(HOSTILE_LINKS)
    assert all(e.column == "link" for e in rejected.value.errors)
    # update: the same rule
    for link in HOSTILE_LINKS:
        with pytest.raises(RejectedFileError):
            update_terminal(
                loaded, serial, {"link": link.format(victim=victim)}, actor="t", reason="x"
            )
    # use: a link that got into the database some other way is refused before it is opened
    with loaded.begin() as conn:
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == serial)
            .values(link=f"spy:///dev/pts/0?file={victim}")
        )
    with pytest.raises(SyncError, match="not an allowed link"):
        sync(loaded, actor="t", serial=serial, t2=0.2)
    res = runner.invoke(app, ["--db", db_url, "sync", "--terminal", serial])
    assert res.exit_code != 0 and "not an allowed link" in res.stderr
    assert victim.read_text(encoding="utf-8") == "keep me\n"


# -- --out: never the database, an existing file only with --force, atomic ----------------


def test_out_never_overwrites_the_database(tmp_path: Path) -> None:
    # a SQLite file (a server database has no file to overwrite)
    path = tmp_path / "fleet.db"
    db_url = str(path)
    assert runner.invoke(app, ["--db", db_url, "db", "upgrade"]).exit_code == 0
    before = path.read_bytes()
    for target in (path, Path(f"{path}-wal"), tmp_path / "." / path.name):
        for args in (
            ["report", "fleet", "--format", "csv", "--out", str(target), "--force"],
            ["audit", "list", "--format", "csv", "--out", str(target), "--force"],
            ["terminals", "export", "--out", str(target), "--force"],
            ["replacements", "--format", "json", "--out", str(target), "--force"],
            ["policy", "init", str(target), "--force"],
            ["keys", "new", str(target)],  # never overwrites, even with --force
        ):
            res = runner.invoke(app, ["--db", db_url, *args])
            assert res.exit_code == 2, (args, res.output)
            assert "is the posfleet database" in res.stderr and res.stderr.count("\n") == 1
    assert path.read_bytes()[:100] == before[:100]
    # the database still works: every command after it too
    res = runner.invoke(app, ["--db", db_url, "terminals", "list", "--limit", "1"])
    assert res.exit_code == 0


def test_out_refuses_an_existing_file_without_force_and_writes_atomically(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "fleet.csv"
    target.write_text("an earlier report\n", encoding="utf-8")
    res = runner.invoke(app, ["--db", db_url, "report", "fleet", "-f", "csv", "-o", str(target)])
    assert res.exit_code == 2 and "exists: pass --force" in res.stderr
    assert target.read_text(encoding="utf-8") == "an earlier report\n"
    res = runner.invoke(
        app, ["--db", db_url, "report", "fleet", "-f", "csv", "-o", str(target), "--force"]
    )
    assert res.exit_code == 0 and target.read_text(encoding="utf-8").startswith("model,")
    res = runner.invoke(app, ["--db", db_url, "report", "fleet", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "is a directory" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- CSV formula injection -------------------------------------------------------------------


FORMULAS = ("=HYPERLINK(\"http://x\";\"Call\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "\tTab", "\rCR")  # fmt: skip


def test_csv_formula_injection_is_escaped_in_every_csv(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    with loaded.begin() as conn:
        ids = [r.id for r in conn.execute(MERCHANTS.select().order_by(MERCHANTS.c.id).limit(6))]
        for merchant_id, name in zip(ids, FORMULAS, strict=True):
            conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(name=name))
    serial = _deployed(loaded)
    update_terminal(loaded, serial, {"fault_count": "1"}, actor="=cmd()", reason="@evil")
    base = ["--db", db_url]
    outputs = {
        "merchants": runner.invoke(app, [*base, "merchants", "list", "-f", "csv"]).stdout,
        "audit": runner.invoke(app, [*base, "audit", "list", "-f", "csv"]).stdout,
        "report": runner.invoke(app, [*base, "report", "replacements", "-f", "csv"]).stdout,
    }
    for what, text in outputs.items():
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                assert not cell.startswith(("=", "@", "\t", "\r")), (what, cell)
                if cell.startswith(("+", "-")):
                    float(cell)  # only plain numbers keep a leading sign
    merchants = list(csv.DictReader(io.StringIO(outputs["merchants"])))
    names = {m["name"] for m in merchants}
    assert {"'" + f for f in FORMULAS} <= names
    assert any(m["phone"].startswith("+") for m in merchants)  # E.164: a number, kept
    audit = list(csv.DictReader(io.StringIO(outputs["audit"])))
    assert any(a["actor"] == "'=cmd()" and a["reason"] == "'@evil" for a in audit)


# -- terminal escape injection --------------------------------------------------------------

ESCAPES = "Bakery\x1b]0;owned\x07\x1b[2J\u202eeman\u202c\x9b31m[link=http://x]y[/link]"


def test_terminal_escape_injection_is_shown_not_obeyed(loaded: Engine, db_url: str) -> None:
    with loaded.begin() as conn:
        merchant = conn.execute(MERCHANTS.select().limit(1)).first()
        assert merchant is not None
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant.id).values(name=ESCAPES))
    base = ["--db", db_url]
    shown = [
        runner.invoke(app, [*base, "merchants", "show", merchant.id]),
        runner.invoke(app, [*base, "merchants", "list", "--limit", "50"]),
        runner.invoke(app, [*base, "merchants", "show", merchant.id, "-f", "json"]),
    ]
    for res in shown:
        assert res.exit_code == 0, res.output
        for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert raw not in res.stdout
    assert "\\u001b" in shown[0].stdout and "\\u202e" in shown[0].stdout  # shown, visibly
    assert (
        "\\u001b]0;owned\\u0007\\u001b[2J\\u202eeman\\u202c\\u009b31m[link=http://x]"
        in shown[2].stdout
    )


def test_terminal_escape_injection_in_one_line_messages(loaded: Engine, db_url: str) -> None:
    res = runner.invoke(app, ["--db", db_url, "merchants", "show", "M\x1b[2J\u202e"])
    assert res.exit_code == 2
    assert "\x1b" not in res.stderr and "\u202e" not in res.stderr
    assert "\\u001b[2J" in res.stderr


# -- operator text reaching merchants --------------------------------------------------------


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (SWAPS, NOTICES, MESSAGES, FEE_TABLES)
        )


def test_operator_text_reaching_merchants_is_refused_at_the_command(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    old, new = _china_pair(loaded)
    base = ["--db", db_url]
    before = _counts(loaded)
    # (the operator's --reason is a note, never sent: tests/fleet/notices/test_reasons.py)
    for args in (
        ["swap", "do", old, new, "--reason-code", "wear", "--engineer", "Li http://x.example"],
        ["swap", "plan", old, "--on", "2099-01-05", "--engineer", "reply with your PIN now"],
    ):
        res = runner.invoke(app, [*base, *args])
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.count("\n") == 1 and "a notice to a merchant never" in res.stderr
    assert _counts(loaded) == before  # nothing written


def test_operator_text_reaching_merchants_every_composed_message_is_checked(
    loaded: Engine,
) -> None:
    old, new = _china_pair(loaded)
    with loaded.begin() as conn:
        merchant = conn.execute(
            select(TERMINALS.c.merchant_id).where(TERMINALS.c.serial == old)
        ).scalar_one()
        conn.execute(  # a name from an import: it reaches the message's greeting
            update(MERCHANTS)
            .where(MERCHANTS.c.id == merchant)
            .values(name="Bakery, order at www.evil-bakery.com")
        )
    swap(loaded, old, new, reason="worn", actor="t", policy=Policy())
    compose(loaded, OPEN, at=now() + timedelta(days=30))
    with loaded.connect() as conn:
        notices = conn.execute(
            select(NOTICES.c.status, NOTICES.c.note).where(NOTICES.c.merchant_id == merchant)
        ).all()
        stored = conn.execute(
            select(func.count()).select_from(MESSAGES).where(MESSAGES.c.merchant_id == merchant)
        ).scalar_one()
    assert stored == 0
    assert notices and all(n.status == "failed" for n in notices)
    assert all("contains a URL: 'www.evil-bakery.com'" in n.note for n in notices), notices


def test_terminal_escape_injection_in_notices_verify(loaded: Engine, db_url: str) -> None:
    old, new = _china_pair(loaded)
    with loaded.begin() as conn:
        merchant = conn.execute(
            select(TERMINALS.c.merchant_id).where(TERMINALS.c.serial == old)
        ).scalar_one()
        name = ESCAPES.partition("[link")[0]  # (a name with a URL is never sent: see above)
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant).values(name=name))
    swap(loaded, old, new, reason="worn", actor="t", policy=Policy())
    compose(loaded, OPEN, at=now() + timedelta(minutes=1))
    with loaded.connect() as conn:
        code = (
            conn.execute(select(MESSAGES.c.code).where(MESSAGES.c.merchant_id == merchant))
            .scalars()
            .first()
        )
    assert code is not None
    res = runner.invoke(app, ["--db", db_url, "notices", "verify", code])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("GENUINE")
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in res.stdout
    assert "\\u001b]0;owned" in res.stdout


def test_csv_formula_injection_one_csv_writer() -> None:
    """posfleet writes CSV in one place (fleet.core.escaping.CsvWriter): no other module of
    the fleet builds a writer of its own."""
    root = Path(__file__).resolve().parents[2] / "fleet"
    others = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"csv\.(?:writer|DictWriter)\(", path.read_text(encoding="utf-8"))
        and path != root / "core" / "escaping.py"
    ]
    assert others == []
