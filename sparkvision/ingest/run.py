"""Ingest: raw image files -> curated Parquet, with every unusable file quarantined.

``run_ingest`` takes a SparkSession and explicit URIs; ``spark_jobs/ingest.py`` is its entry
point; docs/ingest.md describes the outputs, the reasons and how it scales.

How it reads many small files (the choices, briefly):

- ``file://`` roots (a laptop, or a mount that every node sees at the same path): the listing is
  a Spark job, not a driver loop, and it never passes through the JVM. The driver lists only the
  drop's top level (label folders and loose files); tasks walk the label folders with
  ``os.scandir`` (no stat per file) and write the relative paths as sorted runs in the staging
  folder (``listing``), telling the driver one first path per 1,000 files. The driver cuts those
  into path ranges of about equal size; each decode task reads its range from the runs and its
  Python worker reads and decodes each file itself. No process ever holds the whole listing, the
  JVM never opens a file, and no pixel is shuffled or sorted: each decode task's range becomes
  one curated file as it is. The decode tasks add up their statistics and split their content
  hashes into buckets; Python tasks find the duplicates bucket by bucket (``parts``), so the JVM
  sorts nothing either.
- Other Hadoop filesystems (``hdfs://``): tasks list the drop (``hadoop.list_files``), a range
  partitioning on path gives each decode task one sorted path range, and its JVM reads the
  bytes, many files in flight (Python workers have no HDFS client: no libhdfs here, no JVM in
  the worker); see ``hadoop``. Files are never one task per file.
- Names starting with ``.`` or ``_`` (such as ``_SUCCESS``) and ``*._COPYING_`` are not part of a
  drop, on both paths (Spark's listing rule). ``files_found`` counts what is left.
- Decoding is OpenCV on Arrow batches (``mapInArrow``). A file that cannot be read costs only
  its own row: an ``unreadable_file`` reject. Files over ``max_file_bytes`` are refused by size
  without being read. The decoder also emits each image's pixel sums and hash share, so the
  statistics are one Spark SQL aggregation over small columns.
- The decoded rows (pixels, not file bytes) are cached once and every later step (duplicates,
  statistics, the two writes) reads the cache; the output is sized from bytes, not file count.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sparkvision.config.params import IngestParams
from sparkvision.ingest import hadoop, images, listing, parts
from sparkvision.ingest.files import drop_dir, skipped_name
from sparkvision.ingest.summary import (
    AccountingError,
    assign_label_indices,
    build_manifest,
    dataset_hash,
    fold_summary,
    label_drift,
    output_partitions,
)
from sparkvision.platform import schema
from sparkvision.platform.layout import (
    CURATED_IMAGES,
    CURATED_LABELS,
    CURATED_MANIFEST,
    CURATED_REJECTS,
    SUCCESS,
    DatasetPaths,
)
from sparkvision.platform.spark import session_conf

log = logging.getLogger(__name__)

#: Listing and decode tuning for many small files (see docs/ingest.md, "How it scales").
SPARK_CONF = {
    # Charge each file 4 KiB of "open cost" instead of 4 MiB so that thousands share one task.
    "spark.sql.files.openCostInBytes": str(4096),
    "spark.sql.files.maxPartitionBytes": str(128 * 1024 * 1024),
    # Unreadable files are skipped by the reader and reported from the listing.
    "spark.sql.files.ignoreCorruptFiles": "true",
    "spark.sql.files.ignoreMissingFiles": "true",
    # Bounded Python worker memory: at most this many files (and bytes) per Arrow batch.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "1000",
    "spark.sql.execution.arrow.maxBytesPerBatch": str(64 * 1024 * 1024),
    # The decoded rows cached on disk (Hadoop filesystems) as they are: their columns are mostly
    # pixels and unique strings, which the cache's column encodings do not shrink, and trying
    # them costs the driver JVM CPU (70,000-file HDFS ingest: 15.6 against 16.2 CPU-s, docs/ingest.md).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}
#: Parquet writer options of images.parquet. Row groups of 32 MiB: a writer buffers one row group,
#: so its memory stays the same for files of 16 or 128 MiB. No dictionary for the columns whose
#: every value differs (ids, paths, hashes, pixels): building one only to give it up costs about
#: a third of the write.
PARQUET_WRITE_OPTIONS = {
    "parquet.block.size": str(32 * 1024 * 1024),
    **{
        f"parquet.enable.dictionary#{name}": "false"
        for name in (schema.ID, schema.PATH, schema.CONTENT_HASH, schema.PIXELS, schema.DUPLICATE_OF)
    },
}
#: file:// roots: no decode task for fewer files than this (see ``decode_partitions``).
MIN_FILES_PER_TASK = 10_000
#: file:// roots: folders of the staged output that are removed before the commit: the listing's
#: runs (read by the decode pass), the decode tasks' spill files, hash buckets and (with
#: drop_duplicates) small columns, and the duplicates table (read by the write pass).
LISTING_DIR = "_listing"
SPILL_DIR = "_spill"
HASHES_DIR = "_hashes"
SMALL_DIR = "_small"
DUPLICATES_DIR = "_duplicates"


#: Phases of an ingest, as its Spark jobs are described ("<job description>: <phase>"): the
#: Spark UI and the benchmark's timeline (bench/ingest.py) group the jobs by them.
PHASES = ("listing", "decode", "duplicates", "statistics", "write")


@contextmanager
def phase(spark, name: str) -> Iterator[None]:
    """Describe the Spark jobs started in the block as ``<the job's description>: <name>``."""
    context = spark.sparkContext
    base = context.getLocalProperty("spark.job.description")
    context.setJobDescription(f"{base or 'ingest'}: {name}")
    try:
        yield
    finally:
        context.setJobDescription(base)


