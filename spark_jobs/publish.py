"""Publish a blessed run as the next model version (TF Serving layout), or roll LATEST back.

    spark-submit spark_jobs/publish.py --root file:///data --model fashion_cnn \
        --run-id fashion_mnist-20261125-1a2b3c4d [--airflow-run-id ID]
    spark-submit spark_jobs/publish.py --root file:///data --model fashion_cnn --rollback-to 3

Writes <root>/models/<model>/<version>/ and then <root>/models/<model>/LATEST.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sparkvision.cli import LOG_FORMAT, spark_session
from sparkvision.layout import InvalidNameError, ModelPaths, validate_name
from sparkvision.publish import NotBlessedError, publish, rollback
from sparkvision.settings import storage_root
from sparkvision.storage import HadoopFS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=storage_root())
    parser.add_argument("--model", required=True)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--run-id")
    action.add_argument("--rollback-to", type=int, metavar="VERSION")
    parser.add_argument("--airflow-run-id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    try:
        model_paths = ModelPaths(args.root, args.model)
        if args.run_id:
            validate_name(args.run_id, "run id")
    except (InvalidNameError, ValueError) as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-publish-{args.model}")
    try:
        fs = HadoopFS(spark)
        if args.rollback_to is not None:
            rollback(fs, model_paths, args.rollback_to)
            print(f"LATEST of {args.model} -> version {args.rollback_to}")
            return 0
        try:
            result = publish(fs, model_paths, args.run_id, args.airflow_run_id)
        except NotBlessedError as exc:
            print(f"NOT PUBLISHED: {exc}")
            return 3
    finally:
        spark.stop()
    print(f"{'published' if result['new'] else 'unchanged'}: {result['uri']} ({result['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
