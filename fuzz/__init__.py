"""Coverage-guided fuzzing of every parser that takes outside bytes or text (`make fuzz`).

:mod:`fuzz.targets` names each target (a ``check(data: bytes)`` that lets only the parser's
typed error out) and its seed inputs; :mod:`fuzz.fleet_paths` is the one place that knows
where the fleet's parsers live; ``python -m fuzz`` runs each target for a bounded time
under atheris (libFuzzer) in a process of its own, or under hypothesis where atheris is
not installed, and prints the executions per target. ``fuzz/corpus/<target>/`` holds the
seeds and the minimized inputs of past finds (regression inputs, replayed by the tests).
"""