class TooManyRejectsError(RuntimeError):
    """The rejected share of a drop passed the threshold (the job exits with status 1)."""

    exit_code = 1


def ingest_conf(spark) -> dict[str, str]:
    """SPARK_CONF plus task counts that keep every core busy in about two waves.

    The shuffles left (the duplicate groups: hashes and paths only) get as many partitions; the
    default 200 would be 200 tasks for the cached groups, which AQE does not coalesce.
    """
    tasks = str(2 * spark.sparkContext.defaultParallelism)
    return {**SPARK_CONF, "spark.sql.files.minPartitionNum": tasks, "spark.sql.shuffle.partitions": tasks}


def list_drop(spark, paths: DatasetPaths):
    """List the drop in tasks (the one listing of the run), cached and counted.

    Returns ((path, length) rows, how many).
    """
    from pyspark.storagelevel import StorageLevel

    listing = hadoop.list_files(spark, paths.raw).persist(StorageLevel.DISK_ONLY)
    with phase(spark, "listing"):
        return listing, listing.count()


def run_ingest(spark, paths: DatasetPaths, params: IngestParams) -> dict:
    """Decode the raw drop of ``paths`` into curated Parquet; return the manifest."""
    from sparkvision.platform.storage import HadoopFS

    started = time.monotonic()
    if not HadoopFS(spark).exists(f"{paths.raw}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete raw drop at {paths.raw} (no {SUCCESS})")
    with session_conf(spark, ingest_conf(spark)):
        if paths.raw.startswith("file:"):
            return ingest_local(spark, paths, params, started)
        return ingest_listed(spark, *list_drop(spark, paths), paths, params, started)


def decode_partitions(found: int, params: IngestParams, parallelism: int) -> int:
    """Decode tasks of a file:// drop, which are also its curated files (each a sorted path range).

    Files of at most ``target_file_mb``, and enough tasks to keep every core busy twice over,
    but never a task for fewer than ``MIN_FILES_PER_TASK`` files (a small drop: one file).
    """
    by_bytes = output_partitions(found, params.spec.nbytes + 200, params.target_file_mb)
    return max(by_bytes, min(2 * parallelism, math.ceil(found / MIN_FILES_PER_TASK)))


