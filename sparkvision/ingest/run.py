"""Ingest: raw image files -> curated Parquet, with every unusable file quarantined.

``run_ingest`` takes a SparkSession and explicit URIs; ``spark_jobs/ingest.py`` is its entry
point; docs/ingest.md describes the outputs, the reasons and how it scales.

How it reads many small files (the choices, briefly):

- ``file://`` roots (a laptop, or a mount that every node sees at the same path): the listing is
  a Spark job, not a driver loop. The driver lists only the drop's top level (label folders and
  loose files); tasks walk the label folders with ``os.scandir`` (no stat per file) and emit
  relative paths; a range partitioning on path spreads them over decode tasks that each hold one
  sorted path range, whose Python workers read and decode each file themselves. No process ever
  holds the whole listing, the JVM never opens a file, and no pixel is shuffled or sorted: each
  decode partition becomes one curated file as it is.
- Other Hadoop filesystems (``hdfs://``): Spark lists the drop once (``binaryFile``, recursive)
  and its JVM reads the bytes (Python workers have no HDFS client: no libhdfs here, no JVM in
  the worker). Files are packed into few tasks (``openCostInBytes``, ``maxPartitionBytes``,
  ``minPartitionNum``), never one task per file. The driver holds that listing (file statuses).
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

from sparkvision.config.params import IngestParams
from sparkvision.ingest import images
from sparkvision.ingest.decode import decode_batches, decode_local, decode_record
from sparkvision.ingest.files import drop_dir, listing_paths, skipped_name, walk_batches
from sparkvision.ingest.summary import (
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
    """List the drop (the one listing of the run): a binaryFile DataFrame (path, length, content)."""
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(paths.raw)


def run_ingest(spark, paths: DatasetPaths, params: IngestParams) -> dict:
    """Decode the raw drop of ``paths`` into curated Parquet; return the manifest."""
    from sparkvision.platform.storage import HadoopFS

    started = time.monotonic()
    if not HadoopFS(spark).exists(f"{paths.raw}/{SUCCESS}"):
        raise FileNotFoundError(f"no complete raw drop at {paths.raw} (no {SUCCESS})")
    with session_conf(spark, ingest_conf(spark)):
        if paths.raw.startswith("file:"):
            return ingest_local(spark, paths, params, started)
        return ingest_listed(spark, list_drop(spark, paths), paths, params, started)


def decode_partitions(found: int, params: IngestParams, parallelism: int) -> int:
    """Decode tasks of a file:// drop, which are also its curated files (each a sorted path range).

    Files of at most ``target_file_mb``, and enough tasks to keep every core busy twice over,
    but never a task for fewer than ``MIN_FILES_PER_TASK`` files (a small drop: one file).
    """
    by_bytes = output_partitions(found, params.spec.nbytes + 200, params.target_file_mb)
    return max(by_bytes, min(2 * parallelism, math.ceil(found / MIN_FILES_PER_TASK)))


def ingest_local(spark, paths: DatasetPaths, params: IngestParams, started: float | None = None) -> dict:
    """Ingest a drop on a local (or everywhere-mounted) filesystem: listing and reading in tasks.

    The listing (paths only) is range-partitioned and sorted by path before decoding, so every
    decode task holds one sorted range of paths: its rows go to their curated file as they are,
    and no pixel is ever shuffled or sorted.
    """
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.storagelevel import StorageLevel

    started = time.monotonic() if started is None else started
    drop_path = drop_dir(paths.raw)
    entries = sorted(name for name in os.listdir(drop_path) if not skipped_name(name))
    tasks = max(1, min(len(entries), spark.sparkContext.defaultParallelism))
    listing = (
        spark.createDataFrame([(name,) for name in entries], "entry string")
        .repartition(tasks)
        .mapInArrow(lambda it: walk_batches(it, drop_path), f"{schema.PATH} string")
        .persist(StorageLevel.DISK_ONLY)
    )
    try:
        found = listing.count()
        decode_tasks = decode_partitions(found, params, spark.sparkContext.defaultParallelism)
        log.info(
            "found %d files in %s (%d top-level entries listed in %d tasks; %.1fs); decoding in %d tasks",
            found,
            paths.raw,
            len(entries),
            tasks,
            time.monotonic() - started,
            decode_tasks,
        )
        decoded = (
            listing.repartitionByRange(decode_tasks, schema.PATH)
            .sortWithinPartitions(schema.PATH)
            .mapInArrow(lambda it: decode_local(it, drop_path, params), from_arrow_schema(schema.DECODED_SCHEMA))
            .persist(StorageLevel.DISK_ONLY)
        )
        return _curate(spark, decoded, found, paths, params, started, None, presorted=True)
    finally:
        listing.unpersist()


def ingest_listed(spark, files, paths: DatasetPaths, params: IngestParams, started: float | None = None) -> dict:
    """Ingest the files of a listing made by ``list_drop`` (tests remove files in between)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.storagelevel import StorageLevel

    started = time.monotonic() if started is None else started
    drop_path = drop_dir(paths.raw)
    decoded_type = from_arrow_schema(schema.DECODED_SCHEMA)
    found = len(files._jdf.inputFiles())  # the listing itself: no job, no file opened
    log.info("found %d files in %s (%d tasks)", found, paths.raw, files.rdd.getNumPartitions())

    # Files over max_file_bytes are filtered by their listed length (binaryFile never reads
    # their bytes) and, like unreadable and empty files, accounted for from the listing.
    # On file:// the Python workers read the bytes themselves (about twice the JVM reader's
    # rate here: no checksum-filesystem open per file); elsewhere Spark's reader does.
    local = paths.raw.startswith("file:")
    columns = ["path", "length"] if local else ["path", "length", "content"]
    decoded = (
        files.filter(F.col("length") <= params.max_file_bytes)
        .select(*columns)
        .mapInArrow(lambda it: decode_batches(it, drop_path, params, local_read=local), decoded_type)
        .persist(StorageLevel.DISK_ONLY)
    )

    def unaccounted():
        return unreadable_rows(spark, files, decoded, drop_path, params, decoded_type)

    return _curate(spark, decoded, found, paths, params, started, unaccounted)


