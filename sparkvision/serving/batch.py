"""Batch inference: score a batch drop (or a labelled curated version) with a published model on Spark.

``run_scoring`` takes a SparkSession and a scoring config; ``spark_jobs/score.py`` is its entry
point; docs/serving.md describes the outputs.

1. **The model**, from its published metadata only (``sparkvision.serving.models``): a version
   that does not exist fails here, with the versions that do, before any Spark job.
2. **Already scored?** ``predictions/<model>/<version>/<batch>/`` with ``_SUCCESS`` and the same
   fingerprint (model version, source, top_k) is kept as it is unless ``rescore`` is set.
3. **Listing and decoding exactly as ingest does**: the same listing (tasks walk the folders on
   file://, Spark's binaryFile listing elsewhere) and the same decode code and reasons
   (``sparkvision.ingest.decode``), with the ingest parameters the model was trained with and
   no label folders needed. Decoding and scoring run in one Python pass per task (``mapInArrow``):
   pixels never go back to the JVM. Every file found is scored or rejected, never lost:
   ``scored + rejected == files_found`` is checked before anything is committed.
4. **Scoring** through ``sparkvision.serving.scoring`` (the model shipped once per executor,
   loaded once per Python worker). The scored rows (no pixels) are cached once; the manifest's
   aggregation and the two writes read the cache.
5. **Output**, staged and committed atomically: ``predictions.parquet`` (sorted by path),
   ``rejects.parquet`` (the ingest's rejects schema), ``manifest.json``, ``_SUCCESS``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time

from sparkvision.config.scoring import ScoringConfig
from sparkvision.ingest import hadoop
from sparkvision.ingest.decode import decode_local
from sparkvision.ingest.files import drop_dir, skipped_name, walk_batches
from sparkvision.ingest.run import ingest_conf
from sparkvision.ingest.summary import AccountingError, output_partitions
from sparkvision.platform import schema
from sparkvision.platform.layout import (
    CURATED_IMAGES,
    CURATED_MANIFEST,
    PREDICTION_MANIFEST,
    PREDICTION_REJECTS,
    PREDICTIONS,
    SUCCESS,
)
from sparkvision.platform.spark import session_conf
from sparkvision.serving.models import ModelSpec, published_model
from sparkvision.serving.scoring import PREDICT_BATCH, Scorer, score_batches, ship

log = logging.getLogger(__name__)

#: Bins of the manifest's confidence histogram: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0].
CONFIDENCE_BINS = 10
#: Bytes of one predictions row, about (paths, hashes, top-k lists), to size the output files.
PREDICTION_ROW_BYTES = 300
#: Size of one predictions Parquet file in MiB.
PREDICTIONS_FILE_MB = 128
#: Fields of the manifest that differ between two runs over the same input (timings).
TIMING_FIELDS = ("duration_s", "images_per_s", "skipped")


class BatchNotFoundError(FileNotFoundError):
    """The batch to score is not there, or not complete (no ``_SUCCESS``): exit status 4."""

    exit_code = 4


def scoring_conf(spark) -> dict[str, str]:
    """The ingest's listing and decode settings, with Arrow batches of one ``serve`` call each."""
    return {**ingest_conf(spark), "spark.sql.execution.arrow.maxRecordsPerBatch": str(PREDICT_BATCH)}


def score_partitions(found: int, parallelism: int) -> int:
    """Scoring tasks: enough to keep every core busy twice over, none with less than a serve call."""
    return max(1, min(2 * parallelism, math.ceil(found / PREDICT_BATCH)))


def run_scoring(spark, config: ScoringConfig) -> dict:
    """Score ``config``'s batch (or curated version) and commit its predictions; return the manifest.

    The returned manifest has ``skipped`` True when the batch was already scored by this model
    version with the same parameters (and ``rescore`` was not asked).
    """
    from sparkvision.platform.storage import HadoopFS

    started = time.monotonic()
    fs = HadoopFS(spark)
    spec = published_model(fs, config.model_paths, config.model_version)
    config = config.pinned(spec.version)
    source = fs.readable(config.source) if config.labelled else config.source
    if not fs.exists(f"{source}/{SUCCESS}"):
        raise BatchNotFoundError(f"no complete batch at {config.source} (no {SUCCESS}): nothing to score")
    output = config.output
    identity = config.predictions_fingerprint(spec.run_id)
    if fs.exists(f"{output}/{SUCCESS}"):
        previous = fs.read_json(f"{output}/{PREDICTION_MANIFEST}")
        if previous.get("fingerprint") == identity and not config.score.rescore:
            log.info("%s was already scored by %s version %d: %s", config.source, spec.model, spec.version, output)
            return {**previous, "skipped": True}
        log.info("%s holds earlier predictions; scoring again (rescore or other parameters)", output)
    log.info(
        "scoring %s with %s version %d (input %s, decoded as %s, %s)",
        config.source,
        spec.model,
        spec.version,
        "x".join(map(str, spec.shape)),
        spec.ingest.image_shape,
        spec.ingest.resize_policy,
    )
    scorer = ship(spark, fs, spec, config.score.top_k)
    with session_conf(spark, scoring_conf(spark)):
        if config.labelled:
            scored, found = _score_curated(spark, fs, source, spec, scorer)
        elif config.source.startswith("file:"):
            scored, found = _score_local(spark, config.source, spec, scorer)
        else:
            scored, found = _score_listed(spark, config.source, spec, scorer)
        try:
            summary = _summarize(scored)
            manifest = _manifest(config, spec, scorer, identity, found, summary)
            fs.mkdirs(output.rsplit("/", 1)[0])
            with fs.staged_dir(output) as tmp:
                _write(scored, config, spec, manifest, tmp)
                manifest["duration_s"] = round(time.monotonic() - started, 2)
                manifest["images_per_s"] = round(found / max(manifest["duration_s"], 1e-9), 1)
                fs.write_json(f"{tmp}/{PREDICTION_MANIFEST}", manifest)
                fs.touch(f"{tmp}/{SUCCESS}")
        finally:
            scored.unpersist()
    brief = {k: v for k, v in manifest.items() if k not in {"decode", "confusion_matrix", "confidence_histogram"}}
    log.info("scoring manifest: %s", json.dumps(brief))
    return manifest