def ingest_local(spark, paths: DatasetPaths, params: IngestParams, started: float | None = None) -> dict:
    """Ingest a drop on a local (or everywhere-mounted) filesystem: pixels never enter the JVM.

    Listing tasks write the drop's paths as sorted runs in the staging folder (``listing``); the
    driver cuts them into path ranges of about equal size, one per decode task. Its Python worker
    reads and decodes the range's files, keeps the decoded rows in a spill file, adds up their
    statistics and splits their content hashes by bucket. One Python task per bucket finds the
    duplicates; then each decode task's range is written as one curated file by a Python worker
    (``parts.write_parts``). With ``drop_duplicates`` (duplicates become rejects, which changes
    the statistics) Spark adds up the statistics from the decode tasks' small columns instead.
    """
    from sparkvision.platform.storage import HadoopFS

    started = time.monotonic() if started is None else started
    fs = HadoopFS(spark)
    drop_path = drop_dir(paths.raw)
    fs.mkdirs(paths.curated.rsplit("/", 1)[0])
    with fs.staged_dir(paths.curated) as tmp:
        work = drop_dir(tmp)
        with phase(spark, "listing"):
            batches = _list_local(spark, drop_path, f"{work}/{LISTING_DIR}")
        found = sum(batch.files for batch in batches)
        tasks = decode_partitions(found, params, spark.sparkContext.defaultParallelism)
        log.info(
            "found %d files in %s (%.1fs); decoding in %d tasks", found, paths.raw, time.monotonic() - started, tasks
        )
        with phase(spark, "decode"):
            ranges = listing.plan_ranges(batches, tasks)
            stats = _decode_local(spark, ranges, drop_path, work, params)
        decoded = sum(row["files"] for row in stats)
        if decoded != found:
            raise AccountingError(f"accounting error: decoded {decoded} files, listed {found}")
        fs.delete(f"{tmp}/{LISTING_DIR}")
        with phase(spark, "duplicates"):
            duplicates = _find_duplicates(spark, work, tasks)
        log.info("decoded (%.1fs); duplicates %s", time.monotonic() - started, duplicates)
        if params.drop_duplicates and duplicates["files"]:
            small = spark.read.schema(_spark_type(parts.SMALL_SCHEMA)).parquet(f"{tmp}/{SMALL_DIR}")
            dropped = _as_dropped(small, spark.read.parquet(f"{tmp}/{DUPLICATES_DIR}").select(schema.PATH))
            with phase(spark, "statistics"):
                summary = _summarizer(params)(dropped)
        else:
            summary = fold_summary(stats, params.spec)
        summary["duplicates"] = 0 if params.drop_duplicates else duplicates["files"]
        log.info("summarized (%.1fs)", time.monotonic() - started)
        manifest, label_index, failed = _manifest(fs, summary, found, duplicates, paths, params)
        with phase(spark, "write"):
            written = _write_local(spark, work, tasks, label_index, params, failed, bool(duplicates["files"]))
        expected = (0 if failed else manifest["accepted"], manifest["rejected"])
        if (written["images"], written["rejects"]) != expected:
            raise AccountingError(f"accounting error: wrote {written}, expected {expected}")
        for folder in (SPILL_DIR, HASHES_DIR, SMALL_DIR, DUPLICATES_DIR):
            fs.delete(f"{tmp}/{folder}")
        if not failed:
            manifest["output_files"] = written["files"]
            log.info("wrote %s (%.1fs)", CURATED_IMAGES, time.monotonic() - started)
        _close(fs, tmp, manifest, label_index, failed, started)
    return _report(manifest, params, paths, failed)


def _list_local(spark, drop_path: str, listing_dir: str) -> list[listing.Batch]:
    """List the drop in tasks, as sorted runs of paths in ``listing_dir``: one row per run batch.

    The driver lists only the top level (label folders and loose files) and gets one row per
    ``listing.BATCH_PATHS`` files (a batch's first path and size), never the whole listing.
    """
    os.makedirs(listing_dir)
    entries = sorted(name for name in os.listdir(drop_path) if not skipped_name(name))
    rows = (
        spark.createDataFrame([(name,) for name in entries] or [("",)], _spark_type(listing.ENTRIES))
        .filter("entry != ''")
        .mapInArrow(lambda it: listing.write_runs(it, drop_path, listing_dir), _spark_type(listing.BATCHES))
        .collect()
    )
    return [listing.Batch(row["run"], row["batch"], row["files"], row["first"]) for row in rows]


def _spark_type(arrow_schema):
    """Spark's struct type of an Arrow schema (made in Python: a DDL string is parsed by the JVM)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def _decode_local(
    spark, ranges: list[listing.PathRange], drop_path: str, work: str, params: IngestParams
) -> list[dict]:
    """The decode pass: one task per path range, each decoding its files into its spill file and
    hash buckets (under ``work``); returns the tasks' statistics rows (``parts.STATS``)."""
    spill_dir, hashes_dir, listing_dir = f"{work}/{SPILL_DIR}", f"{work}/{HASHES_DIR}", f"{work}/{LISTING_DIR}"
    small_dir = f"{work}/{SMALL_DIR}" if params.drop_duplicates else None
    for folder in (spill_dir, hashes_dir):
        os.makedirs(folder)
    tasks = len(ranges)

    def decode(ids):
        paths = listing.range_batches(ids, listing_dir, ranges)
        return parts.decode_to_spill(paths, drop_path, params, spill_dir, hashes_dir, tasks, small_dir)

    stats = spark.range(0, tasks, 1, tasks).mapInArrow(decode, _spark_type(parts.STATS))
    return [row.asDict() for row in stats.collect()]


