"""Train the Keras CNN on the executors, with per-epoch checkpoints, resume and a time budget.

The driver only coordinates: ``train`` checks the input and the run directory, then
``sparkvision.training.distributed`` runs the training as one Spark barrier stage of N
TensorFlow workers (``workers``; synchronous data-parallel, ``sparkvision.training.worker``).
The workers hand every epoch's checkpoint and the final model to the driver, and
``RunRecord`` commits them to the run directory on the root (file:// or hdfs://).

The run directory ``<root>/runs/<model>/<run id>/`` is named from the dataset version and a
hash of the training parameters, so a retried task finds its own checkpoint and resumes at the
epoch after the last finished one (so does a barrier stage that Spark retries after losing an
executor), and a re-run of a finished training returns at once.

Run directory::

    train_params.json   the run's parameters and input (dataset version, content hash)
    backup/             the last epoch's checkpoint: checkpoint.npz (weights + optimizer) and
                        training_metadata.json (epochs done, planned epochs), committed whole
    best.weights.h5     the weights to export: the latest epoch within 0.002 of the best val_accuracy
    history.csv         one row per epoch (loss, accuracy, val_*, seconds, images/s, workers, plan), across resumes
    history.json        the summary once training finished
    model.keras         the final model (best weights), export/ its SavedModel; then _SUCCESS
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sparkvision.config.params import TrainParams
from sparkvision.config.runconfig import RunConfig, check_fingerprint
from sparkvision.platform.layout import (
    CHECKPOINT_META,
    CHECKPOINT_STATE,
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
from sparkvision.training.schedule import MONITOR, exported_epoch

log = logging.getLogger(__name__)

#: history.csv's columns, in order.
HISTORY_FIELDS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "images_per_s",
    "workers",
    "planned_epochs",
    "learning_rate",
)


def local_tensors(fs, tensors_uri: str, workdir: Path) -> Path:
    """A local folder holding the tensor shards: the root itself on file://, else a copy (on disk)."""
    if not is_hdfs(tensors_uri):
        return Path(uri_path(tensors_uri))
    target = workdir / "tensors"
    if not target.exists():
        log.info("copying %s to %s", tensors_uri, target)
        fs.copy_to_local(tensors_uri, str(target))
    return target


def parse_history(text: str) -> list[dict]:
    """The rows of a history.csv's text."""
    return list(csv.DictReader(io.StringIO(text)))


def read_history(path: Path) -> list[dict]:
    """The rows of a local history.csv (every finished epoch, across resumes); [] when there is none."""
    return parse_history(path.read_text()) if path.exists() else []


