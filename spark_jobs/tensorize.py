"""Split curated images deterministically and write training-ready tensor shards.

    spark-submit spark_jobs/tensorize.py --root file:///data --dataset fashion_mnist --version 20261125 \
        [--validation-share 0.1] [--test-share 0.1]

Reads  <root>/curated/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/tensors/<dataset>/<version>/{train,validation,test}/, stats.json and _SUCCESS.
"""

from __future__ import annotations

import sys

from sparkvision.cli import dataset_parser, parse_or_exit, spark_session
from sparkvision.tensorize import SplitParams, run_tensorize


def main(argv: list[str] | None = None) -> int:
    parser = dataset_parser(__doc__)
    parser.add_argument("--validation-share", type=float, default=SplitParams.validation_share)
    parser.add_argument("--test-share", type=float, default=SplitParams.test_share)
    args, paths = parse_or_exit(parser, argv)
    try:
        params = SplitParams(args.validation_share, args.test_share)
    except ValueError as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-tensorize-{paths.dataset}-{paths.version}")
    try:
        stats = run_tensorize(spark, paths, params)
    finally:
        spark.stop()
    print(f"tensorized {stats['counts']} -> {paths.tensors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
