"""One target under atheris (libFuzzer), in a process of its own:
``python -m fuzz.atheris_main TARGET [libFuzzer options and corpus dirs]``.

Our modules are imported under atheris' instrumentation so that coverage guides it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["protocols", "terminal_sim", "fleet", "fuzz"]):
    from fuzz.targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
