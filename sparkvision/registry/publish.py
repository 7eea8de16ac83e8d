"""Publish a blessed run as the next integer version in TensorFlow Serving layout.

``<root>/models/<model>/<version>/`` holds the SavedModel (saved_model.pb, variables/, assets/),
the Keras file, metrics.json, the evaluation plots, model_card.md and lineage.json. A version is
staged in a hidden folder and claimed by a rename that fails when the version exists, so two
publishers never share a version and nobody sees a partial one; ``LATEST`` is written last.
Publishing a run that is already published changes nothing, also when two publishers of the
same run race: each run is first claimed by ``runs/<model>/<run id>/.publish-claim`` (an atomic create), and the
publisher that loses the claim waits for the winner's version instead of making a second one.
Every publish writes ``published.json`` (model, version, uri, new) into the run directory: the
DAG's ``announce`` task reads it for the Asset event.

Roll back with ``spark-submit spark_jobs/publish.py --root <root> --model <model> --rollback-to N``:
``LATEST`` then points at version N; no version is ever changed or deleted.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import socket
import subprocess
import time
import uuid

from sparkvision.platform.catalog import latest_version, published_versions
from sparkvision.platform.layout import (
    EVAL_CONFUSION_PLOT,
    EVAL_CURVES_PLOT,
    EVAL_FILES,
    EVAL_METRICS,
    MODEL_FILE,
    RUN_EXPORT,
    RUN_PARAMS,
    RUN_PUBLISH_CLAIM,
    RUN_PUBLISHED,
    SAVED_MODEL,
    SUCCESS,
    VERSION_CARD,
    VERSION_LINEAGE,
    ModelPaths,
)
from sparkvision.platform.settings import PROJECT_DIR

log = logging.getLogger(__name__)

#: A claim older than this whose publisher is gone is taken over (a publisher killed mid-way).
STALE_CLAIM_SECONDS = 600
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
    """The run's evaluation did not bless it; it stays in runs/ and is not published (exit status 3)."""

    exit_code = 3


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
    split_counts = lineage.get("counts") or {}
    counts = " / ".join(str(split_counts.get(split, "?")) for split in ("train", "validation", "test"))
    champion = metrics.get("champion")
    against = (
        f"champion at evaluation: version {champion['version']}, test accuracy {champion['accuracy']:.4f}"
        if champion
        else "no champion at evaluation"
    )
    return f"""# {model} version {version}

Image classifier trained by sparkvision on **{lineage["dataset"]} {lineage["dataset_version"]}**
(curated content hash `{lineage["curated_content_hash"]}`), run `{lineage["run_id"]}`.

- Images (train / validation / test): {counts}
- Test accuracy: **{metrics["accuracy"]:.4f}** on {metrics["test_images"]} images, macro F1 {metrics["macro_f1"]:.4f}
- Evaluation: {metrics["reason"]}; {against}
- Parameters: `{json.dumps(train["params"], sort_keys=True)}`
- Code: git `{lineage["git_commit"]}`; packages `{json.dumps(lineage["packages"], sort_keys=True)}`
- Airflow run: `{lineage["airflow_run_id"]}`; published {lineage["published_at"]}

Serve with TensorFlow Serving (this folder is a SavedModel: input `uint8[batch, height, width, channels]`,
output class probabilities), or load `model.keras` with Keras.

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

![training curves]({EVAL_CURVES_PLOT})
![confusion matrix]({EVAL_CONFUSION_PLOT})
"""


def find_published(fs, model_paths: ModelPaths, run_id: str, content_hash: str) -> int | None:
    """The version that holds run ``run_id`` trained on ``content_hash``, or None."""
    for version in published_versions(fs, model_paths):
        lineage_uri = f"{model_paths.version(version)}/{VERSION_LINEAGE}"
        if not fs.exists(lineage_uri):
            continue
        lineage = fs.read_json(lineage_uri)
        if lineage.get("run_id") == run_id and lineage.get("curated_content_hash") == content_hash:
            return version
    return None


def publish(
    fs, model_paths: ModelPaths, run_id: str, airflow_run_id: str | None = None, wait_seconds: float = 300
) -> dict:
    """Publish run ``run_id``; return {"model", "version", "uri", "new", "reason", ...}.

    Raises NotBlessedError when the run's evaluation did not bless it.
    """
    run_uri = model_paths.run(run_id)
    evaluation = fs.readable(model_paths.evaluation(run_id))
    if not fs.exists(f"{evaluation}/{SUCCESS}"):
        raise FileNotFoundError(f"run {run_id} has no finished evaluation at {evaluation}")
    metrics = fs.read_json(f"{evaluation}/{EVAL_METRICS}")
    content_hash = fs.read_json(f"{run_uri}/{RUN_PARAMS}")["curated_content_hash"]
    if not metrics["blessed"]:
        raise NotBlessedError(f"run {run_id} is not blessed ({metrics['reason']}); it stays in {run_uri}")
    fs.mkdirs(model_paths.published)
    deadline = time.monotonic() + wait_seconds
    while True:
        version = find_published(fs, model_paths, run_id, content_hash)
        if version is not None:
            reason = f"run {run_id} is already published as version {version}; no new version"
            log.info(reason)
            return _record(fs, model_paths, run_id, version, False, reason, metrics)
        if _claim(fs, model_paths, run_id):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is claimed by another publisher that did not finish in {wait_seconds}s")
        time.sleep(0.5)  # another publisher is publishing this very run: wait for its version
    try:
        # The claim is ours; a publisher that held it before may have finished in between.
        version = find_published(fs, model_paths, run_id, content_hash)
        if version is not None:
            reason = f"run {run_id} is already published as version {version}; no new version"
            return _record(fs, model_paths, run_id, version, False, reason, metrics)
        version, previous = _publish_new(fs, model_paths, run_id, evaluation, metrics, airflow_run_id)
    finally:
        fs.delete(_claim_uri(model_paths, run_id))
    reason = f"new run {run_id} (test accuracy {metrics['accuracy']:.4f}); " + (
        f"previous latest was version {previous}" if previous else "first version of this model"
    )
    log.info("published %s as version %d: %s", model_paths.model, version, reason)
    return _record(fs, model_paths, run_id, version, True, reason, metrics)


