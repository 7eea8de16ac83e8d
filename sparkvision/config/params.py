"""Every parameter of a run, declared once: default, bounds, help, form section, identity.

The DAG's trigger form (``sparkvision.orchestration.form``), the run config's validation
(``sparkvision.config.runconfig``), the key=value overrides of a hand-run job and the typed
parameter sections the stages receive (``IngestParams``, ``SplitParams``, ``TrainParams``,
``EvalParams``) are all generated from ``PARAMETERS``. Adding a parameter is one entry here plus
its use.

A batch-inference (scoring) run has its own, shorter list, ``SCORING_PARAMETERS``, declared the
same way (it shares the ``model`` declaration): the ``batch_inference`` DAG's form, the scoring
config (``sparkvision.config.scoring``) and ``ScoreParams`` come from it.

Light on purpose (standard library only): the DAG file imports it at parse time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sparkvision.platform.layout import SAFE_NAME_PATTERN

#: The stages a parameter belongs to; "run" names what the run is about.
STAGES = ("run", "ingest", "split", "train", "evaluate", "score")
ARCHITECTURES = ("reference", "stronger")
#: How ingest brings an image to the target shape: stretch, letterbox (pad) or centre crop.
RESIZE_POLICIES = ("stretch", "pad", "crop")
_KINDS = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class ImageSpec:
    """The fixed shape every curated image is converted to: the parsed ``image_shape``."""

    height: int = 28
    width: int = 28
    channels: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.height <= 4096 and 1 <= self.width <= 4096):
            raise ValueError(f"image size {self.height}x{self.width} outside 1..4096")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (colour), got {self.channels}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def nbytes(self) -> int:
        return self.height * self.width * self.channels

    def __str__(self) -> str:
        return f"{self.height}x{self.width}x{self.channels}"

    @classmethod
    def parse(cls, text: str) -> ImageSpec:
        """Parse ``HxWxC`` (e.g. ``28x28x1``, ``64x64x3``)."""
        match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"image shape {text!r} is not HEIGHTxWIDTHxCHANNELS, e.g. 28x28x1")
        return cls(*(int(part) for part in match.groups()))


@dataclass(frozen=True)
class Parameter:
    """One parameter: everything the form, the validation and the stages need to know of it."""

    name: str
    stage: str
    default: Any
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None
    #: The bounds themselves are excluded (``0 < x < 1``).
    exclusive: bool = False
    choices: tuple | None = None
    #: A JSON-schema pattern (searched, so anchored); checked the same way here.
    pattern: str | None = None
    nullable: bool = False
    #: A further check of the value (raises ValueError), e.g. parsing it.
    refine: Callable[[Any], Any] | None = None
    #: Changes what the stage produces: part of the outputs' fingerprints and of the run id.
    identity: bool = True
    #: The trigger form's section (Airflow renders sections in the order they first appear).
    section: str = "Run"

    def check(self, value: Any) -> Any:
        """The value, normalised to its kind (1 -> 1.0 for numbers), or ValueError saying why not."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{self.name} must be set (no empty value)")
        value = self._as_kind(value)
        if self.kind in (int, float):
            low, high = self.minimum, self.maximum
            below = low is not None and (value <= low if self.exclusive else value < low)
            above = high is not None and (value >= high if self.exclusive else value > high)
            if below or above:
                bounds = f"({low}, {high})" if self.exclusive else f"{low}..{high}"
                if high is None:
                    bounds = f"{'>' if self.exclusive else '>='} {low}"
                raise ValueError(f"{self.name} must be within {bounds}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        if self.pattern is not None and not re.search(self.pattern, value):
            raise ValueError(f"{self.name} {value!r} does not match the pattern {self.pattern}")
        if self.refine is not None:
            try:
                self.refine(value)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
        return value

    def _as_kind(self, value: Any) -> Any:
        wrong = ValueError(f"{self.name} must be {_KINDS[self.kind]}, got {value!r}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise wrong
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise wrong
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise wrong
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise wrong
            return int(value)
        return float(value)

    def parse(self, text: str) -> Any:
        """The value of a ``key=value`` override (a string), checked."""
        if self.nullable and text.lower() in {"", "null", "none"}:
            return None
        if self.kind is bool:
            lowered = text.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(f"{self.name} must be true or false, got {text!r}")
            return self.check(lowered in {"true", "1", "yes"})
        if self.kind in (int, float):
            try:
                number = int(text) if self.kind is int else float(text)
            except ValueError:
                raise ValueError(f"{self.name} must be {_KINDS[self.kind]}, got {text!r}") from None
            return self.check(number)
        return self.check(text)

    def json_schema(self) -> dict[str, Any]:
        """The JSON-schema keywords of an Airflow ``Param`` for this parameter."""
        kind = _KINDS[self.kind]
        schema: dict[str, Any] = {"type": ["null", kind] if self.nullable else kind, "description": self.help}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive else "minimum"] = self.minimum
        if self.maximum is not None:
            schema["exclusiveMaximum" if self.exclusive else "maximum"] = self.maximum
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return schema


def _check_split_shares(section: Any) -> None:
    if section.validation_share + section.test_share >= 1:
        raise ValueError("validation_share + test_share must be below 1")


_FORM_MAIN, _FORM_INGEST, _FORM_TRAIN, _FORM_BLESS, _FORM_ADVANCED = (
    "Run",
    "Ingest",
    "Training",
    "Blessing",
    "Advanced",
)

#: Every parameter of a run, in the trigger form's order.
PARAMETERS: tuple[Parameter, ...] = (
    # what the run is about
    Parameter("dataset", "run", "fashion_mnist", str, "Dataset name: the folder under <root>/raw/",
              pattern=SAFE_NAME_PATTERN),
    Parameter("version", "run", None, str, "Dataset version; empty means the run's logical date (YYYYMMDD)",
              pattern=SAFE_NAME_PATTERN, nullable=True),
    Parameter("model", "run", "fashion_cnn", str, "Model name: the folder under <root>/models/",
              pattern=SAFE_NAME_PATTERN),
    # ingest
    Parameter("image_shape", "ingest", "28x28x1", str, "Target HEIGHTxWIDTHxCHANNELS (1 grey, 3 colour)",
              pattern=r"^[0-9]{1,4}x[0-9]{1,4}x[13](?![\s\S])", refine=ImageSpec.parse, section=_FORM_INGEST),
    Parameter("resize_policy", "ingest", "stretch", str,
              "How images reach the target shape: stretch, pad (letterbox) or crop (centre)",
              choices=RESIZE_POLICIES, section=_FORM_INGEST),
    Parameter("max_rejected_share", "ingest", 0.05, float,
              "Fail ingest when more than this share of the files is rejected",
              minimum=0, maximum=1, identity=False, section=_FORM_INGEST),
    Parameter("drop_duplicates", "ingest", False, bool,
              "Quarantine files whose content repeats an earlier file (duplicates are always flagged)",
              section=_FORM_INGEST),
    Parameter("drift_threshold", "ingest", 0.1, float,
              "Warn when the label distribution moved more than this since the previous version",
              minimum=0, maximum=1, identity=False, section=_FORM_INGEST),
    Parameter("max_pixels", "ingest", 50_000_000, int,
              "Decompression-bomb guard: refuse images of more pixels than this, before decoding",
              minimum=1, maximum=2**31 - 1, section=_FORM_ADVANCED),
    Parameter("max_file_bytes", "ingest", 256 * 1024 * 1024, int,
              "Refuse files larger than this many bytes, without reading them",
              minimum=1, maximum=2**31 - 1, section=_FORM_ADVANCED),
    Parameter("alpha_background", "ingest", 0, int, "Grey level shown under transparent pixels (0 black, 255 white)",
              minimum=0, maximum=255, section=_FORM_ADVANCED),
    Parameter("target_file_mb", "ingest", 128, int, "Size of one curated Parquet file in MiB",
              minimum=1, maximum=4096, identity=False, section=_FORM_ADVANCED),
    # split
    Parameter("validation_share", "split", 0.1, float,
              "Share of the training images held out for validation (by content hash, stable across versions)",
              minimum=0, maximum=0.9, section=_FORM_ADVANCED),
    Parameter("test_share", "split", 0.1, float,
              "Share of the images without a source-given split that go to test",
              minimum=0, maximum=0.9, section=_FORM_ADVANCED),
    # training
    Parameter("architecture", "train", "stronger", str,
              "The CNN: 'stronger' (VGG-style with batch norm, the default) or 'reference' (2 conv + 2 dense)",
              choices=ARCHITECTURES, section=_FORM_TRAIN),
    Parameter("epochs", "train", 24, int, "Epochs to train at most (early stopping and the time budget may end sooner)",
              minimum=1, maximum=1000, section=_FORM_TRAIN),
    Parameter("batch_size", "train", 128, int, "Images per training step, over all workers together",
              minimum=1, maximum=65536, section=_FORM_TRAIN),
    Parameter("learning_rate", "train", 2e-3, float,
              "Peak learning rate of Adam (cosine decay over the planned epochs)",
              minimum=0, maximum=1, exclusive=True, section=_FORM_TRAIN),
    Parameter("augment", "train", False, bool, "Random horizontal flips and small shifts of the training images",
              section=_FORM_TRAIN),
    Parameter("early_stopping_patience", "train", 5, int,
              "Stop after this many epochs without a validation accuracy gain (0: never)",
              minimum=0, maximum=1000, section=_FORM_TRAIN),
    Parameter("max_train_minutes", "train", 10.0, float,
              "Training time budget in minutes (0: none); the learning-rate schedule is fitted into it",
              minimum=0, maximum=7 * 24 * 60, section=_FORM_TRAIN),
    Parameter("workers", "train", 0, int,
              "Training processes, one Spark barrier task each (data-parallel, synchronous); "
              "0: every task slot the cluster offers, 1 on local[*]",
              minimum=0, maximum=1024, identity=False, section=_FORM_TRAIN),
    Parameter("shuffle_buffer", "train", 20_000, int,
              "Images mixed in the streaming shuffle pool (bounded memory: about 16 MB at 28x28x1)",
              minimum=0, maximum=10_000_000, section=_FORM_ADVANCED),
    Parameter("seed", "train", 42, int, "Seed of the weights' initialisation, the shuffles and the augmentation",
              minimum=0, maximum=2**31 - 1, section=_FORM_ADVANCED),
    # evaluation
    Parameter("min_accuracy", "evaluate", 0.85, float, "Bless only models with at least this test accuracy",
              minimum=0, maximum=1, identity=False, section=_FORM_BLESS),
    Parameter("max_regression", "evaluate", 0.005, float,
              "... and at most this much less accurate than the published champion",
              minimum=0, maximum=1, identity=False, section=_FORM_BLESS),
)  # fmt: skip

BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}

