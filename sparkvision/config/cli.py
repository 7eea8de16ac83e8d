"""What every spark-submit entry point in spark_jobs/ shares: the run config in, logs, the session.

A job takes the run config the DAG's ``resolve`` task committed, or builds one from overrides::

    spark-submit spark_jobs/<job>.py --run-config <root>/configs/<dataset>/<version>/<hash>.json
    spark-submit spark_jobs/<job>.py [--root URI] version=v1 [key=value ...]

The scoring job takes a scoring config the same way (``config_class=ScoringConfig``).

Overrides are validated exactly as the DAG's parameters are (unknown names refused, with the
closest known one), before any session starts or any path is built; the config they make is
committed too, and the job prints its URI so that the next stage can take it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from sparkvision.config.runconfig import InvalidRunParams, RunConfig
from sparkvision.platform.settings import storage_root

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Exit status of a job refused before it started (as argparse does).
USAGE_ERROR = 2


def job_parser(description: str | None, config_class: type = RunConfig) -> argparse.ArgumentParser:
    """The one parser of every job: ``--run-config URI``, or ``key=value`` overrides."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="parameters: " + ", ".join(p.name for p in config_class.DECLARED),
    )
    parser.add_argument("--run-config", metavar="URI", help="the run config to run (as the DAG passes it)")
    parser.add_argument("--root", default=None, help="storage root for overrides (default: SPARKVISION_ROOT)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="build a run config from these")
    return parser


def parse_job_args(
    parser: argparse.ArgumentParser, argv: list[str] | None = None, config_class: type = RunConfig
) -> tuple[str | None, Any]:
    """(run config URI, None) or (None, config built from overrides); exits 2 on bad input."""
    args = parser.parse_args(argv)
    if bool(args.run_config) == bool(args.overrides):
        parser.error("give either --run-config URI or key=value overrides (the parameters are listed below)")
    if args.run_config:
        if args.root:
            parser.error("--root goes with overrides; the run config names its root")
        return args.run_config, None
    try:
        return None, config_class.from_overrides(args.root or storage_root(), args.overrides)
    except InvalidRunParams as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def run_job(
    name: str,
    description: str | None,
    work: Callable[[Any, Any], str],
    argv: list[str] | None = None,
    config_class: type = RunConfig,
) -> int:
    """Parse, start the session, load (or commit) the run config, run ``work``; its line is printed.

    ``config_class``: RunConfig (the pipeline's stages) or ScoringConfig (batch inference).

    An exception with an ``exit_code`` attribute (too many rejects, not blessed) ends the job
    with that status and its message on stderr; anything else is a crash with a traceback.
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    uri, config = parse_job_args(job_parser(description, config_class), argv, config_class)
    from sparkvision.platform.spark import spark_session
    from sparkvision.platform.storage import HadoopFS

    spark = spark_session(f"sparkvision-{name}")
    try:
        fs = HadoopFS(spark)
        if uri is not None:
            try:
                config = config_class.from_json(fs.read_text(uri))
            except (InvalidRunParams, KeyError, ValueError) as exc:
                print(f"{name}: cannot use the run config {uri}: {exc}", file=sys.stderr)
                return USAGE_ERROR
        else:
            uri = fs.commit_new(config.uri, config.to_json().encode())
            print(f"run config: {uri}")
        spark.sparkContext.setJobDescription(f"{name} {config.title}")
        try:
            message = work(spark, config)
        except Exception as exc:
            code = getattr(exc, "exit_code", None)
            if code is None:
                raise
            logging.getLogger(f"sparkvision.{name}").error("%s", exc)
            print(f"{name} failed: {exc}", file=sys.stderr)
            return code
    finally:
        spark.stop()
    print(message)
    return 0
