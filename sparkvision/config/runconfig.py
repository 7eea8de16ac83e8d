"""The run config: one run's validated parameters and the identities derived from them.

The DAG's first task (``resolve``) builds it from the trigger's parameters, refusing unknown
names and bad values before any path is built, and commits it as JSON under
``<root>/configs/<dataset>/<version>/<config hash>.json``; XCom carries only that URI. Every
Spark job reads it (``--run-config URI``), or builds one from ``key=value`` overrides when run by
hand. An example: docs/run-config.md.

Identities (the ``identity`` block of the JSON):

- ``ingest``: a hash of the ingest parameters that shape the curated data; recorded in the
  curated manifest.
- ``tensors``: the same over the ingest and split parameters; recorded in the tensors' stats.json.
- ``run_id``: ``<dataset>-<version>-<hash of the ingest, split and training parameters>``; the
  run directory also records the content hash of the tensors it was trained on, and a finished
  run is reused only when both match.

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
    BY_NAME,
    PARAMETERS,
    STAGE_CLASSES,
    EvalParams,
    IngestParams,
    SplitParams,
    TrainParams,
    fingerprint,
    parameters,
    unknown_names_message,
)
from sparkvision.platform.layout import DatasetPaths, InvalidNameError, ModelPaths, validate_root

#: Bumped when the JSON's shape changes.
FORMAT = 1


class InvalidRunParams(ValueError):
    """A parameter of the run that cannot be used; the message says which and why."""


class StaleInputError(RuntimeError):
    """An input made with other parameters than the run's (a concurrent run replaced it)."""


def check_fingerprint(recorded: Mapping[str, Any], expected: str, what: str, uri: str) -> None:
    """Refuse an input whose recorded ``fingerprint`` is not the run's: never mix old and new."""
    if recorded.get("fingerprint") != expected:
        raise StaleInputError(
            f"{uri} holds {what} made with other parameters (fingerprint {recorded.get('fingerprint')}, "
            f"this run expects {expected}); re-run the run's earlier stages"
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything one run of the pipeline needs to know, validated."""

    DECLARED: ClassVar = PARAMETERS

    root: str
    dataset: str
    version: str
    model: str
    ingest: IngestParams
    split: SplitParams
    train: TrainParams
    evaluate: EvalParams

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, root: str, values: Mapping[str, Any], when: datetime | None = None) -> RunConfig:
        """Validate ``values`` (parameter name -> value; missing ones take their defaults).

        An empty ``version`` becomes ``when``'s date (``YYYYMMDD``): the run's logical date.
        Raises InvalidRunParams naming the parameter, also for a name that is not a parameter.
        """
        unknown = unknown_names_message(values, BY_NAME)
        if unknown:
            raise InvalidRunParams(f"refusing the run's parameters: {unknown}")
        try:
            checked = {p.name: p.check(values.get(p.name, p.default)) for p in PARAMETERS}
            if checked["version"] is None:
                if when is None:
                    raise ValueError("version must be set (no logical date to derive it from)")
                checked["version"] = when.strftime("%Y%m%d")
            return cls(
                root=validate_root(root),
                dataset=checked["dataset"],
                version=checked["version"],
                model=checked["model"],
                **{
                    stage: section(**{p.name: checked[p.name] for p in parameters(stage)})
                    for stage, section in STAGE_CLASSES.items()
                },
            )
        except (InvalidNameError, ValueError, TypeError) as exc:
            raise InvalidRunParams(f"refusing the run's parameters: {exc}") from exc

    @classmethod
    def from_overrides(cls, root: str, overrides: list[str]) -> RunConfig:
        """Build from ``key=value`` strings (a hand-run job); ``version`` must be among them."""
        values: dict[str, Any] = {}
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise InvalidRunParams(f"refusing the run's parameters: expected key=value, got {item!r}")
            if key not in BY_NAME:
                values[key] = text  # refused by build(), with a hint
                continue
            try:
                values[key] = BY_NAME[key].parse(text)
            except ValueError as exc:
                raise InvalidRunParams(f"refusing the run's parameters: {exc}") from exc
        return cls.build(root, values)

    # -- identities and paths ---------------------------------------------------------------

    @property
    def title(self) -> str:
        return f"{self.dataset} {self.version} ({self.run_id})"

    @property
    def ingest_fingerprint(self) -> str:
        return fingerprint(self.ingest)

    @property
    def tensors_fingerprint(self) -> str:
        return fingerprint(self.ingest, self.split)

    @property
    def run_id(self) -> str:
        return f"{self.dataset}-{self.version}-{fingerprint(self.ingest, self.split, self.train)}"

    @property
    def paths(self) -> DatasetPaths:
        return DatasetPaths(self.root, self.dataset, self.version)

    @property
    def model_paths(self) -> ModelPaths:
        return ModelPaths(self.root, self.model)

    @property
    def run_uri(self) -> str:
        return self.model_paths.run(self.run_id)

    @property
    def uri(self) -> str:
        """Where this config is committed: named by the hash of its content."""
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
        return f"{self.paths.configs}/{digest}.json"

    def artifact(self, name: str) -> str:
        """The ``_SUCCESS`` marker of one of the run's artifacts (what the DAG's sensors wait for)."""
        markers = {
            "raw": self.paths.raw,
            "curated": self.paths.curated,
            "tensors": self.paths.tensors,
            "run": self.run_uri,
            "evaluation": self.model_paths.evaluation(self.run_id),
        }
        if name not in markers:
            raise ValueError(f"unknown artifact {name!r}; expected one of {sorted(markers)}")
        return f"{markers[name]}/_SUCCESS"

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "root": self.root,
            "dataset": self.dataset,
            "version": self.version,
            "model": self.model,
            "params": {stage: dataclasses.asdict(getattr(self, stage)) for stage in STAGE_CLASSES},
            "identity": {
                "ingest": self.ingest_fingerprint,
                "tensors": self.tensors_fingerprint,
                "run_id": self.run_id,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Read a config written by ``to_dict``: validated again, and its identities checked."""
        if data.get("format") != FORMAT:
            raise InvalidRunParams(f"run config format {data.get('format')!r} is not {FORMAT}")
        values = {"dataset": data["dataset"], "version": data["version"], "model": data["model"]}
        for stage in STAGE_CLASSES:
            values.update(data["params"][stage])
        config = cls.build(data["root"], values)
        if data.get("identity") != config.to_dict()["identity"]:
            raise InvalidRunParams(
                f"run config identities {data.get('identity')} do not match its parameters "
                f"({config.to_dict()['identity']}): written by another version of sparkvision?"
            )
        return config

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))