def _find_duplicates(spark, work: str, buckets: int) -> dict:
    """The duplicates pass: one Python task per hash bucket writes the duplicates table
    (``part``=<decode task>/, ``path``, ``parts.FIRST``) under ``work``.

    Returns {"groups": duplicate groups, "files": files that duplicate an earlier one}.
    """
    hashes_dir, dups_dir = f"{work}/{HASHES_DIR}", f"{work}/{DUPLICATES_DIR}"
    os.makedirs(dups_dir)
    found = (
        spark.range(0, buckets, 1, buckets)
        .mapInArrow(lambda it: parts.find_duplicates(it, hashes_dir, dups_dir), _spark_type(parts.FOUND))
        .collect()
    )
    return {"groups": sum(row["groups"] for row in found), "files": sum(row["files"] for row in found)}


def _as_dropped(small, duplicates):
    """The small rows with every duplicate turned into a ``duplicate_content`` reject (drop_duplicates)."""
    from pyspark.sql import functions as F

    dropped = duplicates.select(schema.PATH, F.lit(True).alias("_dropped"))
    return (
        small.join(dropped, schema.PATH, "left")
        .withColumn(schema.REASON, F.when(F.col("_dropped"), F.lit(images.DUPLICATE)).otherwise(F.col(schema.REASON)))
        .drop("_dropped")
    )


def _write_local(spark, work: str, tasks: int, label_index, params: IngestParams, failed: bool, duplicates: bool):
    """The write pass: one task per decode task writes its curated files; totals of what was written."""
    spill_dir, dups_dir = f"{work}/{SPILL_DIR}", f"{work}/{DUPLICATES_DIR}" if duplicates else None
    written = (
        spark.range(0, tasks, 1, tasks)
        .mapInArrow(
            lambda it: parts.write_parts(it, spill_dir, dups_dir, work, label_index, params, write_images=not failed),
            _spark_type(parts.WRITTEN),
        )
        .collect()
    )
    return {
        "images": sum(row["images"] for row in written),
        "rejects": sum(row["rejects"] for row in written),
        "files": sum(row["images"] > 0 or row[parts.PART] == 0 for row in written),
    }


def ingest_listed(
    spark, listing, found: int, paths: DatasetPaths, params: IngestParams, started: float | None = None
) -> dict:
    """Ingest the ``found`` files of a listing made by ``list_drop`` (any Hadoop filesystem; tests
    remove files in between): the JVM reads them, many at a time per task (``hadoop.read_files``)."""
    from pyspark.storagelevel import StorageLevel

    started = time.monotonic() if started is None else started
    try:
        tasks = decode_partitions(found, params, spark.sparkContext.defaultParallelism)
        log.info(
            "found %d files in %s (%.1fs); reading and decoding in %d tasks",
            found,
            paths.raw,
            time.monotonic() - started,
            tasks,
        )
        decoded = hadoop.decoded_files(spark, paths.raw, listing, tasks, params).persist(StorageLevel.DISK_ONLY)
        return _curate(spark, decoded, found, paths, params, started)
    finally:
        listing.unpersist()


def _curate(spark, decoded, found: int, paths: DatasetPaths, params: IngestParams, started: float):
    """From cached decoded rows, each partition a sorted range of paths: duplicates, statistics,
    manifest and the staged, atomic writes (the JVM path: any Hadoop filesystem)."""
    from sparkvision.platform.storage import HadoopFS

    fs = HadoopFS(spark)
    cached = [decoded]
    try:
        with phase(spark, "decode"):  # the duplicate groups' job reads and decodes (and caches) first
            flagged, duplicates = _flag_duplicates(decoded, params.drop_duplicates)
        log.info("decoded and cached (%.1fs); %s", time.monotonic() - started, duplicates)
        # Only dropped duplicates change the statistics (they become rejects): else no join needed.
        counted = flagged if params.drop_duplicates and duplicates["files"] else decoded
        with phase(spark, "statistics"):
            summary = _summarizer(params)(counted)
        log.info("summarized (%.1fs)", time.monotonic() - started)
        summary["duplicates"] = 0 if params.drop_duplicates else duplicates["files"]  # kept duplicates
        manifest, label_index, failed = _manifest(fs, summary, found, duplicates, paths, params)
        fs.mkdirs(paths.curated.rsplit("/", 1)[0])
        with fs.staged_dir(paths.curated) as tmp, phase(spark, "write"):
            if not failed:
                _write_images(flagged, label_index, tmp)
                manifest["output_files"] = sum(name.endswith(".parquet") for name in fs.list(f"{tmp}/{CURATED_IMAGES}"))
                log.info("wrote %s (%.1fs)", CURATED_IMAGES, time.monotonic() - started)
            _write_rejects(flagged, tmp)
            _close(fs, tmp, manifest, label_index, failed, started)
    finally:
        for frame in cached:
            frame.unpersist()
    return _report(manifest, params, paths, failed)


