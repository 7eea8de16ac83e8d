"""Scoring configs from the batch_inference DAG's side: which batch, which model version.

``resolve_scoring_config`` is the DAG's ``resolve`` task. It validates the trigger's parameters
(unknown names refused), decides what the run scores and with which version, checks that the
version is published, and commits the scoring config: the rest of the run only reads it.

- A **scheduled or manual run** scores ``batch`` (empty: the logical date, ``YYYYMMDD``) with
  ``model_version`` (empty: the version ``LATEST`` points at now, pinned in the config).
- A **run triggered by a new model version** (the ``sparkvision_published_models`` Asset event
  that image_training's ``announce`` emits) scores with the announced model and version; the
  batch is ``batch`` when it is set, else the newest complete batch under ``incoming/`` (by name:
  batches named by date sort by date). Without any complete batch the run is skipped, saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sparkvision.config.runconfig import InvalidRunParams
from sparkvision.config.scoring import ScoringConfig
from sparkvision.orchestration.io import commit_new, exists, list_names, read_text
from sparkvision.platform.layout import SAVED_MODEL, SUCCESS, is_safe_name, validate_root

log = logging.getLogger(__name__)


def announced_model(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> dict[str, Any] | None:
    """The model and version of the newest published-model event that triggered the run, or None.

    ``triggering_asset_events``: the task context's mapping of Asset -> events (empty unless an
    Asset event triggered the run); an event's ``extra`` is what ``announce`` put there.
    """
    announced = [
        event.extra
        for events in (triggering_asset_events or {}).values()
        for event in events
        if {"model", "version"} <= set(event.extra or {})
    ]
    return announced[-1] if announced else None


def newest_batch(root: str) -> str | None:
    """The newest (by name) batch under ``<root>/incoming/`` that is complete (has ``_SUCCESS``)."""
    incoming = f"{validate_root(root)}/incoming"
    for name in reversed(list_names(incoming)):
        if is_safe_name(name) and exists(f"{incoming}/{name}/{SUCCESS}"):
            return name
    return None


def resolve_scoring_config(
    root: str, params: Mapping[str, Any], when: datetime, announced: dict[str, Any] | None = None
) -> str:
    """Validate, pin the model version, commit the scoring config; return its URI.

    Bad or unknown parameters, and a model version that is not published, fail the task at once
    (no retry: a retry cannot make them right), before any Spark work.
    """
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    values = dict(params)
    if announced is not None:
        log.info("triggered by a new version: %s version %s", announced["model"], announced["version"])
        values.update(model=announced["model"], model_version=announced["version"])
        if values.get("batch") is None:
            values["batch"] = newest_batch(root)
            if values["batch"] is None:
                raise AirflowSkipException(
                    f"{announced['model']} version {announced['version']} was published, but there is no complete "
                    f"batch under {root}/incoming/ to score"
                )
    try:
        config = ScoringConfig.build(root, values, when)
    except InvalidRunParams as exc:
        raise AirflowFailException(str(exc)) from None
    paths = config.model_paths
    version = config.model_version
    if version is None:
        if not exists(paths.latest_pointer):
            raise AirflowFailException(
                f"model {config.model!r} has no published version ({paths.latest_pointer} is missing): "
                "nothing to score with; publish one with the image_training DAG"
            )
        version = int(read_text(paths.latest_pointer).strip())
    if not exists(f"{paths.version(version)}/{SAVED_MODEL}"):
        published = [name for name in list_names(paths.published) if name.isdigit()]
        raise AirflowFailException(
            f"model {config.model!r} has no published version {version} (no {paths.version(version)}/{SAVED_MODEL}); "
            f"published versions: {', '.join(sorted(published, key=int)) or 'none'}"
        )
    config = config.pinned(version)
    uri = commit_new(config.uri, config.to_json())
    log.info("scoring config %s: %s", uri, config.title)
    print(config.to_json())
    return uri