def _scored_type():
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema.SCORED_SCHEMA)


def _score_local(spark, source: str, spec: ModelSpec, scorer: Scorer):
    """A batch drop on a local (or everywhere-mounted) filesystem: listed and read in tasks, as ingest does."""
    from pyspark.storagelevel import StorageLevel

    drop_path = drop_dir(source)
    params = spec.ingest
    entries = sorted(name for name in os.listdir(drop_path) if not skipped_name(name))
    if not entries:
        return spark.createDataFrame([], _scored_type()), 0
    tasks = max(1, min(len(entries), spark.sparkContext.defaultParallelism))
    listing = (
        spark.createDataFrame([(name,) for name in entries], "entry string")
        .repartition(tasks)
        .mapInArrow(lambda it: walk_batches(it, drop_path), f"{schema.PATH} string")
        .persist(StorageLevel.DISK_ONLY)
    )
    try:
        found = listing.count()
        partitions = score_partitions(found, spark.sparkContext.defaultParallelism)
        log.info("found %d files in %s; scoring in %d tasks", found, source, partitions)
        scored = (
            listing.repartitionByRange(partitions, schema.PATH)
            .sortWithinPartitions(schema.PATH)
            .mapInArrow(
                lambda it: score_batches(decode_local(it, drop_path, params, labelled=False), scorer), _scored_type()
            )
            .persist(StorageLevel.DISK_ONLY)
        )
        scored.count()  # decode and score once, before the listing is let go
    finally:
        listing.unpersist()
    return scored, found


def _score_listed(spark, source: str, spec: ModelSpec, scorer: Scorer):
    """A batch drop on HDFS (any Hadoop filesystem): listed and read in tasks by the ingest's Hadoop
    reader (``sparkvision.ingest.hadoop``); every listed file gives one row, read or not."""
    from pyspark.storagelevel import StorageLevel

    params = spec.ingest
    listing = hadoop.list_files(spark, source).persist(StorageLevel.DISK_ONLY)
    try:
        found = listing.count()
        partitions = score_partitions(found, spark.sparkContext.defaultParallelism)
        log.info("found %d files in %s; scoring in %d tasks", found, source, partitions)
        scored = (
            hadoop.read_files(spark, source, listing, partitions, params.max_file_bytes)
            .mapInArrow(
                lambda it: score_batches(hadoop.decode_read(it, params, labelled=False), scorer), _scored_type()
            )
            .persist(StorageLevel.DISK_ONLY)
        )
        scored.count()  # read, decode and score once, before the listing is let go
    finally:
        listing.unpersist()
    return scored, found


def _score_curated(spark, fs, curated: str, spec: ModelSpec, scorer: Scorer):
    """A labelled curated version: its images, already decoded at their dataset's shape."""
    from pyspark.storagelevel import StorageLevel

    manifest = fs.read_json(f"{curated}/{CURATED_MANIFEST}")
    if tuple(manifest["image_shape"]) != tuple(spec.shape):
        raise ValueError(
            f"{curated} holds {'x'.join(map(str, manifest['image_shape']))} images; {spec.model} version "
            f"{spec.version} takes {'x'.join(map(str, spec.shape))}: score its raw drop as a batch instead"
        )
    images = spark.read.parquet(f"{curated}/{CURATED_IMAGES}").select(
        schema.ID, schema.PATH, schema.CONTENT_HASH, schema.LABEL, schema.PIXELS
    )
    scored = images.mapInArrow(lambda it: score_batches(it, scorer), _scored_type()).persist(StorageLevel.DISK_ONLY)
    return scored, manifest["accepted"]


