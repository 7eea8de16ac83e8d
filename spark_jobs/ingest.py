"""Ingest a raw image drop into curated Parquet (OpenCV decode, quarantine of bad files).

    spark-submit spark_jobs/ingest.py --root file:///data --dataset fashion_mnist --version 20261125 \
        [--image-shape 28x28x1] [--max-rejected-share 0.05] [--max-pixels 50000000]

Reads  <root>/raw/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/curated/<dataset>/<version>/{images.parquet,rejects.parquet,labels.json,manifest.json,_SUCCESS}.
"""

from __future__ import annotations

import sys

from sparkvision.cli import dataset_parser, parse_or_exit, spark_session
from sparkvision.images import DEFAULT_MAX_PIXELS
from sparkvision.ingest import IngestParams, run_ingest
from sparkvision.schema import ImageSpec


def main(argv: list[str] | None = None) -> int:
    parser = dataset_parser(__doc__)
    parser.add_argument("--image-shape", default=str(ImageSpec()), help="HEIGHTxWIDTHxCHANNELS")
    parser.add_argument("--max-rejected-share", type=float, default=0.05)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    args, paths = parse_or_exit(parser, argv)
    try:
        params = IngestParams(ImageSpec.parse(args.image_shape), args.max_rejected_share, args.max_pixels)
    except ValueError as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-ingest-{paths.dataset}-{paths.version}")
    try:
        manifest = run_ingest(spark, paths, params)
    finally:
        spark.stop()
    print(f"ingested {manifest['accepted']} images, rejected {manifest['rejected']} -> {paths.curated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
