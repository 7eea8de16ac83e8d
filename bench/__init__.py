"""sparkvision benchmarks: `make bench` (all) or `make bench BENCH="ingest"` (some).

Each benchmark is a module ``bench/<name>.py`` with ``run(argv: list[str]) -> dict`` that measures
both sides of its comparison in one run and calls ``bench.common.record``.
"""
