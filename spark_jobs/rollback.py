"""Point a model's LATEST back at an earlier published version (no version is changed or deleted).

spark-submit spark_jobs/rollback.py --root file:///data --model fashion_cnn --to 3
"""

from __future__ import annotations

import argparse
import logging
import sys

from sparkvision.config.cli import LOG_FORMAT
from sparkvision.platform.layout import InvalidNameError, ModelPaths
from sparkvision.platform.settings import storage_root
from sparkvision.platform.spark import spark_session
from sparkvision.platform.storage import HadoopFS
from sparkvision.registry.publish import rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=storage_root(), help="storage root URI (default: SPARKVISION_ROOT)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--to", type=int, required=True, metavar="VERSION")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    try:
        model_paths = ModelPaths(args.root, args.model)
        model_paths.version(args.to)
    except (InvalidNameError, ValueError) as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-rollback-{args.model}")
    try:
        rollback(HadoopFS(spark), model_paths, args.to)
    except ValueError as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(f"LATEST of {args.model} -> version {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
