"""`make bench`: every benchmark, one after the other, in one run."""

from __future__ import annotations

import importlib
import platform
import sys
import time

MODULES = [
    "bench.cli_startup",
    "bench.codec",
    "bench.link_throughput",
    "bench.possim_fleet",
    "bench.fleet_push",
    "bench.line_push",
    "bench.health_keys",
    "bench.rollout_fleet",
    "bench.key_rotation",
    "bench.fleet_scale",
    "bench.console_load",
    "bench.notices",
    "bench.notices_loop",
]


def main(argv: list[str]) -> int:
    selected = [m for m in MODULES if not argv or any(a in m for a in argv)]
    print(f"# posfleet benchmarks — Python {platform.python_version()}, {platform.machine()}")
    failed = 0
    for name in selected:
        start = time.perf_counter()
        try:
            module = importlib.import_module(name)
            lines = module.run()
        except Exception as exc:  # report and go on: one broken bench must not hide the rest
            print(f"\n{name}: FAILED: {exc!r}")
            failed += 1
            continue
        print()
        print("\n".join(lines))
        print(f"({name}: {time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
