"""Train the Keras CNN on a tensorized dataset version (runs in the spark-submit driver).

    spark-submit spark_jobs/train.py --root file:///data --dataset fashion_mnist --version 20261125 \
        --model fashion_cnn [--architecture stronger] [--epochs 18] [--batch-size 128] [--learning-rate 0.002] \
        [--shuffle-buffer 20000] [--seed 42] [--augment] [--early-stopping-patience 5] [--max-train-minutes 10]

A retried task resumes from the run's last per-epoch checkpoint (the log says at which epoch).

Reads  <root>/tensors/<dataset>/<version>/ (closed by _SUCCESS); writes
<root>/runs/<model>/<run id>/ with the checkpoint, history, model.keras, export/ and _SUCCESS.
"""

from __future__ import annotations

import argparse
import sys

from sparkvision.cli import dataset_parser, parse_or_exit, spark_session
from sparkvision.layout import InvalidNameError, ModelPaths
from sparkvision.params import TrainParams, run_id
from sparkvision.storage import HadoopFS
from sparkvision.train import train

DEFAULTS = TrainParams()


def main(argv: list[str] | None = None) -> int:
    parser = dataset_parser(__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--architecture", default=DEFAULTS.architecture)
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    parser.add_argument("--shuffle-buffer", type=int, default=DEFAULTS.shuffle_buffer)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=DEFAULTS.augment)
    parser.add_argument("--early-stopping-patience", type=int, default=DEFAULTS.early_stopping_patience)
    parser.add_argument("--max-train-minutes", type=float, default=DEFAULTS.max_train_minutes)
    parser.add_argument("--run-id", help="the run id the caller expects (checked against the parameters)")
    args, paths = parse_or_exit(parser, argv)
    try:
        model_paths = ModelPaths(args.root, args.model)
        params = TrainParams(
            architecture=args.architecture,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            shuffle_buffer=args.shuffle_buffer,
            seed=args.seed,
            augment=args.augment,
            early_stopping_patience=args.early_stopping_patience,
            max_train_minutes=args.max_train_minutes,
        )
    except (InvalidNameError, ValueError) as exc:
        parser.error(str(exc))
    expected = run_id(paths.dataset, paths.version, params)
    if args.run_id and args.run_id != expected:
        parser.error(f"--run-id {args.run_id} does not match the parameters' run id {expected}")
    spark = spark_session(f"sparkvision-train-{paths.dataset}-{paths.version}")
    try:
        summary = train(HadoopFS(spark), paths, model_paths, params)
    finally:
        spark.stop()
    print(
        f"trained run {summary['run_id']} -> {summary['run_uri']}: {summary['epochs']} epochs "
        f"(resumed at {summary['resumed_at_epoch']}), best epoch {summary['best_epoch']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
