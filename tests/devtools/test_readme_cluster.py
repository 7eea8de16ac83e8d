"""The README's instructions for HDFS and a Spark cluster, run as written, in a fresh shell, through make.

One run covers what the cluster setting promises, on a small slice of Fashion-MNIST: the shell
starts empty (no variable of this session), exports the README's settings and runs `make demo`,
which runs the whole `image_training` DAG with `airflow dags test` against the standalone cluster
(2 workers of 1 core) with its root on the 3-DataNode HDFS (2 replicas); the DAG file is the
laptop's. Training takes both task slots (2 workers, the default). Midway, one DataNode is killed
when ingest starts and one executor during training: the run still publishes the usual layout,
and Spark's retry of the training stage resumes at the epoch after the last checkpoint, not at 0.

Differences from a user's shell, all outside the README's block: the clusters are the session's
(free ports substituted for the README's fixed ones), the Airflow home and the heavy-work lock
are temporary, `make -o setup` skips the installer (which `make test` ran), and `DEMO_ARGS`
keeps the run small.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sparkvision.platform.layout import ModelPaths
from tests.helpers import assert_published_model_predicts

pytestmark = pytest.mark.integration

LIMIT = 150  # images per source split
EPOCHS = 16  # tiny epochs (2 steps): long enough to kill an executor part-way
CONF = {
    "architecture": "reference",
    "epochs": EPOCHS,
    "batch_size": 64,
    "early_stopping_patience": 0,
    "max_train_minutes": 0,
    "min_accuracy": 0,
    "max_regression": 1,
}
#: What a published version holds (the same as on a laptop; see docs/training.md#publish).
PUBLISHED = {
    "assets",
    "fingerprint.pb",
    "saved_model.pb",
    "variables",
    "model.keras",
    "metrics.json",
    "report.html",
    "confusion_matrix.png",
    "training_curves.png",
    "model_card.md",
    "lineage.json",
}
EPOCH_LINE = re.compile(r"sparkvision\.training\.train: epoch (\d+)/\d+")


def readme_block(project_dir: Path) -> list[str]:
    text = (project_dir / "README.md").read_text()
    block = text.split("<!-- cluster-instructions:start", 1)[1].split("<!-- cluster-instructions:end", 1)[0]
    return block.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()


def shell_script(lines: list[str], hdfs, spark, root: str) -> str:
    """The README's block for the session's clusters: their ports, not the README's fixed ones."""
    replacements = {
        "hdfs://127.0.0.1:8020/sparkvision": f"{hdfs.uri}/{root}",
        "$PWD/.cache/hdfs/client-conf": str(hdfs.client_conf_dir),
        '"port": 9870': f'"port": {hdfs.http_port}',
        '"port": 7077': f'"port": {spark.master_port}',
    }
    script = []
    for line in lines:
        if re.match(r"make (hdfs|spark)-(start|stop)", line):
            continue  # the session's clusters are already up, and stay up for other tests
        for old, new in replacements.items():
            line = line.replace(old, new)
        if line.startswith("make demo"):
            line = line.replace("make demo", f"make -o setup demo VERSION=readme DEMO_ARGS='{demo_args()}'")
        script.append(line)
    text = "\n".join(script)
    missing = [old for old in replacements if old not in "\n".join(lines)]
    assert not missing, f"the README's block no longer has {missing}: update this test with it"
    assert "make -o setup demo" in text
    return text


def demo_args() -> str:
    return f"--limit {LIMIT} -c {json.dumps(CONF, separators=(',', ':'))}"


@pytest.mark.timeout(1200)
def test_readme_cluster_instructions_publish_through_a_datanode_and_an_executor_lost(
    project_dir, hdfs3, standalone_cluster, hadoop_fs, tmp_path
):
    root = f"readme-{tmp_path.name}"
    script = shell_script(readme_block(project_dir), hdfs3, standalone_cluster, root)
    env = {
        "HOME": os.environ["HOME"],
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        # outside the README's block: state and the heavy-work lock of this test only
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "SPARKVISION_HEAVY_LOCK": str(tmp_path / "heavy.lock"),
        "SPARKVISION_SENSOR_POKE_SECONDS": "2",
    }
    events: dict[str, float] = {}
    lines: list[str] = []
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            lines.append(line)
            if "starting task_id=ingest" in line and "datanode" not in events:
                hdfs3.kill("datanode-1")  # mid-run: ingest reads the drop and writes curated data
                events["datanode"] = time.monotonic()
            epoch = EPOCH_LINE.search(line)
            if epoch and int(epoch.group(1)) >= 2 and "executor" not in events:
                executors = standalone_cluster.executor_pids()
                assert len(executors) == 2, executors
                os.kill(executors[-1], signal.SIGKILL)  # a machine lost during training
                events["executor"] = time.monotonic()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        hdfs3.start_daemon("datanode-1")  # the session's HDFS back to three DataNodes
    output = "".join(lines)
    assert code == 0, output[-6000:]
    assert set(events) == {"datanode", "executor"}, output[-6000:]
    log_path = re.search(r"full log:\s+(\S+)", output).group(1)
    log = Path(project_dir, log_path).read_text()
    assert "WebHdfsSensor" in log and "FileSensor" not in log

    model = ModelPaths(f"{hdfs3.uri}/{root}", "fashion_cnn")
    assert hadoop_fs.read_text(model.latest_pointer).strip() == "1"
    assert set(hadoop_fs.list(model.version(1))) == PUBLISHED
    # the model really lives on HDFS (WebHDFS, the sensors' view, sees it) and serves predictions
    assert hdfs3.webhdfs_status(f"/{root}/models/fashion_cnn/1/saved_model.pb")["type"] == "FILE"
    assert_published_model_predicts(hadoop_fs, f"{hdfs3.uri}/{root}", "readme", 1, tmp_path)
    run_id = hadoop_fs.read_json(f"{model.version(1)}/lineage.json")["run_id"]
    summary = hadoop_fs.read_json(f"{model.run(run_id)}/history.json")
    assert summary["workers"] == 2 and summary["epochs"] == EPOCHS
    assert [int(e) for e in summary["history"]["workers"]] == [2] * EPOCHS
    # Spark ran the training stage again after the executor was lost; it went on from the checkpoint.
    assert len(summary["attempts"]) >= 2, summary["attempts"]
    assert summary["attempts"][-1]["start_epoch"] >= 2, summary["attempts"]
    resumed = re.findall(r"resuming run \S+ from its checkpoint at epoch (\d+) of \d+ \(attempt (\d+)", log)
    assert resumed and int(resumed[-1][0]) >= 3, log[-6000:]
    # The executors ran the code the job shipped, not this checkout.
    assert all(".zip/sparkvision/" in result["module"] for result in summary["worker_results"])
    hdfs3.wait_ready()