def _summarize(scored) -> dict:
    """Counts by reason, predicted label, true label and confidence bin: one aggregation, folded here."""
    from pyspark.sql import functions as F

    confidence_bin = F.least(F.floor(F.col(schema.CONFIDENCE) * CONFIDENCE_BINS), F.lit(CONFIDENCE_BINS - 1))
    rows = (
        scored.groupBy(schema.REASON, schema.PREDICTED_LABEL, schema.LABEL, confidence_bin.cast("int").alias("bin"))
        .count()
        .collect()
    )
    summary = {"files": 0, "scored": 0, "by_reason": {}, "per_label": {}, "bins": [0] * CONFIDENCE_BINS, "pairs": {}}
    for row in rows:
        n = row["count"]
        summary["files"] += n
        if row[schema.REASON] is not None:
            summary["by_reason"][row[schema.REASON]] = summary["by_reason"].get(row[schema.REASON], 0) + n
            continue
        summary["scored"] += n
        predicted = row[schema.PREDICTED_LABEL]
        summary["per_label"][predicted] = summary["per_label"].get(predicted, 0) + n
        summary["bins"][row["bin"]] += n
        pair = (row[schema.LABEL], predicted)
        summary["pairs"][pair] = summary["pairs"].get(pair, 0) + n
    return summary


def _manifest(config: ScoringConfig, spec: ModelSpec, scorer: Scorer, identity: str, found: int, summary: dict):
    scored, rejected = summary["scored"], sum(summary["by_reason"].values())
    if scored + rejected != found:
        raise AccountingError(f"accounting error: {scored} scored + {rejected} rejected != {found} files found")
    manifest = {
        "model": spec.model,
        "model_version": spec.version,
        "model_uri": spec.uri,
        "model_run_id": spec.run_id,
        "model_digest": scorer.digest,
        "batch": config.output_batch,
        "source": config.source,
        "labelled": config.labelled,
        "image_shape": list(spec.shape),
        "decode": {"image_shape": spec.ingest.image_shape, **_decode_params(spec)},
        "labels": list(spec.labels),
        "top_k": scorer.keep,
        "fingerprint": identity,
        "files_found": found,
        "scored": scored,
        "rejected": rejected,
        "invariant": f"scored + rejected == files_found: {scored} + {rejected} == {found}",
        "rejected_by_reason": dict(sorted(summary["by_reason"].items())),
        "predictions_per_label": {label: summary["per_label"].get(label, 0) for label in spec.labels},
        "confidence_histogram": {
            "edges": [round(i / CONFIDENCE_BINS, 2) for i in range(CONFIDENCE_BINS + 1)],
            "counts": summary["bins"],
        },
    }
    if config.labelled:
        manifest.update(_accuracy(summary["pairs"], spec.labels))
    return manifest


def _decode_params(spec: ModelSpec) -> dict:
    params = spec.ingest
    return {
        "resize_policy": params.resize_policy,
        "alpha_background": params.alpha_background,
        "max_pixels": params.max_pixels,
        "max_file_bytes": params.max_file_bytes,
    }


def _accuracy(pairs: dict, labels: tuple[str, ...]) -> dict:
    """Accuracy and the confusion matrix (rows: true label, columns: predicted, in the model's label order).

    True labels the model does not know get their own rows after the model's (always wrong).
    """
    unknown = sorted({true for true, _ in pairs} - set(labels))
    rows = [*labels, *unknown]
    position = {label: i for i, label in enumerate(rows)}
    matrix = [[0] * len(labels) for _ in rows]
    for (true, predicted), n in pairs.items():
        matrix[position[true]][labels.index(predicted)] += n
    total = sum(pairs.values())
    correct = sum(n for (true, predicted), n in pairs.items() if true == predicted)
    return {
        "accuracy": round(correct / total, 6) if total else None,
        "correct": correct,
        "confusion_matrix": matrix,
        "confusion_rows": rows,
        "unknown_labels": unknown,
    }


def _write(scored, config: ScoringConfig, spec: ModelSpec, manifest: dict, tmp: str) -> None:
    """predictions.parquet and rejects.parquet, each sorted by path, in files sized by bytes."""
    from pyspark.sql import functions as F

    constants = {
        schema.MODEL: F.lit(spec.model),
        schema.MODEL_VERSION: F.lit(spec.version).cast("int"),
        schema.BATCH: F.lit(config.output_batch),
    }
    predictions = scored.filter(F.col(schema.REASON).isNull()).select(
        *[constants.get(name, F.col(name)).alias(name) for name in schema.PREDICTIONS_COLUMNS]
    )
    _sorted_write(predictions, manifest["scored"], f"{tmp}/{PREDICTIONS}")
    rejects = scored.filter(F.col(schema.REASON).isNotNull()).select(*schema.REJECTS_SCHEMA.names)
    _sorted_write(rejects, manifest["rejected"], f"{tmp}/{PREDICTION_REJECTS}")


def _sorted_write(frame, rows: int, uri: str) -> None:
    files = output_partitions(rows, PREDICTION_ROW_BYTES, PREDICTIONS_FILE_MB)
    frame = frame.coalesce(1) if files == 1 else frame.repartitionByRange(files, schema.PATH)
    frame.sortWithinPartitions(schema.PATH, schema.ID).write.parquet(uri)