def history_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class RunRecord:
    """The run directory on the root, as the driver keeps it while the workers train.

    Reads what an earlier attempt left (the checkpoint, the best weights, the history rows the
    checkpoint covers) and serves the workers' requests: ``hello`` (where to start), ``epoch``
    (commit an epoch: history.csv first, then best.weights.h5, then backup/, so that a kill in
    between leaves a row the resume drops, never a gap) and ``final`` (model.keras, export/).
    """

    def __init__(self, fs, run_uri: str, params: TrainParams) -> None:
        self.fs, self.uri, self.params = fs, run_uri, params
        self.files: dict[str, bytes] = {}
        backup = fs.readable(f"{run_uri}/{RUN_BACKUP}")
        meta: dict[str, Any] = {}
        if fs.exists(f"{backup}/{CHECKPOINT_META}") and fs.exists(f"{backup}/{CHECKPOINT_STATE}"):
            meta = fs.read_json(f"{backup}/{CHECKPOINT_META}")
            self.files[CHECKPOINT_STATE] = fs.read_bytes(f"{backup}/{CHECKPOINT_STATE}")
            if fs.exists(f"{run_uri}/{RUN_BEST_WEIGHTS}"):
                self.files[RUN_BEST_WEIGHTS] = fs.read_bytes(f"{run_uri}/{RUN_BEST_WEIGHTS}")
        self.resumed_at = int(meta.get("epoch", 0))
        self.planned: int | None = meta.get("planned_epochs")
        history = f"{run_uri}/{RUN_HISTORY_CSV}"
        rows = parse_history(fs.read_text(history)) if fs.exists(history) else []
        # history.csv has a row more than the checkpoint when a kill fell between the two writes.
        self.rows = rows[: self.resumed_at]
        if len(rows) != len(self.rows):
            self._write_history()
        self.attempts: list[dict] = []
        self.model: dict[str, Any] = {}

    def handlers(self) -> dict:
        return {"hello": self.hello, "epoch": self.commit_epoch, "final": self.commit_model}

    def hello(self, header: dict, files: dict) -> tuple[dict, dict]:
        """Where a worker starts: the committed rows, the plan and the checkpoint files.

        The chief's hello opens an attempt of the barrier stage (Spark runs it again when a
        task or an executor is lost); the attempts and the epoch each one started at are kept.
        """
        if header["rank"] == 0:
            self.attempts.append({"attempt": len(self.attempts) + 1, "start_epoch": len(self.rows)})
            again = f" (attempt {len(self.attempts)} of the training stage)" if len(self.attempts) > 1 else ""
            if self.rows and len(self.rows) >= (self.planned or self.params.epochs):
                log.info(
                    "run %s: its checkpoint holds all %d epochs; exporting the model%s", self.uri, len(self.rows), again
                )
            elif self.rows:
                log.info(
                    "resuming run %s from its checkpoint at epoch %d of %d%s",
                    self.uri,
                    len(self.rows) + 1,
                    self.params.epochs,
                    again,
                )
            elif again:
                log.info("training run %s from its start%s", self.uri, again)
        return {"rows": self.rows, "planned": self.planned}, dict(self.files)

    def commit_epoch(self, header: dict, files: dict) -> tuple[dict, dict]:
        row = header["row"]
        if int(row["epoch"]) != len(self.rows):
            raise ValueError(f"epoch {int(row['epoch']) + 1} does not follow the {len(self.rows)} committed")
        self.rows.append(row)
        self._write_history()
        if RUN_BEST_WEIGHTS in files:
            self.fs.write_atomic(f"{self.uri}/{RUN_BEST_WEIGHTS}", files[RUN_BEST_WEIGHTS])
            self.files[RUN_BEST_WEIGHTS] = files[RUN_BEST_WEIGHTS]
        meta = {"epoch": len(self.rows), "planned_epochs": header["planned"], "workers": row.get("workers")}
        with self.fs.staged_dir(f"{self.uri}/{RUN_BACKUP}") as tmp:
            self.fs.write_bytes(f"{tmp}/{CHECKPOINT_STATE}", files[CHECKPOINT_STATE])
            self.fs.write_bytes(f"{tmp}/{CHECKPOINT_META}", json.dumps(meta).encode())
        self.files[CHECKPOINT_STATE] = files[CHECKPOINT_STATE]
        self.planned = header["planned"]
        rates = header.get("worker_images_per_s") or []
        per_worker = f" ({len(rates)} workers: {' + '.join(f'{r:,.0f}' for r in rates)})" if len(rates) > 1 else ""
        log.info(
            "epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f  %s images/s%s "
            "(%.1fs, %.1f min in all)",
            len(self.rows),
            self.planned,
            float(row["loss"]),
            float(row["accuracy"]),
            float(row.get("val_loss", "nan")),
            float(row.get("val_accuracy", "nan")),
            f"{float(row['images_per_s']):,.0f}",
            per_worker,
            float(row["seconds"]),
            sum(float(r.get("seconds") or 0) for r in self.rows) / 60,
        )
        timing = header.get("timing") or {}
        if timing:
            log.info(
                "step time: %.1f ms computing the gradients, %.1f ms all-reducing and applying them (median)",
                timing.get("compute_ms", float("nan")),
                timing.get("all_reduce_ms", float("nan")),
            )
        for note in header.get("notes", []):
            log.info("%s", note)
        return {}, {}

    def commit_model(self, header: dict, files: dict) -> tuple[dict, dict]:
        self.fs.write_atomic(f"{self.uri}/{MODEL_FILE}", files[MODEL_FILE])
        with tempfile.TemporaryDirectory(prefix="sparkvision-export-") as local:
            with tarfile.open(fileobj=io.BytesIO(files[RUN_EXPORT])) as archive:
                archive.extractall(local, filter="data")
            with self.fs.staged_dir(f"{self.uri}/{RUN_EXPORT}") as tmp:
                self.fs.delete(tmp)
                self.fs.copy_from_local(local, tmp)
        self.model = header
        return {}, {}

    def finish(self, results: list[dict], seconds: float) -> dict:
        """Write history.json and ``_SUCCESS``; return the summary."""
        history = {
            key: [float(row[key]) for row in self.rows if row.get(key) not in (None, "")] for key in HISTORY_FIELDS[1:]
        }
        scores = history.get(MONITOR, [])
        summary = {
            "history": history,
            "epochs": len(self.rows),
            "planned_epochs": self.planned,
            "resumed_at_epoch": self.resumed_at,
            "epochs_run_now": len(self.rows) - self.resumed_at,
            "attempts": self.attempts,
            "best_epoch": exported_epoch(scores) if scores else len(self.rows),
            "train_seconds": round(sum(history.get("seconds", [])), 1),
            "train_seconds_now": round(seconds, 1),
            "architecture": self.params.architecture,
            "parameters": self.model.get("parameters"),
            "workers": len(results),
            "steps_per_epoch": results[0]["steps_per_epoch"],
            "global_batch": results[0]["batch"] * len(results),
            "worker_results": results,
        }
        self.fs.write_json(f"{self.uri}/{RUN_HISTORY}", summary)
        self.fs.touch(f"{self.uri}/{SUCCESS}")
        return summary

    def _write_history(self) -> None:
        self.fs.write_atomic(f"{self.uri}/{RUN_HISTORY_CSV}", history_csv(self.rows).encode())


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
    """Train (or resume, or find finished) the run of ``config`` on the executors; return its summary.

    ``fs`` is the job's ``HadoopFS`` (its SparkSession runs the barrier stage). A finished run is
    reused, and a killed one resumed, only when it was trained on the same tensors (same
    fingerprint and content hash); otherwise it is set aside and trained anew.
    """
    from sparkvision.training.distributed import resolve_workers, train_on_executors, worker_parts
    from sparkvision.training.schedule import per_replica_batch

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
    n_train, n_validation = stats["counts"]["train"], stats["counts"]["validation"]
    if not n_train:
        raise ValueError(f"{paths.tensors} has no training images")
    workers = resolve_workers(fs.spark, params.workers)
    # A global batch larger than the split would train on nothing (steps drop the remainder).
    batch = per_replica_batch(min(params.batch_size, n_train), workers)
    if batch * workers != params.batch_size:
        log.warning(
            "batch_size %d over %d worker(s) with %d images: %d each", params.batch_size, workers, n_train, batch
        )
    fs.mkdirs(run_uri)
    fs.write_json(f"{run_uri}/{RUN_PARAMS}", record)
    run = RunRecord(fs, run_uri, params)
    log.info(
        "training %s on %d images for up to %d epochs (global batch %d) with %d worker(s), run %s",
        params.architecture,
        n_train,
        params.epochs,
        batch * workers,
        workers,
        run_uri,
    )
    job = {
        "workers": workers,
        "batch": batch,
        "params": asdict(params),
        "shape": stats["image_shape"],
        "num_classes": stats["num_classes"],
        "mean": stats.get("channel_mean"),
        "std": stats.get("channel_std"),
    }
    splits = ["train", "validation"] if n_validation else ["train"]
    started = time.monotonic()
    parts = worker_parts(fs.spark, tensors_uri, workers, splits)
    results = train_on_executors(fs.spark, parts, job, run.handlers())
    summary = run.finish(results, time.monotonic() - started)
    scores = summary["history"].get(MONITOR, [])
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
