"""Every fuzz target runs: its corpus (seeds and past finds) and a few hundred mutations
of it go through its check without an untyped exception. (The fuzzing itself is
`make fuzz`, not part of `make test`.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz.__main__ import CORPUS, main
from fuzz.targets import TARGETS

MUTATIONS = 200


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        pos = rng.randrange(len(out) + 1)
        if roll < 0.4 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif roll < 0.6:
            del out[pos : pos + rng.randint(1, 16)]
        elif roll < 0.8:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            out[pos:pos] = out[rng.randrange(len(out) + 1) :][: rng.randint(1, 32)]
    return bytes(out)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_runs_on_its_corpus_and_mutations(name: str) -> None:
    target = TARGETS[name]
    folder = CORPUS / name
    corpus = [p.read_bytes() for p in sorted(folder.iterdir())]
    assert corpus, f"no corpus in {folder}"
    seeds = target.seeds()
    assert {f"seed-{label}" for label in seeds} <= {p.name for p in folder.iterdir()}, (
        "the committed seeds are stale: python -m fuzz --write-seeds"
    )
    rng = random.Random(name)
    for data in [*corpus, b"", b"\x00", bytes(range(256))]:
        target.check(data)
    for _ in range(MUTATIONS):
        target.check(_mutate(rng, rng.choice(corpus)))


KNOWN = Path(CORPUS).parent / "known"
FIXED_FINDS = (
    "fee_toml/find-decimal-overflow",  # decimal.Overflow: fleet.core.money.parse_decimal
    "policy/find-decimal-overflow",
    "records_json/find-top-level-scalar",  # a scalar top level: fleet.core.files.load_json
)


def test_no_known_find_is_left_unfixed() -> None:
    """fuzz/known holds finds still failing a parser (none now): each is fixed, and kept
    in the corpus as a regression input."""
    assert sorted(p.name for p in KNOWN.iterdir()) == ["README.md"]


@pytest.mark.parametrize("find", FIXED_FINDS)
def test_fixed_finds_are_typed_errors(find: str) -> None:
    target, _, _ = find.partition("/")
    TARGETS[target].check((CORPUS / find).read_bytes())  # raised before the fix


def test_a_check_lets_a_bug_out_and_the_runner_reports_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(data: bytes) -> None:
        if len(data) > 3:
            raise KeyError("not a typed error")

    monkeypatch.setitem(TARGETS, "codec", TARGETS["codec"].__class__("codec", broken,
                        TARGETS["codec"].seeds, "broken on purpose"))  # fmt: skip
    assert main(["--hypothesis", "--seconds", "1", "codec"]) == 1
    out = capsys.readouterr().out
    assert "FOUND A BUG" in out and "KeyError" in out and "executions" in out


def test_unknown_target_is_bad_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-target"])
    assert info.value.code == 2


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for p in Path(CORPUS).rglob("*") if p.is_file())
    assert total < 256 * 1024


def test_the_host_seeds_reach_the_end_of_every_flow() -> None:
    """The host target starts from answers that take each flow (health, key change,
    confirmation, rotation, push...) to its end, so fuzzing starts deep in them."""
    from fuzz import targets as t  # noqa: PLC0415

    seeds = t.TARGETS["host"].seeds()
    assert {label for label, _ in t._HOST_FLOWS} <= set(seeds)
    for label, data in seeds.items():
        _, make = t._HOST_FLOWS[data[0]]
        flow = make(t._host_conversation())
        next(flow)
        answers = t._answers_of(data[1:])
        with pytest.raises(StopIteration) as done:
            for answer in answers:
                flow.send(answer)
        assert done.value.value is not None, label
