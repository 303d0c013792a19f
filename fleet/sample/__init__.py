"""The seeded sample fleet for the demo, the benchmarks and the tests."""
