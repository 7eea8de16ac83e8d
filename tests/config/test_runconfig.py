"""The run config: validation of a whole run, its identities (pinned) and its JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sparkvision.config.runconfig import InvalidRunParams, RunConfig, StaleInputError, check_fingerprint

ROOT = "file:///data"
WHEN = datetime(2026, 11, 24, tzinfo=UTC)


def test_defaults_and_the_logical_date_make_a_run():
    config = RunConfig.build(ROOT, {}, WHEN)
    assert (config.dataset, config.version, config.model) == ("fashion_mnist", "20261124", "fashion_cnn")
    assert config == RunConfig.build(ROOT, {"version": None}, WHEN)  # a retried task resolves the same run
    with pytest.raises(InvalidRunParams, match="version must be set"):
        RunConfig.build(ROOT, {})


def test_identities_are_pinned():
    """Persisted: run directories, fingerprints in manifests and the config's own file name."""
    config = RunConfig.build(ROOT, {"version": "v1"})
    assert config.run_id == "fashion_mnist-v1-1d42a610"
    assert (config.ingest_fingerprint, config.tensors_fingerprint) == ("fec97e90", "fa43aa15")
    assert config.uri == "file:///data/configs/fashion_mnist/v1/c82e5c1d5b7eb0f3.json"


def test_the_run_id_covers_what_shapes_the_data_and_nothing_else():
    base = RunConfig.build(ROOT, {"version": "v1"})
    for shaping in ({"image_shape": "32x32x1"}, {"resize_policy": "pad"}, {"drop_duplicates": True},
                    {"validation_share": 0.2}, {"seed": 7}, {"epochs": 3}, {"version": "v2"}):  # fmt: skip
        assert RunConfig.build(ROOT, {"version": "v1", **shaping}).run_id != base.run_id, shaping
    for other in ({"max_rejected_share": 0.5}, {"drift_threshold": 0.3}, {"target_file_mb": 64},
                  {"min_accuracy": 0.5}, {"max_regression": 0.1}, {"model": "other"}):  # fmt: skip
        changed = RunConfig.build(ROOT, {"version": "v1", **other})
        assert changed.run_id == base.run_id and changed.uri != base.uri, other
    ingest_only = RunConfig.build(ROOT, {"version": "v1", "epochs": 3})
    assert ingest_only.tensors_fingerprint == base.tensors_fingerprint  # the same tensors serve both runs
    reshaped = RunConfig.build(ROOT, {"version": "v1", "image_shape": "32x32x1"})
    assert reshaped.ingest_fingerprint != base.ingest_fingerprint
    assert reshaped.tensors_fingerprint != base.tensors_fingerprint


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epoch": 3}, "unknown parameter 'epoch' \\(did you mean 'epochs'\\?\\)"),
        ({"learning_rte": 0.1, "zzz": 1}, "'learning_rte' \\(did you mean 'learning_rate'\\?\\), 'zzz'"),
        ({"version": "v1\n"}, "version"),
        ({"version": "../x"}, "version"),
        ({"dataset": "a/b"}, "dataset"),
        ({"model": ""}, "model"),
        ({"epochs": 0}, "epochs"),
        ({"image_shape": "28x28"}, "image_shape"),
        ({"augment": "true"}, "augment must be boolean"),
    ],
)
def test_bad_or_unknown_parameters_are_refused_naming_them(values, message):
    with pytest.raises(InvalidRunParams, match=f"refusing the run's parameters: .*{message}"):
        RunConfig.build(ROOT, values, WHEN)


def test_a_bad_root_is_refused():
    for root in ("/data", "s3://b/x", "file:///data\n"):
        with pytest.raises(InvalidRunParams, match="storage root"):
            RunConfig.build(root, {"version": "v1"})


def test_json_round_trip_and_tampering():
    config = RunConfig.build(ROOT, {"version": "v1", "epochs": 3, "image_shape": "32x32x3"})
    assert RunConfig.from_json(config.to_json()) == config
    data = json.loads(config.to_json())
    assert data["params"]["train"]["epochs"] == 3 and data["identity"]["run_id"] == config.run_id
    data["params"]["train"]["epochs"] = 4  # edited by hand: the identities no longer match
    with pytest.raises(InvalidRunParams, match="identities"):
        RunConfig.from_dict(data)
    data["params"]["train"]["epochs"] = 0
    with pytest.raises(InvalidRunParams, match="epochs"):
        RunConfig.from_dict(data)


def test_overrides_build_a_config_as_the_form_does():
    config = RunConfig.from_overrides(ROOT, ["version=v1", "epochs=3", "augment=yes", "learning_rate=0.01"])
    assert config == RunConfig.build(ROOT, {"version": "v1", "epochs": 3, "augment": True, "learning_rate": 0.01})
    for bad in (["version=v1", "epochs"], ["version=v1", "epochs=many"], ["version=v1", "epoch=3"]):
        with pytest.raises(InvalidRunParams):
            RunConfig.from_overrides(ROOT, bad)


def test_artifacts_name_the_markers_the_sensors_wait_for():
    config = RunConfig.build(ROOT, {"version": "v1"})
    assert config.artifact("raw") == "file:///data/raw/fashion_mnist/v1/_SUCCESS"
    assert config.artifact("run") == f"file:///data/runs/fashion_cnn/{config.run_id}/_SUCCESS"
    assert config.artifact("evaluation") == f"file:///data/runs/fashion_cnn/{config.run_id}/evaluation/_SUCCESS"
    with pytest.raises(ValueError, match="unknown artifact"):
        config.artifact("models")


def test_inputs_made_with_other_parameters_are_refused():
    check_fingerprint({"fingerprint": "abc"}, "abc", "tensors", "file:///t")
    with pytest.raises(StaleInputError, match="made with other parameters"):
        check_fingerprint({"fingerprint": "abc"}, "def", "tensors", "file:///t")
