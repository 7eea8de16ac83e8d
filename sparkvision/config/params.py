"""Training and evaluation parameters with their defaults: defined once, validated on creation.

Light on purpose (no TensorFlow import): the DAG's parameter form and its first task use it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

ARCHITECTURES = ("reference", "stronger")
#: How ingest brings an image to the target shape: stretch, letterbox (pad) or centre crop.
RESIZE_POLICIES = ("stretch", "pad", "crop")
#: Defaults of the ingest parameters that the DAG's form offers (IngestParams holds them all).
INGEST_DEFAULTS = {"resize_policy": "stretch", "drop_duplicates": False, "drift_threshold": 0.1}
DEFAULT_DATASET = "fashion_mnist"
DEFAULT_MODEL = "fashion_cnn"


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of one training run; every one of them is part of the run id."""

    #: "stronger" reaches >= 0.93 test accuracy on Fashion-MNIST within the time budget on 2 cores;
    #: "reference" is the original design's CNN (about 0.90 after 3 epochs), kept as the baseline.
    architecture: str = "stronger"
    epochs: int = 18
    batch_size: int = 128
    #: Peak Adam learning rate; it decays along a cosine over ``epochs``.
    learning_rate: float = 2e-3
    #: Rows mixed in the streaming shuffle pool (bounded memory: about 16 MB at 28x28x1).
    shuffle_buffer: int = 20_000
    seed: int = 42
    #: Random horizontal flip and small shifts, active only while training.
    augment: bool = False
    #: Stop when validation accuracy has not improved for this many epochs (0: never).
    early_stopping_patience: int = 5
    #: Stop before an epoch that would end past this many minutes of training (0: no budget).
    max_train_minutes: float = 10.0

    def __post_init__(self) -> None:
        # Normalise numbers (0 and 0.0 must give the same run id).
        for name in ("learning_rate", "max_train_minutes"):
            if isinstance(getattr(self, name), int | float) and not isinstance(getattr(self, name), bool):
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must be within 1..1000, got {self.epochs}")
        if not 1 <= self.batch_size <= 65536:
            raise ValueError(f"batch_size must be within 1..65536, got {self.batch_size}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be within (0, 1), got {self.learning_rate}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be true or false, got {self.augment!r}")
        if not 0 <= self.early_stopping_patience <= 1000:
            raise ValueError(f"early_stopping_patience must be within 0..1000, got {self.early_stopping_patience}")
        if not 0 <= self.max_train_minutes <= 7 * 24 * 60:
            raise ValueError(f"max_train_minutes must be within 0..10080, got {self.max_train_minutes}")

    def fingerprint(self) -> str:
        """A short hash of every parameter: part of the run id."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class EvalParams:
    #: The candidate needs at least this test accuracy to be blessed.
    min_accuracy: float = 0.85
    #: ... and may be at most this much less accurate than the published champion.
    max_regression: float = 0.005

    def __post_init__(self) -> None:
        if not 0 <= self.min_accuracy <= 1:
            raise ValueError(f"min_accuracy must be within 0..1, got {self.min_accuracy}")
        if not 0 <= self.max_regression <= 1:
            raise ValueError(f"max_regression must be within 0..1, got {self.max_regression}")


def run_id(dataset: str, version: str, params: TrainParams) -> str:
    """The run id of training ``params`` on one dataset version: the same inputs, the same run."""
    return f"{dataset}-{version}-{params.fingerprint()}"
