from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from sparkvision.platform.layout import (
    SAFE_NAME_PATTERN,
    DatasetPaths,
    InvalidNameError,
    ModelPaths,
    is_hdfs,
    uri_path,
    validate_name,
    validate_root,
)


@pytest.mark.parametrize("name", ["fashion_mnist", "v1", "2026-11-25", "a.b-c_d", "X" * 64])
def test_safe_names_pass(name):
    assert validate_name(name, "dataset") == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "-v1", ".hidden", "_tmp", "a b", "é", "x" * 65, None, 3, "v1\n", "v1\r\n"]
)
def test_unsafe_names_are_refused_with_what_and_why(name):
    with pytest.raises(InvalidNameError, match="invalid version"):
        validate_name(name, "version")


def test_dataset_paths_follow_the_storage_layout():
    paths = DatasetPaths("hdfs://nn:8020/sv/", "fashion_mnist", "v1")
    assert paths.raw == "hdfs://nn:8020/sv/raw/fashion_mnist/v1"
    assert paths.curated == "hdfs://nn:8020/sv/curated/fashion_mnist/v1"
    assert paths.tensor_split("train") == "hdfs://nn:8020/sv/tensors/fashion_mnist/v1/train"
    with pytest.raises(ValueError):
        paths.tensor_split("holdout")


def test_model_paths_follow_the_storage_layout():
    paths = ModelPaths("file:///data", "fashion_cnn")
    assert paths.run("r1") == "file:///data/runs/fashion_cnn/r1"
    assert paths.version(3) == "file:///data/models/fashion_cnn/3"
    assert paths.latest_pointer == "file:///data/models/fashion_cnn/LATEST"
    assert paths.predictions(3, "b1") == "file:///data/predictions/fashion_cnn/3/b1"
    for bad in (0, -1, "2"):
        with pytest.raises(ValueError):
            paths.version(bad)


def test_names_are_checked_before_any_path_exists():
    with pytest.raises(InvalidNameError):
        DatasetPaths("file:///data", "fashion_mnist", "../../etc")
    with pytest.raises(InvalidNameError):
        ModelPaths("file:///data", "a/b")


@pytest.mark.parametrize("root", ["/data", "s3://bucket/x", "file://relative", "hdfs://nn:8020"])
def test_roots_must_be_absolute_file_or_hdfs_uris(root):
    with pytest.raises(ValueError, match="invalid storage root"):
        validate_root(root)


def test_uri_helpers():
    assert is_hdfs("hdfs://nn:8020/x") and not is_hdfs("file:///x")
    assert uri_path("hdfs://nn:8020/sv/raw") == "/sv/raw"
    assert uri_path("file:///tmp/a") == "/tmp/a"


HOSTILE = ["v1\n", "v1\n\n", "../x", "a/b", "", " v1", "v1 ", "x" * 65, "v1\u2028", "é"]
GOOD = ["v1", "2026-11-25", "a.b-c_d", "X" * 64]


def test_json_schema_pattern_admits_nothing_after_the_name_in_python():
    """Airflow checks Params with jsonschema, which *searches* the pattern with Python's re."""
    assert [bool(re.search(SAFE_NAME_PATTERN, name)) for name in GOOD] == [True] * len(GOOD)
    assert [bool(re.search(SAFE_NAME_PATTERN, name)) for name in HOSTILE] == [False] * len(HOSTILE)


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js to run the browser's regex engine")
def test_json_schema_pattern_means_the_same_in_javascript():
    """The trigger form checks the same pattern in the browser (ECMAScript regex)."""
    script = (
        "const p = new RegExp(process.argv[1], 'u');"
        "console.log(JSON.stringify(JSON.parse(process.argv[2]).map(s => p.test(s))));"
    )
    names = GOOD + HOSTILE
    out = subprocess.run(
        ["node", "-e", script, SAFE_NAME_PATTERN, json.dumps(names)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [True] * len(GOOD) + [False] * len(HOSTILE)
