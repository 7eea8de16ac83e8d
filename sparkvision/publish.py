"""Publish a blessed run as the next integer version in TensorFlow Serving layout.

``<root>/models/<model>/<version>/`` holds the SavedModel (saved_model.pb, variables/, assets/),
the Keras file, metrics.json, the evaluation plots, model_card.md and lineage.json. A version is
staged in a hidden folder and claimed by a rename that fails when the version exists, so two
publishers never share a version and nobody sees a partial one; ``LATEST`` is written last.
Publishing a run that is already published changes nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import time
import uuid

from sparkvision.evaluate import EVALUATION_DIR, METRICS_FILE
from sparkvision.layout import SUCCESS, ModelPaths
from sparkvision.settings import PROJECT_DIR
from sparkvision.train import EXPORT_DIR, MODEL_FILE, PARAMS_FILE

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
PACKAGES = (
    "sparkvision",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "pyspark",
    "apache-airflow",
    "opencv-python-headless",
    "pyarrow",
    "numpy",
)


class NotBlessedError(RuntimeError):
    """The run's evaluation did not bless it; it stays in runs/ and is not published."""


def published_versions(fs, model_paths: ModelPaths) -> list[int]:
    """The integer versions present under models/<model>/, ascending."""
    return sorted(int(name) for name in fs.list(model_paths.published) if name.isdigit())


def latest_version(fs, model_paths: ModelPaths) -> int | None:
    """The version LATEST points at, or None when nothing is published."""
    if not fs.exists(model_paths.latest_pointer):
        return None
    return int(fs.read_text(model_paths.latest_pointer).strip())


def set_latest(fs, model_paths: ModelPaths, version: int) -> None:
    """Point LATEST at ``version`` (atomically); the version must exist."""
    if version not in published_versions(fs, model_paths):
        raise ValueError(f"{model_paths.model} has no published version {version}")
    fs.write_atomic(model_paths.latest_pointer, f"{version}\n".encode())


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    if os.environ.get("SPARKVISION_GIT_COMMIT"):
        return os.environ["SPARKVISION_GIT_COMMIT"]
    try:
        return subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def model_card(model: str, version: int, metrics: dict, lineage: dict) -> str:
    per_class = "\n".join(
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in metrics["per_class"].items()
    )
    train = lineage["train_params"]
    return f"""# {model} version {version}

Image classifier trained by sparkvision on **{lineage["dataset"]} {lineage["dataset_version"]}**
(curated content hash `{lineage["curated_content_hash"]}`), run `{lineage["run_id"]}`.

- Test accuracy: **{metrics["accuracy"]:.4f}** on {metrics["test_images"]} images, macro F1 {metrics["macro_f1"]:.4f}
- Evaluation: {metrics["reason"]}
- Parameters: `{json.dumps(train["params"], sort_keys=True)}`
- Code: git `{lineage["git_commit"]}`; packages `{json.dumps(lineage["packages"], sort_keys=True)}`
- Airflow run: `{lineage["airflow_run_id"]}`; published {lineage["published_at"]}

Serve with TensorFlow Serving (this folder is a SavedModel: input `uint8[batch, height, width, channels]`,
output class probabilities), or load `model.keras` with Keras.

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

![training curves](training_curves.png)
![confusion matrix](confusion_matrix.png)
"""


def publish(fs, model_paths: ModelPaths, run_id: str, airflow_run_id: str | None = None) -> dict:
    """Publish run ``run_id``; return {"version", "uri", "new", "reason"}."""
    run_uri = model_paths.run(run_id)
    evaluation = f"{run_uri}/{EVALUATION_DIR}"
    if not fs.exists(f"{evaluation}/{SUCCESS}"):
        raise FileNotFoundError(f"run {run_id} has no finished evaluation at {evaluation}")
    metrics = fs.read_json(f"{evaluation}/{METRICS_FILE}")
    if not metrics["blessed"]:
        raise NotBlessedError(f"run {run_id} is not blessed ({metrics['reason']}); it stays in {run_uri}")
    for version in published_versions(fs, model_paths):
        lineage_uri = f"{model_paths.version(version)}/{LINEAGE_FILE}"
        if fs.exists(lineage_uri) and fs.read_json(lineage_uri).get("run_id") == run_id:
            reason = f"run {run_id} is already published as version {version}; no new version"
            log.info(reason)
            return {"version": version, "uri": model_paths.version(version), "new": False, "reason": reason}

    train_params = fs.read_json(f"{run_uri}/{PARAMS_FILE}")
    fs.mkdirs(model_paths.published)
    staging = f"{model_paths.published}/.publish-{uuid.uuid4().hex}.tmp"
    try:
        fs.copy(f"{run_uri}/{EXPORT_DIR}", staging)  # saved_model.pb, variables/, assets/
        fs.copy(f"{run_uri}/{MODEL_FILE}", f"{staging}/{MODEL_FILE}")
        for name in (METRICS_FILE, "confusion_matrix.png", "training_curves.png", "report.html"):
            fs.copy(f"{evaluation}/{name}", f"{staging}/{name}")
        previous = latest_version(fs, model_paths)
        lineage = {
            "model": model_paths.model,
            "run_id": run_id,
            "airflow_run_id": airflow_run_id,
            "dataset": metrics["dataset"],
            "dataset_version": metrics["version"],
            "curated_content_hash": train_params["curated_content_hash"],
            "tensors": train_params["tensors"],
            "train_params": train_params,
            "test_accuracy": metrics["accuracy"],
            "previous_latest": previous,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        version = (published_versions(fs, model_paths) or [0])[-1] + 1
        while True:
            fs.write_json(f"{staging}/{LINEAGE_FILE}", {**lineage, "version": version})
            fs.write_atomic(
                f"{staging}/model_card.md", model_card(model_paths.model, version, metrics, lineage).encode()
            )
            try:
                fs.rename(staging, model_paths.version(version))  # the atomic claim of the version
                break
            except FileExistsError:
                log.info("version %d was claimed by another publisher; trying %d", version, version + 1)
                version += 1
    except BaseException:
        fs.delete(staging)
        raise
    # LATEST goes to the highest version, so racing publishers converge on the same pointer.
    set_latest(fs, model_paths, published_versions(fs, model_paths)[-1])
    reason = f"new run {run_id} (test accuracy {metrics['accuracy']:.4f}); " + (
        f"previous latest was version {previous}" if previous else "first version of this model"
    )
    log.info("published %s as version %d: %s", model_paths.model, version, reason)
    return {"version": version, "uri": model_paths.version(version), "new": True, "reason": reason}


def rollback(fs, model_paths: ModelPaths, version: int) -> None:
    """Point LATEST at an earlier published version (the versions themselves never change)."""
    set_latest(fs, model_paths, version)
    log.info("LATEST of %s now points at version %d", model_paths.model, version)
