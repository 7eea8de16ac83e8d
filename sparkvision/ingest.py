"""Ingest: raw image files -> curated Parquet, with every unusable file quarantined.

``run_ingest`` takes a SparkSession and explicit URIs; ``spark_jobs/ingest.py`` is its entry
point. Spark lists the drop with the ``binaryFile`` source (files whose names start with ``.``
or ``_``, such as ``_SUCCESS``, are not part of a drop), packs many small files into each task,
and decodes them with OpenCV on Arrow batches (``mapInArrow``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote, urlparse

import pyarrow as pa

from sparkvision import images, schema
from sparkvision.layout import SAFE_NAME, SUCCESS, DatasetPaths
from sparkvision.schema import ImageSpec

log = logging.getLogger(__name__)

#: Source-given split, read from the file name: ``train-00042.png`` / ``test-7.jpg``.
SOURCE_SPLIT_PREFIXES = ("train", "test")


@dataclass(frozen=True)
class IngestParams:
    spec: ImageSpec = field(default_factory=ImageSpec)
    max_rejected_share: float = 0.05
    max_pixels: int = images.DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_rejected_share <= 1.0:
            raise ValueError(f"max_rejected_share must be within 0..1, got {self.max_rejected_share}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")


class TooManyRejectsError(RuntimeError):
    """The rejected share of a drop passed the threshold."""


def relative_path(file_uri: str, drop_path: str) -> str:
    """The path of a listed file inside the drop (``<label>/.../<file>``)."""
    path = unquote(urlparse(file_uri).path)
    prefix = drop_path.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise ValueError(f"{file_uri} is not under {drop_path}")
    return path[len(prefix) :]


def label_of(rel_path: str) -> str:
    """The label folder of a file, or raise Rejected when there is none or it is unsafe."""
    parts = rel_path.split("/")
    if len(parts) < 2:
        raise images.Rejected(images.NO_LABEL, "the file is not inside a <label>/ folder")
    if not SAFE_NAME.match(parts[0]):
        raise images.Rejected(images.BAD_LABEL, f"label folder {parts[0]!r} breaks the naming rule {SAFE_NAME.pattern}")
    return parts[0]


def source_split(rel_path: str) -> str | None:
    name = rel_path.rsplit("/", 1)[-1]
    prefix = name.split("-", 1)[0]
    return prefix if prefix in SOURCE_SPLIT_PREFIXES and "-" in name else None


def decode_record(rel_path: str, content: bytes | None, params: IngestParams) -> dict:
    """One row of DECODED_SCHEMA for one file: the image, or the reason it is rejected."""
    row: dict = {
        schema.ID: images.stable_id(rel_path),
        schema.PATH: rel_path,
        schema.SIZE: len(content or b""),
        schema.SOURCE_SPLIT: source_split(rel_path),
    }
    try:
        row[schema.LABEL] = None
        row[schema.LABEL] = label_of(rel_path)
        if content is None:
            raise images.Rejected(images.UNREADABLE, "the file could not be read")
        row[schema.CONTENT_HASH] = images.content_hash(content)
        decoded = images.decode(content, params.spec, params.max_pixels)
    except images.Rejected as rejected:
        row.update({schema.REASON: rejected.reason, schema.DETAIL: rejected.detail})
        return row
    row.update(
        {
            schema.PIXELS: decoded.pixels,
            schema.ORIG_HEIGHT: decoded.orig_height,
            schema.ORIG_WIDTH: decoded.orig_width,
            schema.ORIG_CHANNELS: decoded.orig_channels,
        }
    )
    return row


def decode_batches(batches: Iterator[pa.RecordBatch], drop_path: str, params: IngestParams) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: binaryFile batches (path, length, content) -> DECODED_SCHEMA batches."""
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content").to_pylist()
        rows = [decode_record(relative_path(p, drop_path), c, params) for p, c in zip(paths, contents, strict=True)]
        yield pa.RecordBatch.from_pylist(rows, schema=schema.DECODED_SCHEMA)


def assign_label_indices(labels: list[str], previous: dict[str, int] | None) -> dict[str, int]:
    """Label -> index, keeping every earlier version's indices; new labels append in sorted order."""
    mapping = dict(previous or {})
    for label in sorted(set(labels) - set(mapping)):
        mapping[label] = len(mapping)
    return mapping


def previous_version(fs, paths: DatasetPaths) -> str | None:
    """The latest complete curated version of the same dataset that sorts before this one."""
    parent = paths.curated.rsplit("/", 1)[0]
    earlier = [
        v
        for v in fs.list(parent)
        if not v.startswith(".") and v < paths.version and fs.exists(f"{parent}/{v}/{SUCCESS}")
    ]
    return max(earlier) if earlier else None


