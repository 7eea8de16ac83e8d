"""Tensorize: curated images -> deterministic train/validation/test splits of fixed-shape tensors.

The split of an image depends only on its content hash (and on the split its source gave it),
so it never moves between splits across re-runs or dataset versions: the source's ``test`` set
stays the test set; every other image goes to validation when its hash bucket is below the
validation share, else to train. Rows are written in a deterministic pseudo-random order (by a
hash of the id) with small Parquet row groups, ready to stream into tf.data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

from sparkvision.config.params import SplitParams
from sparkvision.config.runconfig import RunConfig, check_fingerprint
from sparkvision.platform import schema
from sparkvision.platform.layout import CURATED_IMAGES, CURATED_MANIFEST, SPLITS, SUCCESS, TENSOR_STATS

log = logging.getLogger(__name__)

BUCKETS = 10_000
#: Rows per Parquet row group: small enough to stream, large enough to read fast.
ROWS_PER_ROW_GROUP = 4096
#: Rows per output file of a split.
ROWS_PER_FILE = 200_000


def hash_bucket(content_hash: str) -> int:
    """A bucket in [0, BUCKETS) from an image's content hash (stable everywhere)."""
    return int(hashlib.sha256(f"split:{content_hash}".encode()).hexdigest()[:8], 16) % BUCKETS


def assign_split(content_hash: str, source_split: str | None, params: SplitParams) -> str:
    """The split of one image. Pure and deterministic: the same inputs give the same split."""
    if source_split == "test":
        return "test"
    bucket = hash_bucket(content_hash)
    if bucket < params.validation_share * BUCKETS:
        return "validation"
    if source_split is None and bucket >= (1 - params.test_share) * BUCKETS:
        return "test"
    return "train"


def run_tensorize(spark, config: RunConfig) -> dict:
    """Write tensors/<dataset>/<version>/<split>/ and stats.json; return the stats."""
    import math

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from sparkvision.platform.storage import HadoopFS

    started = time.monotonic()
    paths, params = config.paths, config.split
    fs = HadoopFS(spark)
    curated = fs.readable(paths.curated)
    if not fs.exists(f"{curated}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete curated dataset at {paths.curated} (no {SUCCESS})")
    manifest = fs.read_json(f"{curated}/{CURATED_MANIFEST}")
    check_fingerprint(manifest, config.ingest_fingerprint, "curated images", paths.curated)
    height, width, channels = manifest["image_shape"]
    split_udf = F.udf(lambda h, s: assign_split(h, s, params), T.StringType())
    images = (
        spark.read.parquet(f"{curated}/{CURATED_IMAGES}")
        .withColumn(schema.SPLIT, split_udf(schema.CONTENT_HASH, schema.SOURCE_SPLIT))
        .persist()
    )
    try:
        counts = {
            row[schema.SPLIT]: row["n"] for row in images.groupBy(schema.SPLIT).agg(F.count("*").alias("n")).collect()
        }
        per_label = {split: {} for split in SPLITS}
        for row in images.groupBy(schema.SPLIT, schema.LABEL_INDEX).count().collect():
            per_label[row[schema.SPLIT]][str(row[schema.LABEL_INDEX])] = row["count"]
        channel_stats = _channel_stats(images.filter(F.col(schema.SPLIT) == "train"), channels)
        # Small row groups so that a reader holds one group at a time; the writer checks the size
        # every 100-1000 rows (default up to 10,000, which overshoots the target for small images).
        # Write options reach the Parquet writer's Hadoop configuration for this write only.
        row_groups = {
            "parquet.block.size": str(ROWS_PER_ROW_GROUP * height * width * channels),
            "parquet.block.size.row.check.min": "100",
            "parquet.block.size.row.check.max": "1000",
        }
        fs.mkdirs(paths.tensors.rsplit("/", 1)[0])
        with fs.staged_dir(paths.tensors) as tmp:
            for split in SPLITS:
                n = counts.get(split, 0)
                (
                    images.filter(F.col(schema.SPLIT) == split)
                    .withColumn("_order", F.xxhash64(schema.ID))
                    .repartition(max(1, math.ceil(n / ROWS_PER_FILE)), "_order")
                    .sortWithinPartitions("_order")
                    .select(*schema.TENSOR_SCHEMA.names)
                    .write.options(**row_groups)
                    .parquet(f"{tmp}/{split}")
                )
                log.info("wrote %d %s tensors", n, split)
            stats = {
                "dataset": paths.dataset,
                "version": paths.version,
                "curated_content_hash": manifest["content_hash"],
                "fingerprint": config.tensors_fingerprint,
                "image_shape": [height, width, channels],
                "num_classes": len(manifest["label_index"]),
                "label_index": manifest["label_index"],
                "counts": {split: counts.get(split, 0) for split in SPLITS},
                "per_label": per_label,
                "channel_mean": channel_stats[0],
                "channel_std": channel_stats[1],
                "params": asdict(params),
                "duration_s": round(time.monotonic() - started, 2),
            }
            fs.write_json(f"{tmp}/{TENSOR_STATS}", stats)
            fs.touch(f"{tmp}/{SUCCESS}")
    finally:
        images.unpersist()
    log.info("tensorized %s: %s", paths.tensors, stats["counts"])
    return stats


def _channel_stats(train, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the train split, over every pixel."""
    import numpy as np

    def partial(batches):
        import pyarrow as pa

        sums = np.zeros(channels)
        squares = np.zeros(channels)
        n = 0
        for batch in batches:
            flat = b"".join(batch.column(schema.PIXELS).to_pylist())
            pixels = np.frombuffer(flat, dtype=np.uint8).reshape(-1, channels).astype(np.float64)
            sums += pixels.sum(axis=0)
            squares += (pixels**2).sum(axis=0)
            n += len(pixels)
        yield pa.RecordBatch.from_pylist([{"n": n, "sums": sums.tolist(), "squares": squares.tolist()}])

    rows = (
        train.select(schema.PIXELS).mapInArrow(partial, "n long, sums array<double>, squares array<double>").collect()
    )
    n = sum(r["n"] for r in rows)
    if n == 0:
        return [0.0] * channels, [0.0] * channels
    sums = np.sum([r["sums"] for r in rows], axis=0)
    squares = np.sum([r["squares"] for r in rows], axis=0)
    mean = sums / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0))
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]