def _curate(
    spark,
    decoded,
    found: int,
    paths: DatasetPaths,
    params: IngestParams,
    started: float,
    unaccounted,
    presorted: bool = False,
):
    """From cached decoded rows: duplicates, statistics, manifest and the staged, atomic writes.

    ``unaccounted``: builds the rows of listed files that ``decoded`` lacks (None: it lacks none).
    ``presorted``: every partition of ``decoded`` is a sorted range of paths (ingest_local).
    """
    from pyspark.sql import functions as F

    from sparkvision.platform.storage import HadoopFS

    fs = HadoopFS(spark)
    summarize = _summarizer(params)
    cached = [decoded]
    try:
        flagged, duplicates = _flag_duplicates(decoded, params.drop_duplicates)
        log.info("decoded and cached (%.1fs); %s", time.monotonic() - started, duplicates)
        # Only dropped duplicates change the statistics (they become rejects): else no join needed.
        counted = flagged if params.drop_duplicates and duplicates["files"] else decoded
        summary = summarize(counted)
        log.info("summarized (%.1fs)", time.monotonic() - started)
        seen = sum(n for n, _ in summary["groups"].values())
        if seen != found and unaccounted is not None:
            # Listed but not decoded: empty, over max_file_bytes, unreadable or vanished.
            unreadable = unaccounted().persist()
            cached.append(unreadable)
            log.warning("%d listed files were not decoded (empty, too large or unreadable)", unreadable.count())
            flagged = flagged.unionByName(unreadable.withColumn(schema.DUPLICATE_OF, F.lit(None).cast("string")))
            summary = summarize(counted.unionByName(unreadable, allowMissingColumns=True))
        summary["duplicates"] = 0 if params.drop_duplicates else duplicates["files"]  # kept duplicates

        manifest = build_manifest(summary, found, None, paths, params)
        manifest["duplicates"] = duplicates
        parent = paths.curated.rsplit("/", 1)[0]
        previous = previous_version(fs, paths)
        previous_manifest = (
            fs.read_json(f"{fs.readable(f'{parent}/{previous}')}/{CURATED_MANIFEST}") if previous else {}
        )
        previous_labels = previous_manifest.get("label_index")
        label_index = assign_label_indices(manifest["per_label"], previous_labels)
        manifest["label_index"] = label_index
        manifest["previous_version"] = previous
        manifest["label_drift"] = label_drift(
            previous_manifest.get("per_label"), manifest["per_label"], params.drift_threshold
        )
        manifest["content_hash"] = dataset_hash(summary["hash_sum"], params, label_index)
        failed = manifest["rejected_share"] > params.max_rejected_share
        manifest["status"] = "failed: rejected share over max_rejected_share" if failed else "ok"

        fs.mkdirs(parent)
        with fs.staged_dir(paths.curated) as tmp:
            if not failed:
                _write_images(flagged, label_index, manifest["accepted"], params, tmp, presorted)
                manifest["output_files"] = sum(name.endswith(".parquet") for name in fs.list(f"{tmp}/{CURATED_IMAGES}"))
                log.info("wrote %s (%.1fs)", CURATED_IMAGES, time.monotonic() - started)
                fs.write_json(f"{tmp}/{CURATED_LABELS}", label_index)
            _write_rejects(flagged, manifest["rejected"], tmp, params.target_file_mb)
            manifest["duration_s"] = round(time.monotonic() - started, 2)
            fs.write_json(f"{tmp}/{CURATED_MANIFEST}", manifest)
            if not failed:
                fs.touch(f"{tmp}/{SUCCESS}")
    finally:
        for frame in cached:
            frame.unpersist()
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


