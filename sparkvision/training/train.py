"""Train the Keras CNN on streamed tensor shards, with per-epoch checkpoints and resume.

The run directory ``<root>/runs/<model>/<run id>/`` is named from the dataset version and a
hash of the training parameters, so a retried task finds its own checkpoint and resumes at the
epoch after the last finished one, and a re-run of a finished training returns at once. On an
HDFS root the job works in a local mirror of the run directory and copies it up after every
epoch.

Run directory::

    train_params.json   the run's parameters and input (dataset version, content hash)
    backup/             Keras BackupAndRestore state: weights + optimizer + epoch (every epoch)
    best.weights.h5     the weights to export: the latest epoch within 0.002 of the best val_accuracy
    history.csv         one row per epoch (loss, accuracy, val_*, seconds, images/s), across resumes
    history.json        the summary once training finished
    model.keras         the final model (best weights), export/ its SavedModel; then _SUCCESS
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from sparkvision.config.params import TrainParams
from sparkvision.config.runconfig import RunConfig, check_fingerprint
from sparkvision.platform.layout import (
    MODEL_FILE,
    RUN_BACKUP,
    RUN_BEST_WEIGHTS,
    RUN_EXPORT,
    RUN_HISTORY,
    RUN_HISTORY_CSV,
    RUN_PARAMS,
    SUCCESS,
    TENSOR_STATS,
    is_hdfs,
    uri_path,
)

log = logging.getLogger(__name__)

MONITOR = "val_accuracy"
#: Validation accuracy within this of the best counts as a tie; ties go to the later epoch.
BEST_TOLERANCE = 0.002


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


def local_tensors(fs, tensors_uri: str, workdir: Path) -> Path:
    """A local folder holding the tensor shards: the root itself on file://, else a copy (on disk)."""
    if not is_hdfs(tensors_uri):
        return Path(uri_path(tensors_uri))
    target = workdir / "tensors"
    if not target.exists():
        log.info("copying %s to %s", tensors_uri, target)
        fs.copy_to_local(tensors_uri, str(target))
    return target


def read_history(path: Path) -> list[dict]:
    """The rows of history.csv (every finished epoch, across resumes); [] when there is none."""
    if not path.exists():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def resume_epoch(run_local: Path) -> int:
    """The number of epochs a previous attempt finished (0: training starts from scratch)."""
    metadata = run_local / RUN_BACKUP / "training_metadata.json"
    if not metadata.exists():
        return 0
    try:
        return int(json.loads(metadata.read_text())["epoch"])
    except (ValueError, KeyError):
        return 0


