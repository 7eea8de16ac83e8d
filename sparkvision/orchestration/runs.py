"""Run configs from the DAG's side: resolve the trigger's parameters, find a run's artifacts."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sparkvision.config.runconfig import InvalidRunParams, RunConfig
from sparkvision.config.scoring import config_from_json
from sparkvision.orchestration.io import commit_new, read_json, read_text
from sparkvision.platform.layout import EVAL_METRICS, RUN_PUBLISHED, uri_path

log = logging.getLogger(__name__)


def resolve_run_config(root: str, params: dict[str, Any], when: datetime) -> str:
    """Validate the run's parameters, commit its run config, return its URI.

    Bad or unknown parameters fail the task at once (no retry: a retry cannot make them right),
    with the message naming the parameter, before any path is built or file written.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        config = RunConfig.build(root, params, when)
    except InvalidRunParams as exc:
        raise AirflowFailException(str(exc)) from None
    uri = commit_new(config.uri, config.to_json())
    log.info("run config %s: dataset %s version %s, run %s", uri, config.dataset, config.version, config.run_id)
    print(config.to_json())
    return uri


def load_run_config(uri: str) -> RunConfig:
    return RunConfig.from_json(read_text(uri))


def artifact_path(run_config_uri: str, artifact: str) -> str:
    """The path (as the sensors take it) of the ``_SUCCESS`` of one of the run's artifacts.

    A DAG macro: the sensors' ``filepath`` templates call it when the task runs, not at parse time.
    The URI names a run config (image_training) or a scoring config (batch_inference).
    """
    return uri_path(config_from_json(read_text(run_config_uri)).artifact(artifact))


def run_outcome(run_config_uri: str, what: str) -> dict[str, Any]:
    """What the run's evaluation said (``evaluation``: metrics.json) or its publish gave (``published``)."""
    config = load_run_config(run_config_uri)
    files = {
        "evaluation": f"{config.model_paths.evaluation(config.run_id)}/{EVAL_METRICS}",
        "published": f"{config.run_uri}/{RUN_PUBLISHED}",
    }
    return {**read_json(files[what]), "run_uri": config.run_uri}