def _claim_uri(model_paths: ModelPaths, run_id: str) -> str:
    return f"{model_paths.run(run_id)}/{RUN_PUBLISH_CLAIM}"


def _claim(fs, model_paths: ModelPaths, run_id: str) -> bool:
    """Atomically claim the right to publish ``run_id`` (False: someone else holds it)."""
    uri = _claim_uri(model_paths, run_id)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
    tmp = f"{model_paths.run(run_id)}/.claim.{uuid.uuid4().hex}.tmp"
    fs.write_bytes(tmp, json.dumps(owner).encode())
    try:
        fs.rename(tmp, uri)  # fails when the claim exists: exactly one publisher wins
        return True
    except FileExistsError:
        fs.delete(tmp)
    try:
        holder = fs.read_json(uri)
    except Exception:  # released between our rename and this read
        return False
    dead = holder.get("host") == owner["host"] and not _alive(int(holder.get("pid", 0)))
    if dead or time.time() - float(holder.get("at", 0)) > STALE_CLAIM_SECONDS:
        log.warning("taking over the stale publish claim of %s (%s)", run_id, holder)
        fs.delete(uri)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def _record(fs, model_paths: ModelPaths, run_id: str, version: int, new: bool, reason: str, metrics: dict) -> dict:
    """Write the run's published.json (what the DAG's Asset event carries) and return it."""
    result = {
        "model": model_paths.model,
        "version": version,
        "uri": model_paths.version(version),
        "run_id": run_id,
        "new": new,
        "reason": reason,
        "test_accuracy": metrics["accuracy"],
    }
    fs.write_json(f"{model_paths.run(run_id)}/{RUN_PUBLISHED}", result)
    return result


def _publish_new(
    fs, model_paths: ModelPaths, run_id: str, evaluation: str, metrics: dict, airflow_run_id: str | None
) -> tuple[int, int | None]:
    """Stage the version in a hidden folder, claim the next free integer by rename, then LATEST."""
    run_uri = model_paths.run(run_id)
    train_params = fs.read_json(f"{run_uri}/{RUN_PARAMS}")
    staging = f"{model_paths.published}/.publish-{uuid.uuid4().hex}.tmp"
    try:
        fs.copy(f"{run_uri}/{RUN_EXPORT}", staging)  # saved_model.pb, variables/, assets/
        fs.copy(f"{run_uri}/{MODEL_FILE}", f"{staging}/{MODEL_FILE}")
        for name in EVAL_FILES:
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
            "counts": train_params.get("counts"),
            "train_params": train_params,
            "test_accuracy": metrics["accuracy"],
            "previous_latest": previous,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        version = (published_versions(fs, model_paths) or [0])[-1] + 1
        while True:
            fs.write_json(f"{staging}/{VERSION_LINEAGE}", {**lineage, "version": version})
            fs.write_atomic(
                f"{staging}/{VERSION_CARD}", model_card(model_paths.model, version, metrics, lineage).encode()
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
    return version, previous


def rollback(fs, model_paths: ModelPaths, version: int) -> None:
    """Point LATEST at an earlier published version (the versions themselves never change)."""
    set_latest(fs, model_paths, version)
    log.info("LATEST of %s now points at version %d", model_paths.model, version)


def fetch_version(fs, model_paths: ModelPaths, local_dir: str, version: int | None = None) -> tuple[int, str]:
    """Copy a published version (default: LATEST) to ``local_dir``/<version>; return (version, path).

    TensorFlow reads SavedModels from local paths (no HDFS plugin ships with tensorflow-cpu), so
    consumers of an hdfs:// root load the copy: ``tf.saved_model.load(path)`` or
    ``keras.models.load_model(path + "/model.keras")``.
    """
    if version is None:
        version = latest_version(fs, model_paths)
        if version is None:
            raise FileNotFoundError(f"{model_paths.model} has no published version")
    source = model_paths.version(version)
    if not fs.exists(f"{source}/{SAVED_MODEL}"):
        raise FileNotFoundError(f"no published version {version} at {source}")
    target = f"{local_dir.rstrip('/')}/{version}"
    fs.copy_to_local(source, target)
    return version, target
