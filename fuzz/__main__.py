"""`make fuzz`: every target for a bounded time; executions per target; non-zero on a find.

``python -m fuzz [--seconds S] [--write-seeds] [TARGET ...]``

With atheris installed each target runs under libFuzzer in its own process
(``fuzz.atheris_main``), its corpus being ``fuzz/corpus/<target>/`` (read) and a scratch
directory (written); a find is saved under ``fuzz/finds/`` and the run fails. Without
atheris (another Python), hypothesis generates and shrinks inputs for the same time.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz.targets import TARGETS

ROOT = Path(__file__).parent
CORPUS = ROOT / "corpus"
FINDS = ROOT / "finds"


def write_seeds() -> None:
    """(Re)write every target's seed inputs into its corpus directory."""
    for name, target in TARGETS.items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for label, data in target.seeds().items():
            (folder / f"seed-{label}").write_bytes(data)


def with_atheris(name: str, seconds: int) -> tuple[bool, int, str]:
    """Run one target under libFuzzer; (clean, executions, last lines on failure)."""
    FINDS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        args = [
            sys.executable, "-m", "fuzz.atheris_main", name,
            f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
            "-max_len=4096", "-print_final_stats=1",
            f"-artifact_prefix={FINDS}/{name}-", scratch, str(CORPUS / name),
        ]  # fmt: skip
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    runs += re.findall(r"Done (\d+) runs", done.stderr)
    count = int(runs[-1]) if runs else 0
    tail = "\n".join(done.stderr.strip().splitlines()[-25:])
    return done.returncode == 0, count, tail


def with_hypothesis(name: str, seconds: int) -> tuple[bool, int, str]:
    """The same target driven by hypothesis for ``seconds`` (where atheris is missing)."""
    from hypothesis import HealthCheck, given, settings  # noqa: PLC0415
    from hypothesis import strategies as st  # noqa: PLC0415

    check = TARGETS[name].check
    seeds = [p.read_bytes() for p in sorted((CORPUS / name).glob("*"))]
    strategy = st.binary(max_size=4096)
    if seeds:
        strategy = st.one_of(strategy, st.sampled_from(seeds), _mutated(seeds))
    count = 0

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        check(data)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            one()
        except Exception as exc:  # the shrunk failing input is in the report
            return False, count, f"{type(exc).__name__}: {exc}"
    return True, count, ""


def _mutated(seeds: list[bytes]):  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st  # noqa: PLC0415

    @st.composite
    def mutate(draw):  # type: ignore[no-untyped-def]
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 8))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] = draw(st.integers(0, 255))
        return bytes(data)

    return mutate()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"default: all ({', '.join(TARGETS)})")
    parser.add_argument("--seconds", type=int, default=30, help="per target (default 30)")
    parser.add_argument("--write-seeds", action="store_true", help="rewrite the seed inputs")
    parser.add_argument("--hypothesis", action="store_true", help="use hypothesis, not atheris")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if args.write_seeds:
        write_seeds()
    use_atheris = not args.hypothesis and importlib.util.find_spec("atheris") is not None
    engine = "atheris (libFuzzer)" if use_atheris else "hypothesis"
    print(f"# fuzzing {len(args.targets or TARGETS)} targets, {args.seconds} s each, {engine}")
    failed = 0
    for name in args.targets or list(TARGETS):
        start = time.perf_counter()
        runner = with_atheris if use_atheris else with_hypothesis
        clean, count, tail = runner(name, args.seconds)
        wall = time.perf_counter() - start
        verdict = "clean" if clean else "FOUND A BUG"
        rate = count / max(wall, 1e-9)
        print(f"{name:<13} {count:>10,} executions in {wall:5.1f} s ({rate:>8,.0f}/s)  "
              f"{verdict}  — {TARGETS[name].doc}")  # fmt: skip
        if not clean:
            failed += 1
            print("    " + tail.replace("\n", "\n    "))
    print(f"{len(args.targets or TARGETS) - failed} clean, {failed} with finds")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