#: Every parameter of a scoring run (DAG ``batch_inference``), in its trigger form's order.
SCORING_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("batch", "run", None, str,
              "Batch to score: the folder under <root>/incoming/ (with curated_dataset: that dataset's curated "
              "version); empty means the logical date (YYYYMMDD), or the newest complete batch when a new model "
              "version triggered the run",
              pattern=SAFE_NAME_PATTERN, nullable=True),
    BY_NAME["model"],
    Parameter("model_version", "run", None, int,
              "Published version of the model to score with; empty means the one LATEST points at",
              minimum=1, maximum=2**31 - 1, nullable=True),
    Parameter("curated_dataset", "run", None, str,
              "Score this dataset's labelled curated version (named by batch) instead of an incoming batch: "
              "adds accuracy and the confusion matrix",
              pattern=SAFE_NAME_PATTERN, nullable=True),
    Parameter("top_k", "score", 3, int, "Most likely labels (with their probabilities) kept per image",
              minimum=1, maximum=1000),
    Parameter("rescore", "score", False, bool,
              "Score the batch again even when this model version already scored it", identity=False),
)  # fmt: skip
SCORING_BY_NAME: dict[str, Parameter] = {p.name: p for p in SCORING_PARAMETERS}
#: Every declaration once (``model`` is shared by both lists).
DECLARED: tuple[Parameter, ...] = (*PARAMETERS, *(p for p in SCORING_PARAMETERS if p not in PARAMETERS))
#: Checks that involve several parameters of one stage.
STAGE_CHECKS: dict[str, Callable[[Any], None]] = {"split": _check_split_shares}