def make_callbacks(run_dir: RunDir, params: TrainParams, images_per_epoch: int, previous: list[dict]) -> list:
    """Checkpoint/resume, best weights, early stopping, time budget, history and progress logs.

    State that must survive a retry (best accuracy, epochs without improvement, seconds spent)
    is recomputed from ``previous``, the history.csv rows of earlier attempts.
    """
    import keras

    best_path = run_dir.local / RUN_BEST_WEIGHTS
    spent_before = sum(float(row.get("seconds") or 0) for row in previous)
    scores = [float(row[MONITOR]) for row in previous if row.get(MONITOR)]

    class Progress(keras.callbacks.Callback):
        """Adds seconds and images/s to the epoch's logs (CSVLogger records them) and logs a line."""

        def on_train_begin(self, logs=None):
            self.spent = spent_before

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.started
            self.spent += seconds
            logs["seconds"] = round(seconds, 2)
            logs["images_per_s"] = round(images_per_epoch / seconds, 1)
            log.info(
                "epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f  "
                "%.0f images/s (%.1fs, %.1f min in all)",
                epoch + 1,
                params.epochs,
                logs.get("loss", float("nan")),
                logs.get("accuracy", float("nan")),
                logs.get("val_loss", float("nan")),
                logs.get("val_accuracy", float("nan")),
                images_per_epoch / seconds,
                seconds,
                self.spent / 60,
            )

    class BestAndStop(keras.callbacks.Callback):
        """Keeps the weights to export on disk; early stopping and the time budget, resume-proof.

        The weights kept are those of the latest epoch whose validation accuracy is within
        BEST_TOLERANCE of the best so far: on a few thousand validation images smaller gaps are
        noise, and under the cosine schedule the later, lower-learning-rate epochs generalise better.
        """

        def __init__(self):
            super().__init__()
            self.best = max(scores, default=float("-inf"))
            self.wait = len(scores) - 1 - scores.index(self.best) if scores else 0
            self.spent = spent_before
            self.durations: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(float(logs.get("seconds", 0)))
            self.spent += self.durations[-1]
            score = logs.get(MONITOR)
            if score is None or score >= self.best - BEST_TOLERANCE:
                self.model.save_weights(best_path)
            if score is not None and score > self.best:
                self.best, self.wait = score, 0
            else:
                self.wait += 1
            if params.early_stopping_patience and self.wait >= params.early_stopping_patience:
                log.info("early stopping: no %s gain for %d epochs", MONITOR, self.wait)
                self.model.stop_training = True
            # Stop before an epoch that would end past the budget (an epoch takes about the last one's time).
            budget = params.max_train_minutes * 60
            if budget and epoch + 1 < params.epochs and self.spent + self.durations[-1] > budget:
                log.info("time budget: %.1f of %.1f min spent, no time for another epoch", self.spent / 60, budget / 60)
                self.model.stop_training = True

    class Sync(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            run_dir.sync()

    # Order matters: Progress adds to the logs before CSVLogger writes them; history.csv is written
    # before the checkpoint (a kill in between leaves a row that the resume drops, never a gap);
    # everything is on disk before Sync copies the run directory up.
    return [
        Progress(),
        keras.callbacks.CSVLogger(str(run_dir.local / RUN_HISTORY_CSV), append=True),
        BestAndStop(),
        keras.callbacks.BackupAndRestore(
            str(run_dir.local / RUN_BACKUP), save_freq="epoch", delete_checkpoint=False, double_checkpoint=True
        ),
        Sync(),
    ]


def input_record(config: RunConfig, stats: dict) -> dict:
    """What a run was trained on and with: the run config, the tensors' identity and content."""
    return {
        "run_id": config.run_id,
        "dataset": config.dataset,
        "version": config.version,
        "params": asdict(config.train),
        "run_config": config.to_dict(),
        "tensors": config.paths.tensors,
        "tensors_fingerprint": stats["fingerprint"],
        "curated_content_hash": stats["curated_content_hash"],
        "counts": stats["counts"],
    }


def same_input(recorded: dict, expected: dict) -> bool:
    """A run directory belongs to this run only when it was trained on the same tensors."""
    keys = ("run_id", "tensors_fingerprint", "curated_content_hash")
    return all(recorded.get(key) == expected[key] for key in keys)


def set_aside_stale_run(fs, run_uri: str, recorded: dict) -> None:
    """Move a run directory trained on other data out of the way (hidden, kept for inspection)."""
    stale = f"{run_uri.rsplit('/', 1)[0]}/.{run_uri.rsplit('/', 1)[1]}.stale-{time.strftime('%Y%m%dT%H%M%S')}"
    log.warning(
        "run %s was trained on other data (curated content %s); moving it to %s and training anew",
        run_uri,
        recorded.get("curated_content_hash"),
        stale,
    )
    fs.rename(run_uri, stale)


def train(fs, config: RunConfig) -> dict:
    """Train (or resume, or find finished) the run of ``config``; return its summary.

    A finished run is reused, and a killed one resumed, only when it was trained on the same
    tensors (same fingerprint and content hash); otherwise it is set aside and trained anew.
    """
    import keras

    from sparkvision.training import tfdata
    from sparkvision.training.model import build_model

    paths, params, rid, run_uri = config.paths, config.train, config.run_id, config.run_uri
    tensors_uri = fs.readable(paths.tensors)
    if not fs.exists(f"{tensors_uri}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete tensors at {paths.tensors} (no {SUCCESS})")
    stats = fs.read_json(f"{tensors_uri}/{TENSOR_STATS}")
    check_fingerprint(stats, config.tensors_fingerprint, "tensors", paths.tensors)
    record = input_record(config, stats)
    if fs.exists(f"{run_uri}/{RUN_PARAMS}"):
        recorded = fs.read_json(f"{run_uri}/{RUN_PARAMS}")
        if not same_input(recorded, record):
            set_aside_stale_run(fs, run_uri, recorded)
        elif fs.exists(f"{run_uri}/{SUCCESS}"):
            log.info("run %s already finished on the same tensors; nothing to train", run_uri)
            return {"run_id": rid, "run_uri": run_uri, **fs.read_json(f"{run_uri}/{RUN_HISTORY}")}
    shape = tuple(stats["image_shape"])
    n_train = stats["counts"]["train"]
    if not n_train:
        raise ValueError(f"{paths.tensors} has no training images")
    with tempfile.TemporaryDirectory(prefix="sparkvision-train-") as work:
        run_dir = RunDir(fs, run_uri)
        tensors = local_tensors(fs, tensors_uri, Path(work))
        (run_dir.local / RUN_PARAMS).write_text(json.dumps(record, indent=2, sort_keys=True))
        keras.utils.set_random_seed(params.seed)
        steps = -(-n_train // params.batch_size)
        val_ds = (
            tfdata.make_dataset(tensors / "validation", shape, max(params.batch_size, 512), shuffle_buffer=0, seed=0)
            if stats["counts"]["validation"]
            else None
        )
        model = build_model(
            params,
            shape,
            stats["num_classes"],
            mean=stats.get("channel_mean"),
            std=stats.get("channel_std"),
            decay_steps=params.epochs * steps,
        )
        previous = read_history(run_dir.local / RUN_HISTORY_CSV)
        start = resume_epoch(run_dir.local)
        # history.csv has a row more than the checkpoint when a kill fell between the two writes.
        previous = previous[:start]
        _rewrite_history(run_dir.local / RUN_HISTORY_CSV, previous)
        train_ds = tfdata.make_dataset(
            tensors / "train",
            shape,
            params.batch_size,
            shuffle_buffer=params.shuffle_buffer,
            seed=params.seed,
            first_epoch=start,
        )
        if start:
            log.info("resuming run %s from its checkpoint at epoch %d of %d", run_uri, start + 1, params.epochs)
        log.info(
            "training %s (%d parameters) on %d images for up to %d epochs (batch %d), run %s",
            model.name,
            model.count_params(),
            n_train,
            params.epochs,
            params.batch_size,
            run_uri,
        )
        started = time.monotonic()
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=params.epochs,
            verbose=0,
            callbacks=make_callbacks(run_dir, params, n_train, previous),
        )
        seconds = time.monotonic() - started
        if (run_dir.local / RUN_BEST_WEIGHTS).exists():
            model.load_weights(run_dir.local / RUN_BEST_WEIGHTS)  # restore the (latest near-)best epoch's weights
        model.save(run_dir.local / MODEL_FILE)
        export = run_dir.local / RUN_EXPORT
        if export.exists():
            shutil.rmtree(export)
        model.export(str(export), format="tf_saved_model", verbose=False)
        rows = read_history(run_dir.local / RUN_HISTORY_CSV)
        history = {key: [float(row[key]) for row in rows if row.get(key)] for key in (rows[0] if rows else {})}
        history.pop("epoch", None)
        scores = history.get(MONITOR, [])
        summary = {
            "history": history,
            "epochs": len(rows),
            "resumed_at_epoch": start,
            "epochs_run_now": len(rows) - start,
            "best_epoch": _exported_epoch(scores) if scores else len(rows),
            "train_seconds": round(sum(history.get("seconds", [])), 1),
            "train_seconds_now": round(seconds, 1),
            "architecture": params.architecture,
            "parameters": model.count_params(),
        }
        (run_dir.local / RUN_HISTORY).write_text(json.dumps(summary, indent=2))
        (run_dir.local / SUCCESS).touch()
        run_dir.sync()
    if run_dir.local != Path(uri_path(run_uri)):
        shutil.rmtree(run_dir.local, ignore_errors=True)
    log.info(
        "run %s finished: %d epochs (best %d, %s %.4f), %.1f s of training",
        run_uri,
        summary["epochs"],
        summary["best_epoch"],
        MONITOR,
        max(scores, default=float("nan")),
        summary["train_seconds"],
    )
    return {"run_id": rid, "run_uri": run_uri, **summary}


def _rewrite_history(path: Path, rows: list[dict]) -> None:
    """Keep only ``rows`` in history.csv (the epochs the checkpoint holds)."""
    if not path.exists():
        return
    if not rows:
        path.unlink()
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _exported_epoch(scores: list[float]) -> int:
    """The 1-based epoch whose weights are exported (see BestAndStop)."""
    return max(i for i, score in enumerate(scores) if score >= max(scores) - BEST_TOLERANCE) + 1
