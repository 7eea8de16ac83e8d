"""Run benchmarks: `python -m bench` (all, in order) or `python -m bench NAME [NAME ...]`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.common import heavy

ORDER = ["demo_stages", "ingest", "training_input", "batch_inference", "orchestration_overhead"]


def available() -> list[str]:
    found = {p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in {"__init__", "__main__", "common"}}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = set(names) - set(available())
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; available: {available()}", file=sys.stderr)
        return 2
    for name in names:
        print(f"[bench] running {name}")
        with heavy():
            importlib.import_module(f"bench.{name}").run([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
