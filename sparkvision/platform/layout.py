"""The storage layout under one root URI: every path and every artifact file name, named once.

Every path the pipeline builds comes from here, and every name in it is validated first::

    <root>/configs/<dataset>/<version>/<config hash>.json  run configs (content-addressed)
    <root>/raw/<dataset>/<version>/<label>/<file>         input drop, closed by _SUCCESS
    <root>/curated/<dataset>/<version>/                   images.parquet/, rejects.parquet/, manifest.json
    <root>/tensors/<dataset>/<version>/<split>/           training-ready shards, stats.json
    <root>/runs/<model>/<run id>/                         checkpoints, history, model, evaluation/
    <root>/models/<model>/<version>/                      published (TF Serving layout); LATEST
    <root>/incoming/<batch>/...                           unlabelled images to score, closed by _SUCCESS
    <root>/predictions/<model>/<model version>/<batch>/   batch inference output
    <root>/predictions/<model>/configs/<batch>/<hash>.json  scoring configs (content-addressed)

No I/O here, and nothing heavy to import: DAG files use it at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

#: A safe name: letters, digits, '.', '_' and '-', starting with a letter or digit, 1-64 characters.
SAFE_NAME_BODY = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
#: The rule as a compiled pattern; use ``fullmatch`` (``$`` would also match before a final newline).
SAFE_NAME = re.compile(SAFE_NAME_BODY)
#: The same rule as a JSON-schema pattern (Airflow Params, the browser's form). JSON-schema
#: patterns are searched, not matched, and Python's ``$`` matches before a final newline: the
#: look-ahead admits nothing at all after the last allowed character, in Python and JavaScript.
SAFE_NAME_PATTERN = rf"^{SAFE_NAME_BODY}(?![\s\S])"

SUCCESS = "_SUCCESS"
SPLITS = ("train", "validation", "test")

# Artifact file names, by the folder they live in.
# curated/<dataset>/<version>/
CURATED_IMAGES = "images.parquet"
CURATED_REJECTS = "rejects.parquet"
CURATED_LABELS = "labels.json"
CURATED_MANIFEST = "manifest.json"
# tensors/<dataset>/<version>/
TENSOR_STATS = "stats.json"
# runs/<model>/<run id>/
RUN_PARAMS = "train_params.json"  # the run's parameters, input and identity
RUN_BACKUP = "backup"  # the per-epoch checkpoint (weights, optimizer, epoch), in two files:
CHECKPOINT_STATE = "checkpoint.npz"  # backup/: model weights and optimizer variables
CHECKPOINT_META = "training_metadata.json"  # backup/: epochs done, planned epochs, workers
RUN_BEST_WEIGHTS = "best.weights.h5"
RUN_HISTORY_CSV = "history.csv"  # one row per epoch, across resumes
RUN_HISTORY = "history.json"  # the summary, once training finished
MODEL_FILE = "model.keras"
RUN_EXPORT = "export"  # the SavedModel, copied into TF Serving layout on publish
RUN_EVALUATION = "evaluation"
RUN_PUBLISHED = "published.json"  # what publishing this run gave
RUN_PUBLISH_CLAIM = ".publish-claim"  # held by the publisher working on the run
# runs/<model>/<run id>/evaluation/ (the plots and report are copied into the published version)
EVAL_METRICS = "metrics.json"
EVAL_CONFUSION_PLOT = "confusion_matrix.png"
EVAL_CURVES_PLOT = "training_curves.png"
EVAL_REPORT = "report.html"
EVAL_FILES = (EVAL_METRICS, EVAL_CONFUSION_PLOT, EVAL_CURVES_PLOT, EVAL_REPORT)
# models/<model>/<version>/ (besides the SavedModel, MODEL_FILE and EVAL_FILES)
VERSION_LINEAGE = "lineage.json"
VERSION_CARD = "model_card.md"
SAVED_MODEL = "saved_model.pb"
#: What a SavedModel folder holds besides saved_model.pb (what serving ships to the executors).
SAVED_MODEL_PARTS = (SAVED_MODEL, "fingerprint.pb", "variables", "assets")
LATEST = "LATEST"
# runs/<model>/<run id>/evaluation/ and predictions/<model>/<model version>/<batch>/
PREDICTIONS = "predictions.parquet"
# predictions/<model>/<model version>/<batch>/
PREDICTION_REJECTS = "rejects.parquet"
PREDICTION_MANIFEST = "manifest.json"


class InvalidNameError(ValueError):
    """A dataset, version, label or model name that may not become part of a path."""


def is_safe_name(value: object) -> bool:
    """True when ``value`` is a string that may be one component of a path."""
    return isinstance(value, str) and SAFE_NAME.fullmatch(value) is not None and value not in {".", ".."}


def validate_name(value: str, what: str) -> str:
    """Return ``value`` when it is a safe path component, else raise InvalidNameError."""
    if not is_safe_name(value):
        raise InvalidNameError(
            f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def validate_root(root: str) -> str:
    """Return the root URI without a trailing slash; only file:// and hdfs:// are accepted."""
    parsed = urlparse(root) if isinstance(root, str) else None
    if parsed is None or parsed.scheme not in {"file", "hdfs"} or not parsed.path.startswith("/"):
        raise ValueError(f"invalid storage root {root!r}: expected file:///abs/path or hdfs://host:port/path")
    if any(ch in root for ch in "\n\r\t"):
        raise ValueError(f"invalid storage root {root!r}: control characters")
    return root.rstrip("/")


def incoming_batch(root: str, batch: str) -> str:
    """``<root>/incoming/<batch>``: a batch drop of unlabelled images to score."""
    return f"{validate_root(root)}/incoming/{validate_name(batch, 'batch')}"


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

    @property
    def configs(self) -> str:
        return f"{self.root}/configs/{self.dataset}/{self.version}"


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

    def evaluation(self, run_id: str) -> str:
        return f"{self.run(run_id)}/{RUN_EVALUATION}"

    @property
    def published(self) -> str:
        return f"{self.root}/models/{self.model}"

    def version(self, version: int) -> str:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"model versions are positive integers, got {version!r}")
        return f"{self.published}/{version}"

    @property
    def latest_pointer(self) -> str:
        return f"{self.published}/{LATEST}"

    def predictions(self, model_version: int, batch: str) -> str:
        self.version(model_version)
        return f"{self.root}/predictions/{self.model}/{model_version}/{validate_name(batch, 'batch')}"

    def scoring_configs(self, batch: str) -> str:
        """Where the scoring configs of one batch are committed (next to the model's predictions)."""
        return f"{self.root}/predictions/{self.model}/configs/{validate_name(batch, 'batch')}"
