"""Benchmarks (`python -m bench.run_all`, `make bench`) and the paper-comparison driver
(`python -m bench.paper_run`). Speed is measured here, never asserted in tests."""
