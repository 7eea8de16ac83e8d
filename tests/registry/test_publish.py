"""Evaluate and publish on real Spark/TensorFlow, on a file:// and an HDFS root.

The published SavedModel serves the Keras model's predictions; a worse model is not published;
racing publishers never share a version, never leave a partial one and publish a run only once.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from sparkvision.platform.layout import ModelPaths

pytestmark = pytest.mark.integration
TRAIN = {"model": "base", "architecture": "reference", "epochs": 3, "early_stopping_patience": 0, "min_accuracy": 0.3}
ROLLBACK_ARGS = ("--model", "rollback", "--to", "1")
VERSION_FILES = ("saved_model.pb", "variables", "model.keras", "model_card.md", "lineage.json", "metrics.json")


@pytest.fixture(scope="module", params=["file", "hdfs"])
def trained(request, spark, tmp_path_factory, make_tensors, make_config):
    """A root with a tiny tensorized dataset and one trained, evaluated (blessed) run."""
    from sparkvision.evaluation.evaluate import evaluate
    from sparkvision.platform.storage import HadoopFS
    from sparkvision.training.train import train

    fs = HadoopFS(spark)
    local_root = (tmp_path_factory.mktemp("publish") / "root").as_uri()
    local, _ = make_tensors(local_root, "v1", 250, **TRAIN)
    if request.param == "file":
        config = local
    else:
        # Only the tensors go to HDFS (a handful of files): the raw drop's 500 PNGs would take
        # minutes to create one by one on the test HDFS, and ingest is not under test here.
        config = make_config(f"{request.getfixturevalue('hdfs').uri}/publish-{uuid.uuid4().hex[:8]}", "v1", **TRAIN)
        fs.copy(local.paths.tensors, config.paths.tensors)
    run = train(fs, config)
    metrics = evaluate(spark, config)
    assert metrics["blessed"], metrics["reason"]
    return {"fs": fs, "root": config.root, "config": config, "paths": config.paths, "run": run, "metrics": metrics}


def clone_run(ctx: dict, model: str, run_id: str) -> None:
    """A copy of the trained run under another model name and run id (a second blessed run)."""
    ctx["fs"].copy(ctx["run"]["run_uri"], ModelPaths(ctx["root"], model).run(run_id))


def test_published_savedmodel_predicts_like_the_keras_model(trained, tmp_path):
    import keras
    import tensorflow as tf

    from sparkvision.platform.catalog import latest_version
    from sparkvision.platform.layout import uri_path
    from sparkvision.registry.publish import fetch_version, publish
    from sparkvision.training import tfdata
    from sparkvision.training.train import local_tensors

    fs, model_paths = trained["fs"], ModelPaths(trained["root"], "serve")
    clone_run(trained, "serve", trained["run"]["run_id"])
    result = publish(fs, model_paths, trained["run"]["run_id"], airflow_run_id="manual__1")
    assert result["new"] and result["version"] == 1 and latest_version(fs, model_paths) == 1
    names = fs.list(model_paths.version(1))
    assert set(VERSION_FILES) <= set(names), names
    lineage = fs.read_json(f"{model_paths.version(1)}/lineage.json")
    assert lineage["dataset_version"] == "v1" and lineage["curated_content_hash"]
    assert lineage["airflow_run_id"] == "manual__1" and lineage["run_id"] == trained["run"]["run_id"]
    assert lineage["train_params"]["params"]["epochs"] == 3 and "keras" in lineage["packages"]
    card = fs.read_text(f"{model_paths.version(1)}/model_card.md")
    assert "Test accuracy" in card and "confusion_matrix.png" in card and "v1" in card
    assert fs.read_json(f"{model_paths.run(trained['run']['run_id'])}/published.json")["version"] == 1

    version, local = fetch_version(fs, model_paths, str(tmp_path / "served"))
    assert version == 1
    serving = tf.saved_model.load(local)
    model = keras.models.load_model(f"{local}/model.keras")
    tensors = local_tensors(fs, trained["paths"].tensors, tmp_path) if trained["root"].startswith("hdfs") else None
    test_dir = (tensors / "test") if tensors else f"{uri_path(trained['paths'].tensors)}/test"
    x = np.concatenate([c for c, _ in tfdata.iter_chunks(tfdata.shard_files(test_dir), (28, 28, 1), seed=None)])
    assert len(x) == 250
    served = serving.serve(tf.constant(x)).numpy()
    direct = model.predict(x, verbose=0)
    np.testing.assert_allclose(served, direct, atol=1e-5)
    assert (served.argmax(1) == direct.argmax(1)).all()
    # publishing the same run again makes no new version
    again = publish(fs, model_paths, trained["run"]["run_id"])
    assert not again["new"] and again["version"] == 1
    assert [name for name in fs.list(model_paths.published) if not name.startswith(".")] == ["1", "LATEST"]


def test_a_worse_model_is_not_published(trained, make_config, spark):
    from sparkvision.evaluation.evaluate import evaluate
    from sparkvision.platform.catalog import latest_version, published_versions
    from sparkvision.registry.publish import NotBlessedError, publish
    from sparkvision.training.train import train

    fs, model_paths = trained["fs"], ModelPaths(trained["root"], "guarded")
    clone_run(trained, "guarded", trained["run"]["run_id"])
    publish(fs, model_paths, trained["run"]["run_id"])  # the champion
    # Deliberately worse: one epoch at a learning rate too small to learn anything.
    params = {**TRAIN, "model": "guarded", "epochs": 1, "learning_rate": 1e-7, "min_accuracy": 0.0}
    config = make_config(trained["root"], "v1", **params)
    worse = train(fs, config)
    metrics = evaluate(spark, config)
    assert not metrics["blessed"] and "worse than the champion" in metrics["reason"]
    assert metrics["champion"]["version"] == 1
    assert metrics["champion"]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])
    with pytest.raises(NotBlessedError, match="not blessed"):
        publish(fs, model_paths, worse["run_id"])
    assert published_versions(fs, model_paths) == [1] and latest_version(fs, model_paths) == 1
    assert fs.exists(f"{model_paths.run(worse['run_id'])}/model.keras")  # it stays in runs/


def test_racing_publishers_never_share_a_version(trained):
    from sparkvision.platform.catalog import latest_version, published_versions
    from sparkvision.registry.publish import publish

    fs, model_paths = trained["fs"], ModelPaths(trained["root"], "race")
    for run in ("run-a", "run-b"):
        clone_run(trained, "race", run)
    barrier = threading.Barrier(4)
    results, errors = {}, []

    def publisher(name: str, run: str) -> None:
        try:
            barrier.wait()
            results[name] = publish(fs, model_paths, run)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=publisher, args=(name, run))
        for name, run in (("a1", "run-a"), ("b1", "run-b"), ("a2", "run-a"), ("b2", "run-b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert published_versions(fs, model_paths) == [1, 2]
    assert {results["a1"]["version"], results["b1"]["version"]} == {1, 2}
    assert results["a1"]["version"] == results["a2"]["version"]
    assert results["b1"]["version"] == results["b2"]["version"]
    assert sorted(r["new"] for r in results.values()) == [False, False, True, True]
    assert latest_version(fs, model_paths) == 2
    for version in (1, 2):
        assert set(VERSION_FILES) <= set(fs.list(model_paths.version(version)))
        lineage = fs.read_json(f"{model_paths.version(version)}/lineage.json")
        assert lineage["version"] == version
    assert {fs.read_json(f"{model_paths.version(v)}/lineage.json")["run_id"] for v in (1, 2)} == {"run-a", "run-b"}
    leftovers = [name for name in fs.list(model_paths.published) if name.startswith(".publish-")]
    assert not leftovers and [name for name in fs.list(model_paths.published) if not name.isdigit()] == ["LATEST"]
    for run in ("run-a", "run-b"):
        assert not [name for name in fs.list(model_paths.run(run)) if "claim" in name]


def test_rollback_points_latest_at_an_earlier_version(trained, project_dir):
    import subprocess
    import sys

    from sparkvision.platform.catalog import latest_version
    from sparkvision.registry.publish import publish, rollback

    if trained["root"].startswith("hdfs"):
        pytest.skip("rollback only rewrites LATEST: the same code on both roots, checked on file:// (faster)")
    fs, model_paths = trained["fs"], ModelPaths(trained["root"], "rollback")
    for run in ("run-1", "run-2"):
        clone_run(trained, "rollback", run)
        publish(fs, model_paths, run)
    assert latest_version(fs, model_paths) == 2
    done = subprocess.run(
        [sys.executable, str(project_dir / "spark_jobs/rollback.py"), "--root", trained["root"], *ROLLBACK_ARGS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project_dir,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert latest_version(fs, model_paths) == 1 and fs.exists(model_paths.version(2))
    with pytest.raises(ValueError, match="no published version 7"):
        rollback(fs, model_paths, 7)
