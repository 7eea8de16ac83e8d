"""The models pages' data, read through the root as the api-server reads it: local files, or WebHDFS
on a real HDFS (the session's NameNode + DataNode); LATEST moved by the registry's rollback rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkvision.orchestration import io
from sparkvision.orchestration.models_view import (
    VersionInfo,
    list_models,
    models_page,
    rollback,
    run_file,
    version_file,
)
from sparkvision.orchestration.reprocess import last_error
from sparkvision.platform.layout import ModelPaths, uri_path

PNG = b"\x89PNG\r\n\x1a\nnot really"


def publish_by_hand(put, root: str) -> None:
    """Two published versions of 'cnn' (LATEST -> 2) and a run's evaluation, file by file."""
    paths = ModelPaths(root, "cnn")
    for version, data_version in ((1, "v1"), (2, "v2")):
        lineage = {
            "dataset": "fashion_mnist",
            "dataset_version": data_version,
            "run_id": f"fashion_mnist-{data_version}-abc",
            "airflow_run_id": f"manual__{data_version}+00:00",
            "test_accuracy": 0.8 + version / 100,
            "published_at": "2026-11-29T00:00:00Z",
        }
        put(f"{paths.version(version)}/lineage.json", json.dumps(lineage).encode())
        put(f"{paths.version(version)}/saved_model.pb", b"pb")
        put(f"{paths.version(version)}/training_curves.png", PNG)
        put(f"{paths.version(version)}/model_card.md", f"# cnn version {version}\n<script>x</script>".encode())
    put(paths.latest_pointer, b"2\n")
    put(f"{paths.evaluation('fashion_mnist-v2-abc')}/report.html", b"<html>report</html>")


@pytest.fixture(params=["file", "hdfs"])
def published_root(request, tmp_path, monkeypatch) -> str:
    if request.param == "file":
        root = (tmp_path / "root").as_uri()

        def put(uri: str, data: bytes) -> None:
            Path(uri_path(uri)).parent.mkdir(parents=True, exist_ok=True)
            Path(uri_path(uri)).write_bytes(data)

    else:
        pytest.importorskip("hdfs")
        cluster = request.getfixturevalue("hdfs")
        monkeypatch.setenv("AIRFLOW_CONN_WEBHDFS_DEFAULT", cluster.airflow_connection)
        root = f"{cluster.uri}/views/{tmp_path.name}"

        def put(uri: str, data: bytes) -> None:
            cluster.webhdfs_put(uri_path(uri), data)

    publish_by_hand(put, root)
    return root


@pytest.mark.integration
def test_models_listing_files_and_rollback_through_the_root(published_root):
    rows = list_models(published_root)["cnn"]
    assert [(r.version, r.latest, r.dataset_version) for r in rows] == [(2, True, "v2"), (1, False, "v1")]
    assert rows[0].test_accuracy == pytest.approx(0.82) and rows[0].airflow_run_id == "manual__v2+00:00"
    assert version_file(published_root, "cnn", 1, "training_curves.png") == (PNG, "image/png")
    assert run_file(published_root, "cnn", "fashion_mnist-v2-abc", "report.html")[0] == b"<html>report</html>"
    with pytest.raises(KeyError):
        version_file(published_root, "cnn", 1, "saved_model.pb")  # only the pages' files are served
    with pytest.raises(FileNotFoundError):
        version_file(published_root, "cnn", 1, "confusion_matrix.png")

    rollback(published_root, "cnn", 1)
    assert io.read_text(ModelPaths(published_root, "cnn").latest_pointer).strip() == "1"
    assert [r.version for r in list_models(published_root)["cnn"] if r.latest] == [1]
    with pytest.raises(ValueError, match="no published version 7"):
        rollback(published_root, "cnn", 7)
    hidden = [n for n in io.list_names(ModelPaths(published_root, "cnn").published) if n.startswith(".")]
    assert hidden == []  # the staged LATEST was renamed over the old one


def test_listing_page_escapes_and_offers_rollback_only_when_allowed():
    rows = [
        VersionInfo("cnn", 2, True, 0.91, "fashion_mnist", "v2", "r2", "manual__2026+00:00", None),
        VersionInfo("cnn", 1, False, None, "fashion_mnist", "<b>v1</b>", "r1", None, None),
    ]
    page = models_page({"cnn": rows}, "/sparkvision", can_rollback=True)
    assert "&lt;b&gt;v1&lt;/b&gt;" in page and "<b>v1</b>" not in page
    assert page.count("make LATEST") == 1 and 'action="/sparkvision/models/cnn/rollback/1"' in page
    assert "/dags/image_training/runs/manual__2026%2B00%3A00" in page
    assert "make LATEST" not in models_page({"cnn": rows}, "/sparkvision", can_rollback=False)


def test_the_error_that_failed_a_task_is_read_from_its_structured_log():
    raised = {"exc_type": "AirflowSensorTimeout", "exc_value": "the raw drop never arrived: /r/_SUCCESS"}
    cause = {"exc_type": "TaskDeferralTimeout", "exc_value": "Trigger timeout", "is_cause": True}
    details = [{**raised, "is_cause": False}, cause]
    content = [
        {"event": "Task failed with exception", "level": "error", "error_detail": details},
        {"event": "Trigger cancelled due to timeout", "level": "error"},
    ]
    assert last_error(content) == "AirflowSensorTimeout: the raw drop never arrived: /r/_SUCCESS"
    assert last_error([{"event": "boom", "level": "error"}, "plain text"]) == "boom"
    assert last_error([]) == "(no error in the log)"