def parameters(stage: str) -> tuple[Parameter, ...]:
    return tuple(p for p in DECLARED if p.stage == stage)


def default(name: str) -> Any:
    return BY_NAME[name].default


def _stage_class(cls_name: str, stage: str, doc: str, namespace: dict | None = None) -> type:
    """A frozen dataclass of one stage's parameters, generated from their declarations."""

    def __post_init__(self) -> None:
        for parameter in parameters(stage):
            object.__setattr__(self, parameter.name, parameter.check(getattr(self, parameter.name)))
        if stage in STAGE_CHECKS:
            STAGE_CHECKS[stage](self)

    fields = [(p.name, p.kind, dataclasses.field(default=p.default)) for p in parameters(stage)]
    cls = dataclasses.make_dataclass(
        cls_name, fields, frozen=True, namespace={"__post_init__": __post_init__, "__doc__": doc, **(namespace or {})}
    )
    cls.__module__ = __name__  # pickled by reference into Spark's Python workers
    return cls


IngestParams = _stage_class(
    "IngestParams",
    "ingest",
    "Everything that decides the content of a curated version (recorded in its manifest).",
    {"spec": property(lambda self: ImageSpec.parse(self.image_shape))},
)
SplitParams = _stage_class("SplitParams", "split", "How tensorize splits the curated images.")
TrainParams = _stage_class("TrainParams", "train", "Hyperparameters of one training run.")
EvalParams = _stage_class("EvalParams", "evaluate", "The blessing thresholds of an evaluation.")
STAGE_CLASSES = {"ingest": IngestParams, "split": SplitParams, "train": TrainParams, "evaluate": EvalParams}
ScoreParams = _stage_class("ScoreParams", "score", "How a scoring run writes its predictions.")
SCORING_STAGE_CLASSES = {"score": ScoreParams}