def _manifest(fs, summary: dict, found: int, duplicates: dict, paths: DatasetPaths, params: IngestParams):
    """(manifest, label index, failed): counts, labels against the previous version, drift, content hash."""
    manifest = build_manifest(summary, found, None, paths, params)
    manifest["duplicates"] = duplicates
    parent = paths.curated.rsplit("/", 1)[0]
    previous = previous_version(fs, paths)
    previous_manifest = fs.read_json(f"{fs.readable(f'{parent}/{previous}')}/{CURATED_MANIFEST}") if previous else {}
    label_index = assign_label_indices(manifest["per_label"], previous_manifest.get("label_index"))
    manifest["label_index"] = label_index
    manifest["previous_version"] = previous
    manifest["label_drift"] = label_drift(
        previous_manifest.get("per_label"), manifest["per_label"], params.drift_threshold
    )
    manifest["content_hash"] = dataset_hash(summary["hash_sum"], params, label_index)
    failed = manifest["rejected_share"] > params.max_rejected_share
    manifest["status"] = "failed: rejected share over max_rejected_share" if failed else "ok"
    return manifest, label_index, failed


def _close(fs, tmp: str, manifest: dict, label_index: dict[str, int], failed: bool, started: float) -> None:
    """The last files of a staged output: labels.json, manifest.json and (when it passed) _SUCCESS."""
    if not failed:
        fs.write_json(f"{tmp}/{CURATED_LABELS}", label_index)
    manifest["duration_s"] = round(time.monotonic() - started, 2)
    fs.write_json(f"{tmp}/{CURATED_MANIFEST}", manifest)
    if not failed:
        fs.touch(f"{tmp}/{SUCCESS}")


def _report(manifest: dict, params: IngestParams, paths: DatasetPaths, failed: bool) -> dict:
    """Log the manifest (and drift); raise TooManyRejectsError when the run failed its share check."""
    _log_manifest(manifest, params)
    if failed:
        raise TooManyRejectsError(
            f"{manifest['rejected']} of {manifest['files_found']} files rejected "
            f"({manifest['rejected_share']:.1%} > max_rejected_share {params.max_rejected_share:.1%}): "
            f"{manifest['rejected_by_reason']}; no curated images were published; "
            f"see {paths.curated}/{CURATED_REJECTS} for paths and reasons"
        )
    return manifest


def _flag_duplicates(decoded, drop: bool):
    """Add ``duplicate_of`` (first path, in path order, with the same content); reject them if ``drop``.

    The duplicate groups (hash -> first path) stay in Spark, checkpointed in the executors: they
    are counted here (the action that decodes and caches ``decoded``) and broadcast to a join
    that keeps the order of the rows it streams. Returns (flagged rows, counts).
    """
    from pyspark.sql import functions as F

    firsts = (
        decoded.filter(F.col(schema.REASON).isNull())
        .groupBy(schema.CONTENT_HASH)
        .agg(F.min(schema.PATH).alias("_first"), F.count("*").alias("_n"))
        .filter(F.col("_n") > 1)
        .localCheckpoint(eager=True)
    )
    counts = firsts.agg(F.count("*").alias("groups"), F.sum(F.col("_n") - 1).alias("files")).first()
    info = {"groups": counts["groups"], "files": counts["files"] or 0}
    if not info["groups"]:
        return decoded.withColumn(schema.DUPLICATE_OF, F.lit(None).cast("string")), info
    duplicate = F.col(schema.REASON).isNull() & F.col("_first").isNotNull() & (F.col(schema.PATH) != F.col("_first"))
    flagged = (
        decoded.join(F.broadcast(firsts.select(schema.CONTENT_HASH, "_first")), schema.CONTENT_HASH, "left")
        .withColumn(schema.DUPLICATE_OF, F.when(duplicate, F.col("_first")))
        .drop("_first")
    )
    if drop:
        is_dup = F.col(schema.DUPLICATE_OF).isNotNull()
        flagged = flagged.withColumn(
            schema.DETAIL, F.when(is_dup, F.concat(F.lit("same content as "), schema.DUPLICATE_OF))
        )
        flagged = flagged.withColumn(
            schema.REASON, F.when(is_dup, F.lit(images.DUPLICATE)).otherwise(F.col(schema.REASON))
        )
    return flagged.select(*schema.DECODED_SCHEMA.names, schema.DUPLICATE_OF), info