def run_ingest(spark, paths: DatasetPaths, params: IngestParams) -> dict:
    """Decode the raw drop of ``paths`` into curated Parquet; return the manifest."""
    from pyspark.sql import functions as F
    from pyspark.storagelevel import StorageLevel

    from sparkvision.storage import HadoopFS

    started = time.monotonic()
    fs = HadoopFS(spark)
    if not fs.exists(f"{paths.raw}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete raw drop at {paths.raw} (no {SUCCESS})")
    # Many small files: pack them into few tasks instead of one task per file.
    spark.conf.set("spark.sql.files.openCostInBytes", "4096")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024 * 1024))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")

    drop_path = unquote(urlparse(paths.raw).path)
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(paths.raw)
        .select("path", "length", "content")
    )
    log.info("decoding %s into %s images (%d input partitions)", paths.raw, params.spec, files.rdd.getNumPartitions())
    decoded = files.mapInArrow(
        lambda it: decode_batches(it, drop_path, params), _spark_schema(spark, schema.DECODED_SCHEMA)
    )
    decoded = decoded.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = (
            decoded.groupBy(schema.REASON, schema.LABEL)
            .agg(F.count("*").alias("n"), F.sum(schema.SIZE).alias("bytes"))
            .collect()
        )
        accepted_labels = sorted({r[schema.LABEL] for r in counts if r[schema.REASON] is None})
        previous = previous_version(fs, paths)
        previous_labels = (
            fs.read_json(f"{paths.curated.rsplit('/', 1)[0]}/{previous}/labels.json") if previous else None
        )
        label_index = assign_label_indices(accepted_labels, previous_labels)
        mapping = F.create_map(*[x for label, i in label_index.items() for x in (F.lit(label), F.lit(i))])

        found = files.select("path").count()  # a listing-only count: binaryFile reads no content
        manifest = _manifest(counts, found, paths, params)
        manifest["label_index"] = label_index
        manifest["previous_version"] = previous
        manifest["content_hash"] = _dataset_hash(decoded.filter(F.col(schema.REASON).isNull()))

        fs.mkdirs(paths.curated.rsplit("/", 1)[0])
        with fs.staged_dir(paths.curated) as tmp:
            accepted = (
                decoded.filter(F.col(schema.REASON).isNull())
                .withColumn(schema.LABEL_INDEX, mapping[F.col(schema.LABEL)].cast("int"))
                .select(*schema.IMAGES_SCHEMA.names)
                .sortWithinPartitions(schema.PATH)
            )
            accepted.write.parquet(f"{tmp}/images.parquet")
            (
                decoded.filter(F.col(schema.REASON).isNotNull())
                .select(schema.PATH, schema.LABEL, schema.REASON, schema.DETAIL, schema.SIZE)
                .coalesce(1)
                .sortWithinPartitions(schema.PATH)
                .write.parquet(f"{tmp}/rejects.parquet")
            )
            fs.write_json(f"{tmp}/labels.json", label_index)
            manifest["duration_s"] = round(time.monotonic() - started, 2)
            fs.write_json(f"{tmp}/manifest.json", manifest)
            if manifest["rejected_share"] <= params.max_rejected_share:
                fs.touch(f"{tmp}/{SUCCESS}")
    finally:
        decoded.unpersist()
    log.info("ingest manifest: %s", json.dumps({k: v for k, v in manifest.items() if k != "label_index"}))
    if manifest["rejected_share"] > params.max_rejected_share:
        raise TooManyRejectsError(
            f"{manifest['rejected']} of {manifest['files_found']} files rejected "
            f"({manifest['rejected_share']:.1%} > max_rejected_share {params.max_rejected_share:.1%}); "
            f"see {paths.curated}/rejects.parquet for paths and reasons"
        )
    return manifest


def _manifest(counts: list, found: int, paths: DatasetPaths, params: IngestParams) -> dict:
    """Counts, reasons and sizes of one ingest; checks accepted + rejected == files found."""
    accepted = sum(r["n"] for r in counts if r[schema.REASON] is None)
    rejected = sum(r["n"] for r in counts if r[schema.REASON] is not None)
    by_reason: dict[str, int] = {}
    per_label: dict[str, int] = {}
    for r in counts:
        if r[schema.REASON] is None:
            per_label[r[schema.LABEL]] = per_label.get(r[schema.LABEL], 0) + r["n"]
        else:
            by_reason[r[schema.REASON]] = by_reason.get(r[schema.REASON], 0) + r["n"]
    if found == 0:
        raise RuntimeError(f"ingest found no files in {paths.raw}")
    if accepted + rejected != found:
        raise RuntimeError(f"accounting error: {accepted} accepted + {rejected} rejected != {found} files found")
    manifest = {
        "dataset": paths.dataset,
        "version": paths.version,
        "source": paths.raw,
        "image_shape": list(params.spec.shape),
        "params": {**asdict(params), "spec": str(params.spec)},
        "files_found": found,
        "accepted": accepted,
        "rejected": rejected,
        "rejected_share": rejected / found if found else 0.0,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "per_label": dict(sorted(per_label.items())),
        "bytes": sum(r["bytes"] or 0 for r in counts),
    }
    return manifest


def _dataset_hash(accepted) -> str:
    """An order-independent fingerprint of (path, content hash) over every accepted image."""
    from pyspark.sql import functions as F

    part = F.conv(F.substring(F.sha2(F.concat_ws(":", schema.PATH, schema.CONTENT_HASH), 256), 1, 15), 16, 10)
    total = accepted.select(F.sum(part.cast("decimal(38,0)")).alias("s")).collect()[0]["s"]
    return f"{int(total or 0):x}"


def _spark_schema(spark, arrow_schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)
