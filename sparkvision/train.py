"""Train the Keras CNN on streamed tensor shards, with per-epoch checkpoints and resume.

The run directory ``<root>/runs/<model>/<run id>/`` is named from the dataset version and a
hash of the training parameters, so a retried task finds its own checkpoints and resumes,
and a re-run of a finished training returns at once. On an HDFS root the job works in a local
mirror of the run directory and copies it up after every epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from sparkvision.layout import SUCCESS, DatasetPaths, ModelPaths, is_hdfs, uri_path
from sparkvision.params import TrainParams, run_id

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
EXPORT_DIR = "export"  # SavedModel (model.export), copied into TF Serving layout on publish
BACKUP_DIR = "backup"  # keras BackupAndRestore state: the per-epoch checkpoint
HISTORY_FILE = "history.json"
HISTORY_CSV = "history.csv"  # one row per epoch, appended across resumes
PARAMS_FILE = "train_params.json"


class RunDir:
    """A run directory on the root, worked on through a local folder (the same one on file://)."""

    def __init__(self, fs, uri: str) -> None:
        self.fs = fs
        self.uri = uri
        if is_hdfs(uri):
            self.local = Path(tempfile.gettempdir()) / "sparkvision-runs" / hashlib.sha1(uri.encode()).hexdigest()[:16]
            if self.local.exists():
                shutil.rmtree(self.local)
            if fs.exists(uri):
                self.local.parent.mkdir(parents=True, exist_ok=True)
                fs.copy_to_local(uri, str(self.local))
            self.local.mkdir(parents=True, exist_ok=True)
        else:
            self.local = Path(uri_path(uri))
            self.local.mkdir(parents=True, exist_ok=True)

    def sync(self) -> None:
        """Copy the local folder up to the root (no-op on a file:// root)."""
        if self.local != Path(uri_path(self.uri)):
            self.fs.mkdirs(self.uri.rsplit("/", 1)[0])
            with self.fs.staged_dir(self.uri) as tmp:
                self.fs.delete(tmp)
                self.fs.copy_from_local(str(self.local), tmp)


def local_tensors(fs, paths: DatasetPaths, workdir: Path) -> Path:
    """A local folder holding the tensor shards: the root itself on file://, else a copy."""
    if not is_hdfs(paths.tensors):
        return Path(uri_path(paths.tensors))
    target = workdir / "tensors"
    if not target.exists():
        log.info("copying %s to %s", paths.tensors, target)
        fs.copy_to_local(paths.tensors, str(target))
    return target


def make_callbacks(run_dir: RunDir, images_per_epoch: int) -> list:
    """Resume state, the full history (across resumes), progress logs and the per-epoch sync."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.started
            logs = logs or {}
            log.info(
                "epoch %d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f  %.0f images/s (%.1fs)",
                epoch + 1,
                logs.get("loss", float("nan")),
                logs.get("accuracy", float("nan")),
                logs.get("val_loss", float("nan")),
                logs.get("val_accuracy", float("nan")),
                images_per_epoch / seconds,
                seconds,
            )
            run_dir.sync()

    return [
        keras.callbacks.BackupAndRestore(str(run_dir.local / BACKUP_DIR), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run_dir.local / HISTORY_CSV), append=True),
        EpochLog(),
    ]


def train(fs, paths: DatasetPaths, model_paths: ModelPaths, params: TrainParams) -> dict:
    """Train (or resume, or find finished) the run of ``params`` on ``paths``; return its summary."""
    import keras

    from sparkvision import tfdata
    from sparkvision.model import build_model

    if not fs.exists(f"{paths.tensors}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete tensors at {paths.tensors} (no {SUCCESS})")
    rid = run_id(paths.dataset, paths.version, params)
    run_uri = model_paths.run(rid)
    if fs.exists(f"{run_uri}/{SUCCESS}"):
        log.info("run %s already finished; nothing to train", run_uri)
        return {"run_id": rid, "run_uri": run_uri, **json.loads(fs.read_text(f"{run_uri}/{HISTORY_FILE}"))}
    stats = fs.read_json(f"{paths.tensors}/stats.json")
    shape = tuple(stats["image_shape"])
    with tempfile.TemporaryDirectory(prefix="sparkvision-train-") as work:
        run_dir = RunDir(fs, run_uri)
        tensors = local_tensors(fs, paths, Path(work))
        (run_dir.local / PARAMS_FILE).write_text(
            json.dumps(
                {
                    "run_id": rid,
                    "dataset": paths.dataset,
                    "version": paths.version,
                    "params": asdict(params),
                    "tensors": paths.tensors,
                    "curated_content_hash": stats["curated_content_hash"],
                },
                indent=2,
            )
        )
        keras.utils.set_random_seed(params.seed)
        train_ds = tfdata.make_dataset(tensors / "train", shape, params.batch_size, params.shuffle_buffer, params.seed)
        val_ds = (
            tfdata.make_dataset(tensors / "validation", shape, params.batch_size)
            if stats["counts"]["validation"]
            else None
        )
        model = build_model(params.architecture, shape, stats["num_classes"], params.learning_rate)
        log.info(
            "training %s (%d parameters) on %d images for %d epochs, run %s",
            model.name,
            model.count_params(),
            stats["counts"]["train"],
            params.epochs,
            run_uri,
        )
        started = time.monotonic()
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=params.epochs,
            verbose=0,
            callbacks=make_callbacks(run_dir, stats["counts"]["train"]),
        )
        seconds = time.monotonic() - started
        model.save(run_dir.local / MODEL_FILE)
        export = run_dir.local / EXPORT_DIR
        if export.exists():
            shutil.rmtree(export)
        model.export(str(export), format="tf_saved_model", verbose=False)
        summary = {
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "epochs_run_now": len(history.epoch),
            "train_seconds": round(seconds, 1),
            "architecture": params.architecture,
            "parameters": model.count_params(),
        }
        (run_dir.local / HISTORY_FILE).write_text(json.dumps(summary, indent=2))
        (run_dir.local / SUCCESS).touch()
        run_dir.sync()
    if run_dir.local != Path(uri_path(run_uri)):
        shutil.rmtree(run_dir.local, ignore_errors=True)
    log.info("run %s finished in %.1fs", run_uri, seconds)
    return {"run_id": rid, "run_uri": run_uri, **summary}
