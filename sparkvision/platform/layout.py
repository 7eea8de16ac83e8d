"""The storage layout under one root URI, and the safe-name rule for every name in a path.

Every path the pipeline builds comes from here, and every name is validated first::

    <root>/raw/<dataset>/<version>/<label>/<file>       input drop, closed by _SUCCESS
    <root>/curated/<dataset>/<version>/                 images.parquet/, rejects.parquet/, manifest.json
    <root>/tensors/<dataset>/<version>/<split>/         training-ready shards, stats.json
    <root>/runs/<model>/<run id>/                       checkpoints, history, metrics, candidate export
    <root>/models/<model>/<version>/                    published (TF Serving layout)
    <root>/predictions/<model>/<model version>/<batch>/ batch inference output
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

#: Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The same rule as a JSON-schema pattern, for Airflow Params.
SAFE_NAME_PATTERN = SAFE_NAME.pattern

SUCCESS = "_SUCCESS"
SPLITS = ("train", "validation", "test")


class InvalidNameError(ValueError):
    """A dataset, version, label or model name that may not become part of a path."""


def validate_name(value: str, what: str) -> str:
    """Return ``value`` when it is a safe path component, else raise InvalidNameError."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or value in {".", ".."}:
        raise InvalidNameError(
            f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def validate_root(root: str) -> str:
    """Return the root URI without a trailing slash; only file:// and hdfs:// are accepted."""
    parsed = urlparse(root)
    if parsed.scheme not in {"file", "hdfs"} or not parsed.path.startswith("/"):
        raise ValueError(f"invalid storage root {root!r}: expected file:///abs/path or hdfs://host:port/path")
    return root.rstrip("/")


def is_hdfs(root: str) -> bool:
    return urlparse(root).scheme == "hdfs"


def uri_path(uri: str) -> str:
    """The path part of a URI (what WebHDFS and a local filesystem sensor take)."""
    return urlparse(uri).path


@dataclass(frozen=True)
class DatasetPaths:
    """The paths of one dataset version under a root."""

    root: str
    dataset: str
    version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", validate_root(self.root))
        validate_name(self.dataset, "dataset")
        validate_name(self.version, "version")

    @property
    def raw(self) -> str:
        return f"{self.root}/raw/{self.dataset}/{self.version}"

    @property
    def curated(self) -> str:
        return f"{self.root}/curated/{self.dataset}/{self.version}"

    @property
    def tensors(self) -> str:
        return f"{self.root}/tensors/{self.dataset}/{self.version}"

    def tensor_split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return f"{self.tensors}/{split}"


@dataclass(frozen=True)
class ModelPaths:
    """The paths of one model name under a root."""

    root: str
    model: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", validate_root(self.root))
        validate_name(self.model, "model")

    @property
    def runs(self) -> str:
        return f"{self.root}/runs/{self.model}"

    def run(self, run_id: str) -> str:
        return f"{self.runs}/{validate_name(run_id, 'run id')}"

    @property
    def published(self) -> str:
        return f"{self.root}/models/{self.model}"

    def version(self, version: int) -> str:
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"model versions are positive integers, got {version!r}")
        return f"{self.published}/{version}"

    @property
    def latest_pointer(self) -> str:
        return f"{self.published}/LATEST"

    def predictions(self, model_version: int, batch: str) -> str:
        return f"{self.root}/predictions/{self.model}/{model_version}/{validate_name(batch, 'batch')}"
