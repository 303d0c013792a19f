"""The fee, push, rollout, swap and notice commands on the one CLI framework: their errors
go through the root's one mapping (rejected rows printed, the schema hint), a command's
own hints are declared on it, and a bad key or a sheet that cannot be provisioned is
refused before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.cli.common import hints
from fleet.core.errors import ConflictError, InputError
from fleet.core.models import AUDIT, NOTICES, SWAPS, TERMINALS

runner = CliRunner()


class _LateError(ConflictError):
    """A domain error a command declares a hint for (by name)."""


class _LaterError(_LateError):
    """A subclass: its base's hint applies."""


def _hinted_app() -> typer.Typer:
    demo = typer.Typer()

    @demo.command()
    @hints(_LateError="use --late")
    def run(kind: str) -> None:
        """Raise what ``kind`` names."""
        raise {"late": _LateError, "later": _LaterError, "input": InputError}[kind](
            "too late", where="t.toml"
        )

    @demo.command()
    def other() -> None:
        """Another command, so that ``run`` stays a sub-command."""

    return demo


@pytest.mark.parametrize(
    ("kind", "code", "line"),
    [
        ("late", 1, "error: t.toml: too late (use --late)\n"),
        ("later", 1, "error: t.toml: too late (use --late)\n"),
        ("input", 2, None),  # not named: the root's mapping, no hint
    ],
)
def test_a_hint_is_declared_on_the_command(kind: str, code: int, line: str | None) -> None:
    demo = _hinted_app()
    res = runner.invoke(demo, ["run", kind])
    if line is None:
        assert isinstance(res.exception, InputError) and "(use" not in res.stderr
        return
    assert res.exit_code == code and res.stderr == line


def test_hints_keep_the_command_signature() -> None:
    res = runner.invoke(_hinted_app(), ["run", "--help"])
    assert (
        res.exit_code == 0 and "run [OPTIONS] {kind}" in res.stdout and "Raise what" in res.stdout
    )


def test_the_override_hint_of_fees_publish(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    first, soon = tmp_path / "first.toml", tmp_path / "soon.toml"
    table = 'name = "x"\ncurrency = "CNY"\neffective = {}T00:00:00+08:00\n[[rules]]\ncard = "any"\n'
    first.write_text(table.format("2000-01-01") + 'rate = "0.10%"\n', encoding="utf-8")
    soon.write_text(table.format("2000-01-02") + 'rate = "5.00%"\n', encoding="utf-8")
    assert runner.invoke(app, ["--db", db_url, "fees", "publish", str(first)]).exit_code == 0
    res = runner.invoke(app, ["--db", db_url, "fees", "publish", str(soon)])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: {soon}: raises the fee of ")
    assert res.stderr.endswith(
        "publishing it needs an override reason (audited) (use --override-notice --reason TEXT)\n"
    )
    assert res.stderr.count("\n") == 1


def snapshot(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(select(TERMINALS).order_by(TERMINALS.c.serial))],
            *(
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (SWAPS, NOTICES, AUDIT)
            ),
        )


def _serials(engine: Engine, status: str, n: int) -> list[str]:
    query = select(TERMINALS.c.serial).where(TERMINALS.c.status == status)
    if status == "deployed":
        query = query.where(TERMINALS.c.tid.is_not(None))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(TERMINALS.c.serial).limit(n)).scalars())


def test_swaps_change_nothing_before_a_bad_key_or_sheet(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    old, other = _serials(loaded, "deployed", 2)
    new, spare = _serials(loaded, "in_stock", 2)
    base = ["--db", db_url, "--actor", "cli"]
    before = snapshot(loaded)
    # The key is read before the swap: a missing key file leaves the swap undone.
    res = runner.invoke(app, [*base, "swap", old, new, "--reason", "worn", "--port",
                              "/dev/nonexistent", "--key-file", str(tmp_path / "none.key")])  # fmt: skip
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {tmp_path / 'none.key'}: ")
    assert snapshot(loaded) == before
    # A day sheet row with a port, and no key to provision with: a bad row, nothing done.
    sheet = tmp_path / "day.csv"
    sheet.write_text(
        "old_serial,new_serial,reason,engineer,port\n"
        f"{old},{new},worn,Li,\n{other},{spare},worn,Li,/dev/ttyUSB0\n",
        encoding="utf-8",
    )
    res = runner.invoke(app, [*base, "swap", "sheet", str(sheet)])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        f"{sheet}:3: port: provisioning on a port needs the fleet master key, and none was given",
        f"error: {sheet}: 1 error, nothing written",
    ]
    assert snapshot(loaded) == before
    # Every bad row of a rejected sheet is printed, then the one error line.
    sheet.write_text(
        f"old_serial,new_serial,reason\nPS99999999,{new},worn\n{other},,worn\n", encoding="utf-8"
    )
    res = runner.invoke(app, [*base, "swap", "sheet", str(sheet)])
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert f"{sheet}:2: unknown terminal PS99999999" in lines
    assert any(x.startswith(f"{sheet}:3: new_serial: ") for x in lines)
    assert lines[-1] == f"error: {sheet}: 2 errors, nothing written"
    assert snapshot(loaded) == before
    # A file that cannot be read is named without a line.
    res = runner.invoke(app, [*base, "swap", "sheet", str(tmp_path / "none.csv")])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[0] == f"{tmp_path / 'none.csv'}: No such file or directory"


@pytest.mark.parametrize(
    "args",
    [
        ["fees", "list"],
        ["swap", "list"],
        ["rollout", "status", "1"],
        ["notices", "verify", "AAAAA-BBBBB"],
        ["notices", "list"],
    ],
)
def test_a_database_without_the_schema_says_what_to_run(tmp_path: Path, args: list[str]) -> None:
    res = runner.invoke(app, ["--db", str(tmp_path / "new.db"), *args])
    assert res.exit_code == 1
    assert res.stderr.endswith(": has no posfleet schema: run `posfleet db upgrade`\n")