def fingerprint(*sections: Any) -> str:
    """A short hash of the identity parameters of ``sections`` (stage parameter objects).

    Parameters that do not change what a stage produces (thresholds, file sizes) are left out,
    so changing them reuses the outputs.
    """
    identity = {
        p.name: getattr(section, p.name) for section in sections for p in parameters(_stage_of(section)) if p.identity
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def _stage_of(section: Any) -> str:
    for stage, cls in {**STAGE_CLASSES, **SCORING_STAGE_CLASSES}.items():
        if isinstance(section, cls):
            return stage
    raise TypeError(f"not a stage's parameters: {section!r}")


def unknown_names_message(values: Iterable[str], known: Iterable[str]) -> str | None:
    """``unknown parameter 'epoch' (did you mean 'epochs'?)`` for the names not in ``known``, or None."""
    known = list(known)
    unknown = sorted(set(values) - set(known))
    if not unknown:
        return None
    hints = [
        f"{name!r} (did you mean {guess!r}?)" if (guess := closest(name, known)) else repr(name) for name in unknown
    ]
    return f"unknown parameter {', '.join(hints)}"


def closest(name: str, names: Iterable[str]) -> str | None:
    """The known name closest to a misspelt one, or None."""
    import difflib

    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return matches[0] if matches else None
