"""The scoring config (batch_inference): validation, paths, pinning and its JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sparkvision.config.runconfig import InvalidRunParams, RunConfig
from sparkvision.config.scoring import ScoringConfig, config_from_json

ROOT = "hdfs://namenode:8020/sv"
WHEN = datetime(2026, 11, 29, tzinfo=UTC)


def test_defaults_and_the_logical_date_make_a_scoring_run():
    config = ScoringConfig.build(ROOT, {}, WHEN)
    assert (config.batch, config.model, config.model_version, config.curated_dataset) == (
        "20261129",
        "fashion_cnn",
        None,
        None,
    )
    assert (config.score.top_k, config.score.rescore) == (3, False)
    assert config.source == f"{ROOT}/incoming/20261129" and not config.labelled
    assert config.artifact("batch") == f"{ROOT}/incoming/20261129/_SUCCESS"
    with pytest.raises(ValueError, match="not pinned"):
        config.artifact("predictions")
    with pytest.raises(InvalidRunParams, match="batch must be set"):
        ScoringConfig.build(ROOT, {})


def test_pinning_the_model_version_names_the_output():
    pinned = ScoringConfig.build(ROOT, {"batch": "b1"}).pinned(3)
    assert pinned.output == f"{ROOT}/predictions/fashion_cnn/3/b1"
    assert pinned.artifact("predictions") == f"{ROOT}/predictions/fashion_cnn/3/b1/_SUCCESS"
    assert pinned.uri.startswith(f"{ROOT}/predictions/fashion_cnn/configs/b1/") and pinned.uri.endswith(".json")
    assert pinned.uri != ScoringConfig.build(ROOT, {"batch": "b1"}).uri  # the pinned version is in the content
    with pytest.raises(ValueError, match="positive integers"):
        pinned.pinned(0)


def test_a_curated_version_is_scored_under_its_own_batch_name():
    config = ScoringConfig.build(ROOT, {"batch": "v1", "curated_dataset": "fashion_mnist", "model_version": 2})
    assert config.labelled and config.source == f"{ROOT}/curated/fashion_mnist/v1"
    assert config.output == f"{ROOT}/predictions/fashion_cnn/2/fashion_mnist.v1"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch": "b1", "topk": 3}, "unknown parameter 'topk' \\(did you mean 'top_k'\\?\\)"),
        ({"batch": "b1", "epochs": 3}, "unknown parameter 'epochs'"),  # a training parameter is not one
        ({"batch": "../x"}, "batch"),
        ({"batch": "b1\n"}, "batch"),
        ({"batch": "b1", "model_version": 0}, "model_version"),
        ({"batch": "b1", "model_version": "3"}, "model_version must be integer"),
        ({"batch": "b1", "top_k": 0}, "top_k"),
        ({"batch": "b1", "curated_dataset": "a/b"}, "curated_dataset"),
        ({"batch": "x" * 40, "curated_dataset": "y" * 30}, "invalid batch"),  # the output name is too long
    ],
)
def test_bad_parameters_are_refused_with_their_name(values, message):
    with pytest.raises(InvalidRunParams, match=message):
        ScoringConfig.build(ROOT, values)


def test_overrides_parse_like_the_form_and_json_round_trips():
    config = ScoringConfig.from_overrides(ROOT, ["batch=b7", "model_version=4", "top_k=5", "rescore=true"])
    assert (config.model_version, config.score.top_k, config.score.rescore) == (4, 5, True)
    assert ScoringConfig.from_overrides(ROOT, ["batch=b7", "model_version="]).model_version is None
    assert ScoringConfig.from_json(config.to_json()) == config
    assert config_from_json(config.to_json()) == config
    run = RunConfig.build(ROOT, {"version": "v1"})
    assert config_from_json(run.to_json()) == run
    with pytest.raises(InvalidRunParams, match="did you mean 'top_k'"):
        ScoringConfig.from_overrides(ROOT, ["batch=b7", "topk=5"])
    data = json.loads(config.to_json())
    data["kind"] = "other"
    with pytest.raises(InvalidRunParams, match="not a scoring config"):
        ScoringConfig.from_dict(data)


def test_the_predictions_fingerprint_follows_what_changes_them():
    base = ScoringConfig.build(ROOT, {"batch": "b1"}).pinned(1)
    same = base.predictions_fingerprint("run-a")
    again = ScoringConfig.build(ROOT, {"batch": "b1", "rescore": True}).pinned(1)
    assert again.predictions_fingerprint("run-a") == same
    for other in (
        ScoringConfig.build(ROOT, {"batch": "b1", "top_k": 5}).pinned(1).predictions_fingerprint("run-a"),
        base.pinned(2).predictions_fingerprint("run-a"),
        base.predictions_fingerprint("run-b"),
        ScoringConfig.build(ROOT, {"batch": "b2"}).pinned(1).predictions_fingerprint("run-a"),
    ):
        assert other != same
