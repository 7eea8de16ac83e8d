"""The scoring config: one batch-inference run's validated parameters (DAG ``batch_inference``).

The scoring counterpart of the run config (``sparkvision.config.runconfig``), built the same way
from its own declarations (``SCORING_PARAMETERS``): unknown names are refused with the closest
known one, bad values with the rule they break, before any path is built. The DAG's ``resolve``
task pins the model version (``LATEST`` read once, so that a retried task scores with the same
version) and the batch, commits the JSON under
``<root>/predictions/<model>/configs/<batch>/<hash>.json`` and passes on only its URI; the scoring
job reads it (``--run-config URI``) or builds one from ``key=value`` overrides.

What is scored (``source``): the batch drop ``<root>/incoming/<batch>/`` or, with
``curated_dataset``, the labelled curated version ``<root>/curated/<curated_dataset>/<batch>/``.
Where it goes: ``<root>/predictions/<model>/<model version>/<output batch>/``, where the output
batch is the batch's name, or ``<curated_dataset>.<batch>`` for a curated version.

Light on purpose (standard library only): the DAG's ``resolve`` task imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sparkvision.config.params import (
    SCORING_BY_NAME,
    SCORING_PARAMETERS,
    SCORING_STAGE_CLASSES,
    ScoreParams,
    fingerprint,
    parameters,
    unknown_names_message,
)
from sparkvision.config.runconfig import InvalidRunParams, RunConfig
from sparkvision.platform.layout import (
    DatasetPaths,
    InvalidNameError,
    ModelPaths,
    incoming_batch,
    validate_name,
    validate_root,
)

#: Bumped when the JSON's shape changes.
FORMAT = 1
#: The ``kind`` of a scoring config's JSON (a run config has none).
KIND = "scoring"


@dataclass(frozen=True)
class ScoringConfig:
    """Everything one scoring run needs to know, validated."""

    DECLARED: ClassVar = SCORING_PARAMETERS

    root: str
    batch: str
    model: str
    #: None: whatever LATEST points at when the job starts (the DAG pins it before).
    model_version: int | None
    curated_dataset: str | None
    score: ScoreParams

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, root: str, values: Mapping[str, Any], when: datetime | None = None) -> ScoringConfig:
        """Validate ``values`` (parameter name -> value; missing ones take their defaults).

        An empty ``batch`` becomes ``when``'s date (``YYYYMMDD``). Raises InvalidRunParams naming
        the parameter, also for a name that is not a parameter.
        """
        unknown = unknown_names_message(values, SCORING_BY_NAME)
        if unknown:
            raise InvalidRunParams(f"refusing the scoring run's parameters: {unknown}")
        try:
            checked = {p.name: p.check(values.get(p.name, p.default)) for p in SCORING_PARAMETERS}
            if checked["batch"] is None:
                if when is None:
                    raise ValueError("batch must be set (no logical date to derive it from)")
                checked["batch"] = when.strftime("%Y%m%d")
            config = cls(
                root=validate_root(root),
                batch=checked["batch"],
                model=checked["model"],
                model_version=checked["model_version"],
                curated_dataset=checked["curated_dataset"],
                score=ScoreParams(**{p.name: checked[p.name] for p in parameters("score")}),
            )
            _ = config.source  # builds, and so validates, the paths of the config
            validate_name(config.output_batch, "batch")
            return config
        except (InvalidNameError, ValueError, TypeError) as exc:
            raise InvalidRunParams(f"refusing the scoring run's parameters: {exc}") from exc

    @classmethod
    def from_overrides(cls, root: str, overrides: list[str]) -> ScoringConfig:
        """Build from ``key=value`` strings (a hand-run job); ``batch`` must be among them."""
        values: dict[str, Any] = {}
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise InvalidRunParams(f"refusing the scoring run's parameters: expected key=value, got {item!r}")
            if key not in SCORING_BY_NAME:
                values[key] = text  # refused by build(), with a hint
                continue
            try:
                values[key] = SCORING_BY_NAME[key].parse(text)
            except ValueError as exc:
                raise InvalidRunParams(f"refusing the scoring run's parameters: {exc}") from exc
        return cls.build(root, values)

    def pinned(self, model_version: int) -> ScoringConfig:
        """The same config with the model version fixed (``LATEST`` resolved)."""
        ModelPaths(self.root, self.model).version(model_version)
        return dataclasses.replace(self, model_version=model_version)

    # -- identities and paths ---------------------------------------------------------------

    @property
    def title(self) -> str:
        version = "LATEST" if self.model_version is None else self.model_version
        return f"{self.model} version {version} on {self.output_batch}"

    @property
    def labelled(self) -> bool:
        """A curated version has labels: its scoring also reports accuracy and a confusion matrix."""
        return self.curated_dataset is not None

    @property
    def source(self) -> str:
        """The folder scored: the batch drop, or the curated version."""
        if self.curated_dataset is not None:
            return DatasetPaths(self.root, self.curated_dataset, self.batch).curated
        return incoming_batch(self.root, self.batch)

    @property
    def output_batch(self) -> str:
        """The name of the batch under predictions/: ``<batch>``, or ``<dataset>.<version>``."""
        return f"{self.curated_dataset}.{self.batch}" if self.curated_dataset is not None else self.batch

    @property
    def model_paths(self) -> ModelPaths:
        return ModelPaths(self.root, self.model)

    @property
    def output(self) -> str:
        """``<root>/predictions/<model>/<model version>/<output batch>``; needs a pinned version."""
        if self.model_version is None:
            raise ValueError("the model version is not pinned yet (LATEST is resolved when the job starts)")
        return self.model_paths.predictions(self.model_version, self.output_batch)

    def predictions_fingerprint(self, model_run_id: str | None) -> str:
        """What the predictions depend on: the model version (and the run it holds), the source, top_k."""
        identity = [self.model, self.model_version, model_run_id, self.source, fingerprint(self.score)]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]

    @property
    def uri(self) -> str:
        """Where this config is committed: named by the hash of its content."""
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
        return f"{self.model_paths.scoring_configs(self.output_batch)}/{digest}.json"

    def artifact(self, name: str) -> str:
        """The ``_SUCCESS`` marker the DAG's sensors wait for: the input ``batch`` or the ``predictions``."""
        markers = {"batch": lambda: self.source, "predictions": lambda: self.output}
        if name not in markers:
            raise ValueError(f"unknown artifact {name!r}; expected one of {sorted(markers)}")
        return f"{markers[name]()}/_SUCCESS"

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": KIND,
            "root": self.root,
            "batch": self.batch,
            "model": self.model,
            "model_version": self.model_version,
            "curated_dataset": self.curated_dataset,
            "params": {stage: dataclasses.asdict(getattr(self, stage)) for stage in SCORING_STAGE_CLASSES},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringConfig:
        """Read a config written by ``to_dict``, validated again."""
        if data.get("format") != FORMAT or data.get("kind") != KIND:
            raise InvalidRunParams(f"not a scoring config of format {FORMAT}: kind {data.get('kind')!r}")
        values = {name: data[name] for name in ("batch", "model", "model_version", "curated_dataset")}
        for stage in SCORING_STAGE_CLASSES:
            values.update(data["params"][stage])
        return cls.build(data["root"], values)

    @classmethod
    def from_json(cls, text: str) -> ScoringConfig:
        return cls.from_dict(json.loads(text))


def config_from_json(text: str) -> RunConfig | ScoringConfig:
    """A run config or a scoring config, by the JSON's ``kind``."""
    data = json.loads(text)
    return ScoringConfig.from_dict(data) if data.get("kind") == KIND else RunConfig.from_dict(data)
