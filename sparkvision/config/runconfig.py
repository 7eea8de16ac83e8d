"""Resolve a DAG run's parameters: validate every name and value, derive the version and run id.

Runs in the DAG's first task so that bad parameters fail the run before any path is built
or any file written.
"""

from __future__ import annotations

from datetime import datetime

from sparkvision.ingest import IngestParams
from sparkvision.layout import DatasetPaths, ModelPaths, validate_name
from sparkvision.params import EvalParams, TrainParams, run_id
from sparkvision.schema import ImageSpec


class InvalidRunParams(ValueError):
    """A parameter of the run that cannot be used; the message says which and why."""


def resolve_run(root: str, params: dict, when: datetime) -> dict:
    """The resolved run: dataset, version, model and run id (raises InvalidRunParams)."""
    try:
        version = params.get("version") or when.strftime("%Y%m%d")
        dataset_paths = DatasetPaths(
            root, validate_name(params["dataset"], "dataset"), validate_name(version, "version")
        )
        ModelPaths(root, params["model"])
        IngestParams(
            ImageSpec.parse(params["image_shape"]),
            float(params["max_rejected_share"]),
            resize_policy=params["resize_policy"],
            drop_duplicates=bool(params["drop_duplicates"]),
            drift_threshold=float(params["drift_threshold"]),
        )
        train = TrainParams(
            architecture=params["architecture"],
            epochs=int(params["epochs"]),
            batch_size=int(params["batch_size"]),
            learning_rate=float(params["learning_rate"]),
            **_optional_train_params(params),
        )
        EvalParams(float(params["min_accuracy"]), float(params["max_regression"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRunParams(f"refusing the run's parameters: {exc}") from exc
    return {
        "dataset": dataset_paths.dataset,
        "version": dataset_paths.version,
        "model": params["model"],
        "run_id": run_id(dataset_paths.dataset, dataset_paths.version, train),
    }


def _optional_train_params(params: dict) -> dict:
    """Training parameters a run may leave out (older parameter forms): their defaults apply."""
    casts = {
        "augment": _as_bool,
        "early_stopping_patience": int,
        "max_train_minutes": float,
        "shuffle_buffer": int,
        "seed": int,
    }
    return {key: cast(params[key]) for key, cast in casts.items() if params.get(key) is not None}


def _as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "1", "yes"}:
        return True
    if str(value).lower() in {"false", "0", "no"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")
