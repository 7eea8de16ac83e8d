"""Ingest a raw image drop into curated Parquet (OpenCV decode, quarantine of bad files).

    spark-submit spark_jobs/ingest.py --root file:///data --dataset fashion_mnist --version 20261125 \\
        [--image-shape 28x28x1] [--resize-policy stretch|pad|crop] [--max-rejected-share 0.05] \\
        [--max-pixels 50000000] [--max-file-bytes 268435456] [--drop-duplicates] \\
        [--drift-threshold 0.1] [--alpha-background 0] [--target-file-mb 128]

Reads  <root>/raw/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/curated/<dataset>/<version>/{images.parquet,rejects.parquet,labels.json,manifest.json,_SUCCESS}.
Exit status 1 with the reason on stderr when the rejected share passes --max-rejected-share
(rejects.parquet and manifest.json are still written, without _SUCCESS). See docs/ingest.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sparkvision.cli import dataset_parser, parse_or_exit, spark_session
from sparkvision.images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, RESIZE_POLICIES
from sparkvision.ingest import DEFAULT_TARGET_FILE_MB, IngestParams, TooManyRejectsError, run_ingest
from sparkvision.schema import ImageSpec

log = logging.getLogger("sparkvision.ingest")


def main(argv: list[str] | None = None) -> int:
    parser = dataset_parser(__doc__)
    parser.add_argument("--image-shape", default=str(ImageSpec()), help="HEIGHTxWIDTHxCHANNELS (default 28x28x1)")
    parser.add_argument("--resize-policy", choices=RESIZE_POLICIES, default="stretch")
    parser.add_argument("--max-rejected-share", type=float, default=0.05, help="fail above this share (0..1)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decompression-bomb guard")
    parser.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES, help="larger files: rejected")
    parser.add_argument(
        "--drop-duplicates",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="reject files whose content repeats (duplicates are always flagged)",
    )
    parser.add_argument("--drift-threshold", type=float, default=0.1, help="warn above this label drift (0..1)")
    parser.add_argument("--alpha-background", type=int, default=0, help="grey level under transparent pixels")
    parser.add_argument("--target-file-mb", type=int, default=DEFAULT_TARGET_FILE_MB, help="curated Parquet file size")
    args, paths = parse_or_exit(parser, argv)
    try:
        params = IngestParams(
            ImageSpec.parse(args.image_shape),
            args.max_rejected_share,
            args.max_pixels,
            resize_policy=args.resize_policy,
            drop_duplicates=args.drop_duplicates,
            drift_threshold=args.drift_threshold,
            max_file_bytes=args.max_file_bytes,
            alpha_background=args.alpha_background,
            target_file_mb=args.target_file_mb,
        )
    except ValueError as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-ingest-{paths.dataset}-{paths.version}")
    try:
        manifest = run_ingest(spark, paths, params)
    except TooManyRejectsError as exc:
        log.error("%s", exc)
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(f"ingested {manifest['accepted']} images, rejected {manifest['rejected']} -> {paths.curated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
