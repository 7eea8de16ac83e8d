"""Evaluate a trained run on the test split and decide whether it is blessed.

    spark-submit spark_jobs/evaluate.py --root file:///data --dataset fashion_mnist --version 20261125 \
        --model fashion_cnn --run-id fashion_mnist-20261125-1a2b3c4d [--min-accuracy 0.85] [--max-regression 0.005]

Reads the run and <root>/tensors/<dataset>/<version>/test/; writes <root>/runs/<model>/<run id>/evaluation/
(metrics.json with `blessed` and the reason, plots, report.html, _SUCCESS).
"""

from __future__ import annotations

import sys

from sparkvision.cli import dataset_parser, parse_or_exit, spark_session
from sparkvision.evaluate import evaluate
from sparkvision.layout import InvalidNameError, ModelPaths, validate_name
from sparkvision.params import EvalParams
from sparkvision.storage import HadoopFS

DEFAULTS = EvalParams()


def main(argv: list[str] | None = None) -> int:
    parser = dataset_parser(__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--min-accuracy", type=float, default=DEFAULTS.min_accuracy)
    parser.add_argument("--max-regression", type=float, default=DEFAULTS.max_regression)
    args, paths = parse_or_exit(parser, argv)
    try:
        model_paths = ModelPaths(args.root, args.model)
        validate_name(args.run_id, "run id")
        params = EvalParams(args.min_accuracy, args.max_regression)
    except (InvalidNameError, ValueError) as exc:
        parser.error(str(exc))
    spark = spark_session(f"sparkvision-evaluate-{args.run_id}")
    try:
        metrics = evaluate(HadoopFS(spark), paths, model_paths, args.run_id, params)
    finally:
        spark.stop()
    print(
        f"test accuracy {metrics['accuracy']:.4f}: {'blessed' if metrics['blessed'] else 'NOT blessed'} "
        f"({metrics['reason']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
