"""The one scoring code path: a SavedModel shipped to the executors, loaded once per Python worker.

Driver side, ``ship``: the model's SavedModel folder (on a file:// or hdfs:// root) is copied
through the root's Hadoop client into one content-addressed zip and handed to
``SparkContext.addArchive``: every executor fetches and unpacks it once (TensorFlow reads local
files only; no HDFS plugin ships with tensorflow-cpu). The archive's name is the hash of the
model's bytes, so two models never share a name and the same model is shipped once per session.

Executor side, ``score_batches`` (a ``mapInArrow`` body): the first batch a Python worker sees
loads the SavedModel from the unpacked archive and keeps it in a per-process cache; Spark reuses
Python workers (``spark.python.worker.reuse``), so a model is loaded once per worker and serves
every later batch and task. TensorFlow's thread pools are sized once per worker to the task's
cores (``spark.task.cpus``): Spark runs executor cores / task cpus workers at once, so workers x
threads equals the cores.

Batch inference (images decoded from files, or curated pixels) and evaluation (a tensor split)
both score through ``score_batches``: an image gets the same probabilities on either path. They do
not depend on how images are grouped into batches either, so partitioning never changes a
prediction: measured with both architectures, every batch size from 2 to 1,024 gives bit-identical
outputs per image, while a batch of one image takes another kernel path (differences of about
1e-7), so a lone image is scored as a pair.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sparkvision.platform import schema
from sparkvision.platform.layout import SAVED_MODEL_PARTS
from sparkvision.serving.models import ModelSpec
from sparkvision.training.tfdata import pixels_to_array

log = logging.getLogger(__name__)

#: Images per ``serve`` call (what the model was exported for, and what fills a core).
PREDICT_BATCH = 1024
#: Models a Python worker keeps loaded (evaluation scores a candidate and a champion).
CACHE_SIZE = 2
#: Where the driver keeps the zips it shipped (under the session's SparkFiles folder).
SHIPPED_DIR = "sparkvision-shipped"
#: Fixed zip timestamps: the same model always gives the same archive.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

_LOADED: OrderedDict[str, Any] = OrderedDict()


@dataclass(frozen=True)
class Scorer:
    """What a Python worker needs to score with a shipped model (small: pickled into every task)."""

    #: SparkFiles name of the unpacked SavedModel: ``sparkvision-model-<content hash>``.
    name: str
    #: sha256 of the SavedModel's files (names and bytes).
    digest: str
    shape: tuple[int, int, int]
    labels: tuple[str, ...]
    #: The most likely labels kept per image (a scoring run's ``top_k``, at most the model's classes).
    keep: int
    #: TensorFlow intra-op threads per Python worker (the task's cores).
    threads: int


# -- driver: shipping -----------------------------------------------------------------------------


def tree_digest(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _zip_folder(folder: Path, archive: Path) -> None:
    """A deterministic, uncompressed zip of ``folder``'s files, written atomically."""
    tmp = archive.with_name(f".{archive.name}.{uuid.uuid4().hex}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with open(path, "rb") as handle:
                out.writestr(info, handle.read())
    os.replace(tmp, archive)


def ship(spark, fs, spec: ModelSpec, keep: int) -> Scorer:
    """Copy ``spec``'s SavedModel into a content-addressed zip and add it to the session's archives.

    Every executor fetches and unpacks it once (``SparkFiles.get(scorer.name)`` in a task). The
    zip stays in the driver's SparkFiles folder for the session (executors added later fetch it
    from there); shipping the same model again adds nothing.
    """
    from pyspark import SparkFiles

    shipped = Path(SparkFiles.getRootDirectory()) / SHIPPED_DIR
    shipped.mkdir(parents=True, exist_ok=True)
    present = fs.list(spec.uri)
    with tempfile.TemporaryDirectory(prefix="model-", dir=shipped) as work:
        local = Path(work) / "model"
        local.mkdir()
        for part in SAVED_MODEL_PARTS:
            if part in present:
                fs.copy_to_local(f"{spec.uri}/{part}", str(local / part))
        digest = tree_digest(local)
        name = f"sparkvision-model-{digest[:20]}"
        archive = shipped / f"{name}.zip"
        if not archive.exists():
            _zip_folder(local, archive)
    spark.sparkContext.addArchive(f"{archive}#{name}")
    threads = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    log.info(
        "shipping %s version %s (%s, %.1f MB) to the executors as %s; %d TensorFlow thread(s) per Python worker",
        spec.model,
        spec.version if spec.version is not None else f"candidate {spec.run_id}",
        spec.uri,
        archive.stat().st_size / 2**20,
        name,
        threads,
    )
    keep = min(keep, len(spec.labels))
    return Scorer(name=name, digest=digest, shape=tuple(spec.shape), labels=tuple(spec.labels), keep=keep,
                  threads=threads)  # fmt: skip


def score_frame(spark, fs, spec: ModelSpec, frame, keep: int):
    """``frame`` (a ``pixels`` column, and what to pass through) scored by ``spec`` on the executors.

    Returns the lazy SCORED_SCHEMA DataFrame (``keep`` most likely labels per image); the model
    is shipped now and loaded by the tasks.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    scorer = ship(spark, fs, spec, keep)
    return frame.mapInArrow(lambda batches: score_batches(batches, scorer), from_arrow_schema(schema.SCORED_SCHEMA))


# -- executor: loading once per worker, scoring Arrow batches ---------------------------------------


def _set_threads(threads: int) -> None:
    """Size TensorFlow's pools before its runtime starts (once per process; later calls change nothing)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime started already in this worker (an earlier model)
        pass


def model_path(scorer: Scorer) -> str:
    """The unpacked SavedModel on this machine."""
    from pyspark import SparkFiles

    return SparkFiles.get(scorer.name)


def serve_function(scorer: Scorer):
    """The model's ``serve`` function, loaded on first use in this process and cached."""
    if scorer.name in _LOADED:
        _LOADED.move_to_end(scorer.name)
        return _LOADED[scorer.name].serve
    _set_threads(scorer.threads)
    import tensorflow as tf

    loaded = tf.saved_model.load(model_path(scorer))
    _LOADED[scorer.name] = loaded
    while len(_LOADED) > CACHE_SIZE:
        _LOADED.popitem(last=False)
    return loaded.serve


def probabilities(scorer: Scorer, images: np.ndarray) -> np.ndarray:
    """(n, height, width, channels) uint8 -> (n, classes) float32, ``PREDICT_BATCH`` images per call."""
    if len(images) == 0:
        return np.zeros((0, len(scorer.labels)), dtype=np.float32)
    serve = serve_function(scorer)
    parts = []
    for start in range(0, len(images), PREDICT_BATCH):
        chunk = images[start : start + PREDICT_BATCH]
        if len(chunk) == 1:  # see the module docstring: one image alone takes another kernel path
            parts.append(np.asarray(serve(np.concatenate([chunk, chunk])))[:1])
        else:
            parts.append(np.asarray(serve(chunk)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


_SCORED = schema.SCORED_SCHEMA
#: Columns passed through from the input when it has them (else null).
_PASSED = (schema.ID, schema.PATH, schema.CONTENT_HASH, schema.LABEL, schema.SIZE, schema.REASON, schema.DETAIL)


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    field = _SCORED.field(name)
    if name in batch.schema.names:
        return batch.column(name).cast(field.type)
    return pa.nulls(batch.num_rows, field.type)


def _list_column(values: pa.Array, k: int, valid: np.ndarray) -> pa.Array:
    """A list column of ``k`` consecutive ``values`` per valid row, null for the others."""
    lengths = np.where(valid, k, 0).astype(np.int32)
    offsets = np.zeros(len(valid) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~valid))


def score_batch(batch: pa.RecordBatch, scorer: Scorer) -> pa.RecordBatch:
    """One batch with a ``pixels`` column (null: a rejected file) -> one SCORED_SCHEMA batch.

    Input columns named in SCORED_SCHEMA (id, path, content hash, label, size, reason, detail) are
    passed through. The true ``label_index`` is in the model's index space: the position of the
    input's ``label`` among the model's labels (null when the model does not know it), or, for a
    tensor split (no ``label`` column), its ``label_index`` as it is.
    """
    n = batch.num_rows
    pixels = batch.column(schema.PIXELS)
    if pa.types.is_large_binary(pixels.type):
        pixels = pixels.cast(pa.binary())
    valid = pixels.is_valid().to_numpy(zero_copy_only=False)
    kept = np.flatnonzero(valid)
    images = pixels_to_array(pixels.filter(pa.array(valid)), scorer.shape)
    probs = probabilities(scorer, images)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : scorer.keep].astype(np.int32)
    top_probs = np.take_along_axis(probs, order, axis=1).astype(np.float32)
    labels = pa.array(scorer.labels, type=pa.string())
    rejected = ~valid

    predicted = np.zeros(n, dtype=np.int32)
    predicted[kept] = order[:, 0]
    confidence = np.zeros(n, dtype=np.float32)
    confidence[kept] = top_probs[:, 0]
    predicted_index = pa.array(predicted, mask=rejected)
    arrays = {name: _column(batch, name) for name in _PASSED}
    arrays[schema.PREDICTED_INDEX] = predicted_index
    arrays[schema.PREDICTED_LABEL] = labels.take(predicted_index)
    arrays[schema.CONFIDENCE] = pa.array(confidence, mask=rejected)
    arrays[schema.TOP_K_LABELS] = _list_column(labels.take(pa.array(order.reshape(-1))), scorer.keep, valid)
    arrays[schema.TOP_K_PROBABILITIES] = _list_column(pa.array(top_probs.reshape(-1)), scorer.keep, valid)
    if schema.LABEL in batch.schema.names:
        index = {label: i for i, label in enumerate(scorer.labels)}
        arrays[schema.LABEL_INDEX] = pa.array(
            [index.get(label) for label in batch.column(schema.LABEL).to_pylist()], type=pa.int32()
        )
    else:
        arrays[schema.LABEL_INDEX] = _column(batch, schema.LABEL_INDEX)
    return pa.RecordBatch.from_arrays([arrays[name] for name in _SCORED.names], schema=_SCORED)


def score_batches(batches: Iterable[pa.RecordBatch], scorer: Scorer) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: batches with ``pixels`` (and what to pass through) -> SCORED_SCHEMA batches."""
    for batch in batches:
        if batch.num_rows:
            yield score_batch(batch, scorer)
