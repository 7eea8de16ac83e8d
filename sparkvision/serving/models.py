"""The models serving scores with, described by their metadata (no TensorFlow in the driver).

A published version (``<root>/models/<model>/<version>/``) says what it takes and what it gives:
``metrics.json`` holds its input shape and its labels in output order, ``lineage.json`` the run
config it was trained with, whose ingest parameters tell how its training images were decoded
(target shape, resize policy, alpha background, size guards). Batch inference decodes new images
with exactly those parameters, so the model sees new images as it saw its training images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sparkvision.config.params import IngestParams
from sparkvision.platform.catalog import latest_version, published_versions
from sparkvision.platform.layout import EVAL_METRICS, SAVED_MODEL, VERSION_LINEAGE, ModelPaths


class ModelNotFoundError(LookupError):
    """The model version asked for is not published (the scoring job exits with status 4)."""

    exit_code = 4


@dataclass(frozen=True)
class ModelSpec:
    """A model to score with: its SavedModel folder and what it takes and gives."""

    model: str
    #: The published version; None for a run's candidate (not published yet).
    version: int | None
    #: The SavedModel folder (``saved_model.pb``, ``variables/``) on the root.
    uri: str
    #: HEIGHT x WIDTH x CHANNELS of the uint8 images the model takes.
    shape: tuple[int, int, int]
    #: The label of each output, in output order.
    labels: tuple[str, ...]
    #: How the model's training images were decoded (new images are decoded the same way).
    ingest: IngestParams
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.ingest.spec.shape != tuple(self.shape):
            raise ValueError(
                f"{self.model} {self.version}: metadata disagree on the input shape "
                f"({'x'.join(map(str, self.shape))} against the ingest's {self.ingest.image_shape})"
            )


def ingest_params(values: dict) -> IngestParams:
    """IngestParams from a recorded run config's ingest section (fields it lacks take their defaults)."""
    known = {field.name for field in dataclasses.fields(IngestParams)}
    return IngestParams(**{name: value for name, value in values.items() if name in known})


def published_model(fs, model_paths: ModelPaths, version: int | None = None) -> ModelSpec:
    """The published ``version`` of a model (None: the one LATEST points at), from its metadata.

    Raises ModelNotFoundError, naming the versions that exist, when there is no such version:
    file reads on the driver only, before any Spark work.
    """
    versions = published_versions(fs, model_paths)
    if version is None:
        version = latest_version(fs, model_paths)
        if version is None:
            raise ModelNotFoundError(
                f"model {model_paths.model!r} has no published version under {model_paths.published} "
                "(LATEST is missing): nothing to score with; publish one with the image_training DAG"
            )
    uri = model_paths.version(version)
    if version not in versions or not fs.exists(f"{uri}/{SAVED_MODEL}"):
        available = ", ".join(map(str, versions)) or "none"
        raise ModelNotFoundError(
            f"model {model_paths.model!r} has no published version {version} (no {uri}/{SAVED_MODEL}); "
            f"published versions: {available}"
        )
    metrics = fs.read_json(f"{uri}/{EVAL_METRICS}")
    lineage = fs.read_json(f"{uri}/{VERSION_LINEAGE}")
    run_config = lineage["train_params"]["run_config"]
    return ModelSpec(
        model=model_paths.model,
        version=version,
        uri=uri,
        shape=tuple(metrics["image_shape"]),
        labels=tuple(metrics["labels"]),
        ingest=ingest_params(run_config["params"]["ingest"]),
        run_id=lineage.get("run_id"),
    )