def unreadable_rows(spark, files, decoded, drop_path: str, params: IngestParams, decoded_type, labelled: bool = True):
    """DECODED rows for the listed files that no decoded row stands for (batch inference uses it too).

    Spark's file scan never reads zero-length files, skips unreadable ones and (by the length
    filter) files over max_file_bytes: the listing minus the decoded paths finds them all, and
    one status call per missing file (on the driver; they are few) tells which.
    """
    from pyspark.sql import DataFrame

    jvm = spark._jvm
    # The listing stays in the JVM (it may hold millions of paths): String[] -> Dataset[String].
    paths_seq = jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(files._jdf.inputFiles())
    listed_j = spark._jsparkSession.createDataset(paths_seq, jvm.org.apache.spark.sql.Encoders.STRING()).toDF()
    listed = DataFrame(listed_j, spark).mapInArrow(
        lambda it: listing_paths(it, drop_path), f"uri string, {schema.PATH} string"
    )
    missing = listed.join(decoded.select(schema.PATH), schema.PATH, "left_anti").collect()
    conf = spark._jsc.hadoopConfiguration()
    rows = []
    for row in missing:
        path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(row["uri"]))
        try:
            size = int(path.getFileSystem(conf).getFileStatus(path).getLen())
            if size == 0:
                reason = (images.EMPTY, "the file has zero bytes")
            elif size > params.max_file_bytes:
                reason = (images.FILE_TOO_LARGE, f"{size} bytes is over max_file_bytes={params.max_file_bytes}")
            else:
                reason = None
        except Exception as exc:  # py4j wraps the Java exception
            size, reason = None, (images.UNREADABLE, f"vanished after the listing: {str(exc).splitlines()[0][:200]}")
        reason = reason or (images.UNREADABLE, "listed, but the read failed (see the executor log)")
        rows.append(decode_record(row[schema.PATH], None, params, size, reason, labelled))
    return spark.createDataFrame(rows, decoded_type)


def _write_images(flagged, label_index: dict[str, int], accepted: int, params: IngestParams, tmp: str, presorted: bool):
    """images.parquet: accepted rows sorted by path, in files sized by bytes.

    ``presorted``: each partition is already a sorted path range, written as one file as it is.
    Otherwise one file (coalesce, no shuffle) or a range partitioning on path, then a sort: every
    file's content is the same whatever the listing order.
    """
    from pyspark.sql import functions as F

    mapping = F.create_map(*[x for label, i in label_index.items() for x in (F.lit(label), F.lit(i))])
    rows = (
        flagged.filter(F.col(schema.REASON).isNull())
        .withColumn(schema.LABEL_INDEX, mapping[F.col(schema.LABEL)].cast("int"))
        .select(*schema.CURATED_SCHEMA.names)
    )
    if not presorted:
        n = output_partitions(accepted, params.spec.nbytes + 200, params.target_file_mb)
        rows = rows.coalesce(1) if n == 1 else rows.repartitionByRange(n, schema.PATH)
        rows = rows.sortWithinPartitions(schema.PATH)
    rows.write.options(**PARQUET_WRITE_OPTIONS).parquet(f"{tmp}/{CURATED_IMAGES}")


def _write_rejects(flagged, rejected: int, tmp: str, target_file_mb: int) -> None:
    from pyspark.sql import functions as F

    rows = flagged.filter(F.col(schema.REASON).isNotNull()).select(*schema.REJECTS_SCHEMA.names)
    n = output_partitions(rejected, 300, target_file_mb)
    rows = rows.coalesce(1) if n == 1 else rows.repartitionByRange(n, schema.PATH)
    rows.sortWithinPartitions(schema.PATH).write.parquet(f"{tmp}/{CURATED_REJECTS}")


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
