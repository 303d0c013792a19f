"""The seeded sample fleet for the demo, the benchmarks and the tests: the catalog,
merchants and terminals files (:func:`write_sample`) and a ``possim fleet`` manifest of
deployed terminals (:func:`write_possim_manifest`). Nothing of ``fleet`` imports it."""

from __future__ import annotations

from fleet.sample.seed import SampleFiles, write_possim_manifest, write_sample

__all__ = ["SampleFiles", "write_possim_manifest", "write_sample"]
