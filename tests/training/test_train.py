"""Training on real Spark/TensorFlow: a run killed mid-training resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkvision.platform.layout import RUN_HISTORY, RUN_HISTORY_CSV, uri_path
from sparkvision.training.train import read_history

pytestmark = pytest.mark.integration
MODEL = "resume_cnn"


def spark_submit(project_dir: Path, args: list[str]) -> list[str]:
    submit = shutil.which("spark-submit") or str(Path(sys.executable).parent / "spark-submit")
    return [
        submit,
        "--master",
        "local[1]",
        "--conf",
        "spark.ui.enabled=false",
        str(project_dir / "spark_jobs/train.py"),
        *args,
    ]


def checkpointed_epochs(run_dir: Path) -> int:
    """The epochs the run's checkpoint holds (0 while there is none or it is being written)."""
    try:
        return int(json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def test_training_killed_mid_epoch_resumes_from_its_checkpoint(spark, tmp_path, project_dir, make_tensors):
    root = (tmp_path / "root").as_uri()
    overrides = {"model": MODEL, "architecture": "reference", "epochs": 25, "early_stopping_patience": 0}
    overrides["max_train_minutes"] = 0
    config, _ = make_tensors(root, "v1", 300, **overrides)
    run_dir = Path(uri_path(config.run_uri))
    args = ["--root", root, "dataset=fashion_mnist", "version=v1", *(f"{k}={v}" for k, v in overrides.items())]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(project_dir)}
    first = subprocess.Popen(
        spark_submit(project_dir, args),
        cwd=project_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the JVM and the Python driver
    )
    deadline = time.monotonic() + 180
    try:
        while checkpointed_epochs(run_dir) < 1:
            assert first.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished_before = checkpointed_epochs(run_dir)
    assert 1 <= finished_before < 25
    assert not (run_dir / "_SUCCESS").exists()

    second = subprocess.run(
        spark_submit(project_dir, args), cwd=project_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    resumed = re.search(r"resuming run \S+ from its checkpoint at epoch (\d+) of 25", second.stdout)
    assert resumed, second.stdout[-3000:]
    start = int(resumed.group(1)) - 1
    assert start >= 1  # not again at epoch 0
    assert start >= finished_before  # at least the epochs whose checkpoint we saw
    summary = json.loads((run_dir / RUN_HISTORY).read_text())
    assert summary["resumed_at_epoch"] == start and summary["epochs_run_now"] == 25 - start
    epochs = [int(row["epoch"]) for row in read_history(run_dir / RUN_HISTORY_CSV)]
    assert epochs == list(range(25))  # every epoch once, across both attempts
    assert re.search(r"epoch 25/25: .* images/s", second.stdout)
    for name in ("model.keras", "export/saved_model.pb", "backup", "best.weights.h5", "_SUCCESS"):
        assert (run_dir / name).exists(), name

    # A retry of a finished run trains nothing.
    from sparkvision.platform.storage import HadoopFS
    from sparkvision.training.train import train

    again = train(HadoopFS(spark), config)
    assert again["epochs"] == 25 and again["resumed_at_epoch"] == start


def test_early_stopping_and_time_budget_stop_training(spark, tmp_path, hadoop_fs, make_tensors, make_config):
    from sparkvision.training.train import train

    root = (tmp_path / "root").as_uri()
    make_tensors(root, "v1", 100)
    common = {"model": MODEL, "architecture": "reference", "epochs": 30}
    # A learning rate this small cannot improve validation accuracy for long: patience 1 stops it.
    patient = train(hadoop_fs, make_config(root, "v1", **common, learning_rate=1e-7, early_stopping_patience=1))
    assert patient["epochs"] < 30
    budget = train(hadoop_fs, make_config(root, "v1", **common, early_stopping_patience=0, max_train_minutes=0.0001))
    assert budget["epochs"] == 1  # the first epoch already passes a 6 ms budget