def _summarizer(params: IngestParams):
    """summarize(rows) -> summary: one Spark aggregation over small columns, folded here.

    No pixel leaves the JVM: the decoder computed every accepted image's pixel sums and hash part.
    """
    from pyspark.sql import functions as F

    spec = params.spec
    accepted = F.col(schema.REASON).isNull()
    longest = f"greatest({schema.ORIG_HEIGHT}, {schema.ORIG_WIDTH}, 1)"
    # size_bucket: 1 << bit_length(longest - 1), with bit_length(n) = length(bin(n)) for n > 0
    edge = F.expr(f"CASE WHEN {longest} <= 1 THEN 1 ELSE shiftleft(1, length(bin({longest} - 1))) END")
    keys = [
        F.col(schema.REASON),
        F.col(schema.LABEL),
        F.when(accepted, edge).alias("size_edge"),
        F.when(accepted, F.col(schema.ORIG_CHANNELS)).alias(schema.ORIG_CHANNELS),
    ]
    sums = [*schema.PIXEL_SUMS[: spec.channels], *schema.PIXEL_SUMSQS[: spec.channels]]
    sums += [schema.HASH_PART_HI, schema.HASH_PART_LO]
    aggregates = [
        F.count("*").alias("files"),
        F.sum(schema.SIZE).alias("bytes"),
        *[F.sum(F.when(accepted, F.col(name))).alias(name) for name in sums],
    ]

    def summarize(frame) -> dict:
        rows = frame.groupBy(*keys).agg(*aggregates).collect()
        return fold_summary([row.asDict() for row in rows], spec)

    return summarize


def _write_images(flagged, label_index: dict[str, int], tmp: str) -> None:
    """images.parquet: accepted rows, each partition (a sorted path range) written as one file."""
    from pyspark.sql import functions as F

    mapping = F.create_map(*[x for label, i in label_index.items() for x in (F.lit(label), F.lit(i))])
    rows = (
        flagged.filter(F.col(schema.REASON).isNull())
        .withColumn(schema.LABEL_INDEX, mapping[F.col(schema.LABEL)].cast("int"))
        .select(*schema.CURATED_SCHEMA.names)
    )
    rows.write.options(**PARQUET_WRITE_OPTIONS).parquet(f"{tmp}/{CURATED_IMAGES}")


def _write_rejects(flagged, tmp: str) -> None:
    """rejects.parquet: rejected rows, each partition (a sorted path range) written as it is."""
    from pyspark.sql import functions as F

    rows = flagged.filter(F.col(schema.REASON).isNotNull()).select(*schema.REJECTS_SCHEMA.names)
    rows.write.parquet(f"{tmp}/{CURATED_REJECTS}")


def _log_manifest(manifest: dict, params: IngestParams) -> None:
    brief = {k: v for k, v in manifest.items() if k not in {"label_index", "label_drift", "params"}}
    log.info("ingest manifest: %s", json.dumps(brief))
    drift = manifest.get("label_drift")
    if drift and drift["exceeded"]:
        log.warning(
            "label distribution drift against %s: total variation %.3f > drift_threshold %.3f "
            "(new labels %s, missing labels %s)",
            manifest["previous_version"],
            drift["value"],
            params.drift_threshold,
            drift["new_labels"],
            drift["missing_labels"],
        )


def previous_version(fs, paths: DatasetPaths) -> str | None:
    """The latest complete curated version of the same dataset that sorts before this one."""
    parent = paths.curated.rsplit("/", 1)[0]
    earlier = [
        v
        for v in fs.list(parent)
        if not v.startswith(".") and v < paths.version and fs.exists(f"{parent}/{v}/{SUCCESS}")
    ]
    return max(earlier) if earlier else None
