"""Issue 13, "Robustness", possim's half: bad usage exits 2 (its options are typed where
they are declared, checked before anything is opened or sent)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from terminal_sim.cli import app, parse_amount

runner = CliRunner()


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--tid", "WRONG", "must be 8 printable ASCII characters"),
        ("--tid", "TERM00011", "must be 8 printable ASCII characters"),
        ("--amount", "1E20000000", "more than a sale can carry"),
        ("--amount", "99999999999999", "more than a sale can carry"),
        ("--amount", "-1", "positive"),
        ("--amount", "1.234", "decimals"),
        ("--amount", "NaN", "positive"),
        ("--amount", "ten", "not a number"),
    ],
)
def test_bad_usage_exits_2_everywhere_in_possim(option: str, value: str, words: str) -> None:
    args = {"--port": "socket://127.0.0.1:9", "--tid": "TERM0001", "--amount": "12.50"}
    args[option] = value
    res = runner.invoke(app, ["sale", *(x for kv in args.items() for x in kv)])
    assert res.exit_code == 2, res.output
    flat = " ".join(re.sub("[│╭╮╰╯─]", " ", res.output).split())  # the usage box wraps
    assert words in flat, flat
    assert "Traceback" not in res.output and "Connection refused" not in res.output


def test_a_good_amount_is_parsed_exactly() -> None:
    assert parse_amount("12.50") == 1250 and parse_amount("9999999999.99") == 999_999_999_999
