"""Hadoop filesystems (``hdfs://`` and any other): listing and reading small files in Spark tasks.

Python workers have no HDFS client here (no libhdfs), so the JVM lists and reads, with small
Java classes (``java/sparkvision/jvm``), compiled once into a jar and added to the session:

- ``HadoopListing`` (a Spark data source): the driver lists only the drop's top level; tasks
  walk the folders with ``listStatusIterator`` and stream ``(path, length)`` rows. No process
  holds the listing.
- ``ReadFiles`` (a UDF over a batch of paths): reads the files of a batch with up to
  ``READ_CONCURRENCY`` reads in flight, so that the NameNode and DataNode round trips of small
  files overlap instead of adding up; each file's bytes, or null and the error. On HDFS
  (``ListedBlocks``) a batch's files are opened with the block locations of one folder listing
  per 1,000 files instead of a NameNode call per file; where the client is configured for
  short-circuit reads, a one-block file on a DataNode of this host is read from its disk with a
  DataNode call per storage folder instead of one per file (``LocalReplicas``, checksums checked).

Between the two, the paths are range-partitioned and sorted (as on ``file://``), cut into
batches of at most ``READ_BATCH_FILES`` files and ``READ_BATCH_BYTES`` listed bytes by a Python
worker (``read_batches``, Arrow offsets only: no per-file Python), and decoded by another
(``decode_read``). Every listed file gives one row, read or not: nothing has to be found again
by comparing the decoded rows with the listing.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from sparkvision.config.params import IngestParams
from sparkvision.ingest import images
from sparkvision.ingest.decode import decode_files
from sparkvision.platform import schema
from sparkvision.platform.settings import PROJECT_DIR

log = logging.getLogger(__name__)

#: The Java sources, and where their jar is built (named by the sources' hash: worktrees or
#: versions that share the cache folder never use each other's classes).
JAVA_SOURCES = Path(__file__).with_name("java")
JAR_DIR = Path(os.environ.get("SPARKVISION_JVM_DIR", PROJECT_DIR / ".cache" / "jvm"))
LISTING_SOURCE = "sparkvision.jvm.HadoopListing"
READ_UDF = "sparkvision_read_files"
#: Reads of one task in flight at once (round trips overlap; more gave nothing here, see docs/ingest.md).
READ_CONCURRENCY = 16
#: A read batch holds at most this many files and listed bytes (one task's memory for file bytes).
READ_BATCH_FILES = 256
READ_BATCH_BYTES = 16 * 1024 * 1024
#: Columns of a read batch row.
PATHS, LENGTHS, FILES = "paths", "lengths", "files"
READ_BATCH_SCHEMA = pa.schema([(PATHS, pa.list_(pa.string())), (LENGTHS, pa.list_(pa.int64()))])


def _sources() -> list[Path]:
    return sorted(JAVA_SOURCES.rglob("*.java"))


def jar_path() -> Path:
    """The jar of the current Java sources (``SPARKVISION_JVM_JAR`` names a prebuilt one)."""
    if os.environ.get("SPARKVISION_JVM_JAR"):
        return Path(os.environ["SPARKVISION_JVM_JAR"])
    digest = hashlib.sha1()
    for source in _sources():
        digest.update(source.relative_to(JAVA_SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return JAR_DIR / f"sparkvision-jvm-{digest.hexdigest()[:12]}.jar"


def build_jar() -> Path:
    """Compile the Java sources against pyspark's jars (once per version of the sources)."""
    jar = jar_path()
    if jar.exists():
        return jar
    import pyspark

    javac = shutil.which("javac", path=f"{os.environ.get('JAVA_HOME', '')}/bin:{os.environ.get('PATH', '')}")
    if javac is None:
        raise RuntimeError(
            f"building {jar.name} needs a JDK (javac), for the HDFS reader's Java classes; "
            "install one (openjdk-17-jdk-headless) or set SPARKVISION_JVM_JAR to a prebuilt jar"
        )
    jar.parent.mkdir(parents=True, exist_ok=True)
    with open(jar.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.exists():
            return jar
        classpath = f"{Path(pyspark.__file__).parent / 'jars'}/*"
        with tempfile.TemporaryDirectory(prefix="sparkvision-jvm-") as classes:
            subprocess.run(
                [javac, "--release", "17", "-nowarn", "-d", classes, "-cp", classpath, *map(str, _sources())],
                check=True,
                capture_output=True,
            )
            tmp = jar.with_suffix(f".{os.getpid()}.tmp")
            with zipfile.ZipFile(tmp, "w") as archive:
                for item in sorted(Path(classes).rglob("*.class")):
                    archive.write(item, item.relative_to(classes).as_posix())
            os.replace(tmp, jar)
        log.info("built %s", jar)
    return jar


def use_jvm(spark) -> None:
    """Add the jar to the session once: the listing source and the read UDF become usable."""
    jar = build_jar()
    added = str(spark.sparkContext._jsc.sc().listJars().mkString("\n")).splitlines()
    if not any(url.endswith(f"/{jar.name}") for url in added):
        spark.sql(f"ADD JAR '{jar}'")


def list_files(spark, uri: str):
    """(path relative to ``uri``, length) of every file of the drop, listed in tasks."""
    use_jvm(spark)
    tasks = spark.sparkContext.defaultParallelism
    return spark.read.format(LISTING_SOURCE).option("path", uri).option("tasks", str(tasks)).load()


def read_column(spark, uri: str, max_file_bytes: int, concurrency: int = READ_CONCURRENCY):
    """A column expression: the read_files struct of the batch in column PATHS, files under ``uri``."""
    from pyspark.sql import functions as F

    use_jvm(spark)
    jvm = spark._jvm
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    # more sockets to DataNodes kept for reuse than the default 16: one per read in flight
    conf.setInt("dfs.client.socketcache.capacity", max(16, 4 * concurrency))
    reader = jvm.sparkvision.jvm.ReadFiles(conf, max_file_bytes, concurrency)
    spark._jsparkSession.udf().register(READ_UDF, reader, jvm.sparkvision.jvm.ReadFiles.RESULT)
    return F.call_udf(READ_UDF, F.lit(uri), F.col(PATHS))


def read_batches(
    batches: Iterable[pa.RecordBatch], max_file_bytes: int, files: int = READ_BATCH_FILES, limit: int = READ_BATCH_BYTES
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (path, length) rows -> read batches (PATHS, LENGTHS lists), order kept.

    A batch ends after ``files`` files or once its listed bytes reach ``limit`` (files over
    ``max_file_bytes`` count nothing: they are not read). Only offsets are computed per batch.
    """
    for batch in batches:
        n = batch.num_rows
        if not n:
            continue
        lengths = batch.column("length").to_numpy(zero_copy_only=False)
        weights = np.where(lengths > max_file_bytes, 0, lengths)
        starts = [0]
        cumulative = np.cumsum(weights)
        while starts[-1] < n:
            start = starts[-1]
            base = cumulative[start - 1] if start else 0
            # the first index past `files` files or `limit` bytes (at least one file per batch)
            by_bytes = int(np.searchsorted(cumulative, base + limit, side="left")) + 1
            starts.append(min(n, start + files, max(start + 1, by_bytes)))
        offsets = pa.array(starts, pa.int32())
        yield pa.RecordBatch.from_arrays(
            [
                pa.ListArray.from_arrays(offsets, batch.column("path")),
                pa.ListArray.from_arrays(offsets, batch.column("length")),
            ],
            schema=READ_BATCH_SCHEMA,
        )


def decode_read(
    batches: Iterable[pa.RecordBatch], params: IngestParams, labelled: bool = True
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: read batches (PATHS, LENGTHS, FILES) -> DECODED rows, one per listed file."""
    limit = params.max_file_bytes
    for batch in batches:
        files = batch.column(FILES)
        paths = batch.column(PATHS).flatten().to_pylist()
        lengths = batch.column(LENGTHS).flatten().to_pylist()
        contents = files.field("content").flatten().to_pylist()
        sizes = files.field("size").flatten().to_pylist()
        errors = files.field("error").flatten().to_pylist()
        yield from decode_files(_records(paths, lengths, contents, sizes, errors, limit), params, labelled)


def _records(paths, lengths, contents, sizes, errors, limit: int):
    for path, length, content, size, error in zip(paths, lengths, contents, sizes, errors, strict=True):
        if content is not None:
            yield path, content, size, None
        elif length > limit or (size is not None and size > limit):
            size = length if length > limit else size
            yield path, None, size, (images.FILE_TOO_LARGE, f"{size} bytes is over max_file_bytes={limit}")
        else:
            yield path, None, length, (images.UNREADABLE, f"listed, but could not be read: {error}")


def read_files(spark, uri: str, listing, partitions: int, max_file_bytes: int, files: int = READ_BATCH_FILES):
    """Read batches (PATHS, LENGTHS, FILES) of every file of ``listing`` (``list_files``' rows).

    ``partitions`` tasks, each one sorted range of paths (so what is made of them can be
    written without a shuffle), read ``files`` files at most per batch. Batch inference can
    decode these rows with its own body.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    read = read_column(spark, uri, max_file_bytes)
    return (
        listing.repartitionByRange(partitions, schema.PATH)
        .sortWithinPartitions(schema.PATH)
        .mapInArrow(lambda it: read_batches(it, max_file_bytes, files), from_arrow_schema(READ_BATCH_SCHEMA))
        .withColumn(FILES, read)
    )


def decoded_files(spark, uri: str, listing, partitions: int, params: IngestParams):
    """DECODED rows, one per file of ``listing``, in ``partitions`` sorted path ranges."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return read_files(spark, uri, listing, partitions, params.max_file_bytes).mapInArrow(
        lambda it: decode_read(it, params), from_arrow_schema(schema.DECODED_SCHEMA)
    )


if __name__ == "__main__":  # python -m sparkvision.ingest.hadoop: build the jar (scripts/setup.sh, the image)
    print(build_jar())
