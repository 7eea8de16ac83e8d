"""Training and evaluation parameters with their defaults: defined once, validated on creation.

Light on purpose (no TensorFlow import): the DAG's parameter form and its first task use it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

ARCHITECTURES = ("reference", "stronger")
DEFAULT_DATASET = "fashion_mnist"
DEFAULT_MODEL = "fashion_cnn"


@dataclass(frozen=True)
class TrainParams:
    architecture: str = "reference"
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3
    shuffle_buffer: int = 20_000
    seed: int = 42

    def __post_init__(self) -> None:
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
