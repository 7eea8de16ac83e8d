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

import hashlib
import json
import logging
import math
import os
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa

from sparkvision import images, schema
from sparkvision.layout import SAFE_NAME, SUCCESS, DatasetPaths
from sparkvision.params import INGEST_DEFAULTS
from sparkvision.schema import ImageSpec

log = logging.getLogger(__name__)

#: Source-given split, read from the file name: ``train-00042.png`` / ``test-7.jpg``.
SOURCE_SPLIT_PREFIXES = ("train", "test")
_DECODED = schema.DECODED_SCHEMA
#: Target size of one curated Parquet file (pixels dominate; Parquet adds little).
DEFAULT_TARGET_FILE_MB = 128
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
#: file:// roots: paths per Arrow batch emitted by the listing tasks.
LISTING_BATCH = 10_000


@dataclass(frozen=True)
class IngestParams:
    """Everything that decides the content of a curated version (recorded in its manifest)."""

    spec: ImageSpec = field(default_factory=ImageSpec)
    max_rejected_share: float = 0.05
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    resize_policy: str = INGEST_DEFAULTS["resize_policy"]
    drop_duplicates: bool = INGEST_DEFAULTS["drop_duplicates"]
    drift_threshold: float = INGEST_DEFAULTS["drift_threshold"]
    max_file_bytes: int = images.DEFAULT_MAX_FILE_BYTES
    alpha_background: int = 0
    target_file_mb: int = DEFAULT_TARGET_FILE_MB

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_rejected_share <= 1.0:
            raise ValueError(f"max_rejected_share must be within 0..1, got {self.max_rejected_share}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if self.resize_policy not in images.RESIZE_POLICIES:
            raise ValueError(f"resize_policy must be one of {images.RESIZE_POLICIES}, got {self.resize_policy!r}")
        if not 0.0 <= self.drift_threshold <= 1.0:
            raise ValueError(f"drift_threshold must be within 0..1, got {self.drift_threshold}")
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if not 0 <= self.alpha_background <= 255:
            raise ValueError(f"alpha_background must be within 0..255, got {self.alpha_background}")
        if self.target_file_mb < 1:
            raise ValueError(f"target_file_mb must be positive, got {self.target_file_mb}")


class TooManyRejectsError(RuntimeError):
    """The rejected share of a drop passed the threshold."""


class AccountingError(RuntimeError):
    """accepted + rejected != files found: a bug, never a property of the data."""


# -- pure functions: paths and labels ----------------------------------------------------------


def uri_to_path(uri: str) -> str:
    """The path of a Hadoop path string (``file:/a/b``, ``file:///a/b``, ``hdfs://nn:8020/a/b``).

    Hadoop prints paths unencoded, so a name may hold ``#``, ``%`` or spaces: no URL parsing.
    """
    if "://" in uri:
        rest = uri.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    if uri.startswith("file:"):
        return uri[len("file:") :]
    return uri


def drop_dir(raw_uri: str) -> str:
    """The filesystem path of a drop's root URI (as given on the command line)."""
    return unquote(urlparse(raw_uri).path).rstrip("/")


def relative_path(file_uri: str, drop_path: str) -> str:
    """The path of a listed file inside the drop (``<label>/.../<file>``)."""
    path = uri_to_path(file_uri)
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


# -- pure functions: reading and decoding (the mapInArrow bodies) --------------------------------


def read_file(path: str, max_file_bytes: int) -> tuple[bytes | None, int | None, tuple[str, str] | None]:
    """A local file's (bytes, size, None), or (None, size or None, reason) when it cannot be used.

    Four system calls per file (open, fstat, read, close): the size comes from the open file, so
    the listing needs no stat of its own and a file over ``max_file_bytes`` is never read. A pipe,
    a device or a folder reached through a link is refused (opened non-blocking: no hang).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return None, None, _read_error(exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, None, (images.UNREADABLE, "not a regular file (a folder behind a link, a pipe or a device)")
        if info.st_size > max_file_bytes:
            return None, info.st_size, (images.FILE_TOO_LARGE, f"{info.st_size} bytes is over {max_file_bytes=}")
        parts, remaining = [], info.st_size
        while remaining > 0:  # one read for all but huge files; a file cut short ends early
            part = os.read(fd, remaining)
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data, len(data), None
    except OSError as exc:
        return None, None, _read_error(exc)
    finally:
        os.close(fd)


def _read_error(exc: OSError) -> tuple[str, str]:
    return images.UNREADABLE, f"listed, but could not be read: {type(exc).__name__}: {exc.strerror or exc}"


#: One Arrow batch out of the decoder holds at most this many bytes of pixels.
DECODED_BATCH_BYTES = 64 * 1024 * 1024
#: Squares of uint8 values (255**2 fits 16 bits: sums of squares with a 2x, not 8x, temporary).
_SQUARES = (np.arange(256, dtype=np.uint32) ** 2).astype(np.uint16)


def decode_files(records: Iterable[tuple[str, bytes | None, int | None, tuple[str, str] | None]], params: IngestParams):
    """(relative path, bytes, size, reason when not read) per file -> DECODED_SCHEMA batches.

    Files are decoded one at a time as ``records`` yields them (a lazy reader holds one file's
    bytes at a time); pixels of one output batch land in one buffer. Precedence of reasons: no
    label folder, unsafe label, not read, then what the bytes say.
    """
    spec = params.spec
    per_batch = max(1, DECODED_BATCH_BYTES // spec.nbytes)
    columns: dict[str, list] = {name: [] for name in _ROW_COLUMNS}
    kept: list[int] = []
    pixels: list[np.ndarray] = []
    for rel_path, content, size, missing in records:
        label = digest = None
        dims: tuple = (None, None, None)
        reason: tuple = (None, None)
        try:
            label = label_of(rel_path)
            if content is None:
                raise images.Rejected(*(missing or (images.UNREADABLE, "the file could not be read")))
            digest = images.content_hash(content)
            image, *dims = images.decode_array(
                content, spec, params.max_pixels, params.resize_policy, params.alpha_background
            )
        except images.Rejected as rejected:
            dims, reason = (None, None, None), (rejected.reason, rejected.detail)
        else:
            kept.append(len(columns[schema.PATH]))
            pixels.append(image)
        if size is None and content is not None:
            size = len(content)
        row = (images.stable_id(rel_path), rel_path, label, source_split(rel_path), digest, *dims, size, *reason)
        for name, value in zip(_ROW_COLUMNS, row, strict=True):
            columns[name].append(value)
        if len(kept) >= per_batch:
            yield _decoded_batch(columns, kept, pixels, spec)
            columns, kept, pixels = {name: [] for name in _ROW_COLUMNS}, [], []
    if columns[schema.PATH]:
        yield _decoded_batch(columns, kept, pixels, spec)


#: DECODED_SCHEMA columns built row by row (the pixels and the statistics columns: per batch).
_ROW_COLUMNS = [n for n in schema.DECODED_SCHEMA.names if n not in (schema.PIXELS, *schema.DECODE_STATS)]


def _decoded_batch(columns: dict[str, list], kept: list[int], pixels: list[np.ndarray], spec: ImageSpec):
    """One DECODED_SCHEMA batch: pixels of the ``kept`` rows in one buffer, nulls elsewhere."""
    n = len(columns[schema.PATH])
    valid = np.zeros(n, dtype=bool)
    valid[kept] = True
    channels = spec.channels
    block = np.stack(pixels).reshape(len(kept), -1) if pixels else np.zeros((0, spec.nbytes), np.uint8)
    validity = pa.array(valid).buffers()[1]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid * spec.nbytes, out=offsets[1:])
    pixel_column = pa.Array.from_buffers(
        pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(block)], null_count=n - len(kept)
    )
    per_channel = block.reshape(len(kept), spec.height * spec.width, channels)
    sums = per_channel.sum(axis=1, dtype=np.int64)
    squares = _SQUARES[per_channel].sum(axis=1, dtype=np.int64)
    arrays = {schema.PIXELS: pixel_column}
    for c, (sum_name, sumsq_name) in enumerate(zip(schema.PIXEL_SUMS, schema.PIXEL_SUMSQS, strict=True)):
        for name, values in ((sum_name, sums), (sumsq_name, squares)):
            column = np.zeros(n, dtype=np.int64)
            if c < channels:
                column[kept] = values[:, c]
            arrays[name] = pa.array(column, mask=~valid if c < channels else np.ones(n, dtype=bool))
    parts = np.zeros(n, dtype=np.uint64)
    paths, digests = columns[schema.PATH], columns[schema.CONTENT_HASH]
    parts[kept] = [hash_part(paths[i], digests[i]) for i in kept]
    arrays[schema.HASH_PART_HI] = pa.array((parts >> np.uint64(32)).astype(np.int64), mask=~valid)
    arrays[schema.HASH_PART_LO] = pa.array((parts & np.uint64(0xFFFFFFFF)).astype(np.int64), mask=~valid)
    for name in _ROW_COLUMNS:
        arrays[name] = pa.array(columns[name], type=_DECODED.field(name).type)
    return pa.RecordBatch.from_arrays([arrays[name] for name in _DECODED.names], schema=_DECODED)


def decode_record(
    rel_path: str,
    content: bytes | None,
    params: IngestParams,
    size: int | None = None,
    missing: tuple[str, str] = (images.UNREADABLE, "the file could not be read"),
) -> tuple:
    """One row of DECODED_SCHEMA (a tuple in its column order) for one file: ``decode_files`` of one.

    ``content`` None means the bytes were not read; ``missing`` gives the reason.
    """
    (batch,) = decode_files([(rel_path, content, size, missing)], params)
    return tuple(column[0].as_py() for column in batch.columns)


def decode_batches(
    batches: Iterable[pa.RecordBatch],
    drop_path: str,
    params: IngestParams,
    missing: tuple[str, str] = (images.UNREADABLE, "the file could not be read"),
    local_read: bool = False,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body over Spark's listing: binaryFile batches (path, length[, content]) -> DECODED.

    ``local_read``: the batch has no content and the files are on a local filesystem: each is
    read here (``read_file``). Otherwise, without a ``content`` column every file is rejected
    with ``missing`` (files refused from the listing).
    """
    for batch in batches:
        uris = batch.column("path").to_pylist()
        names = batch.schema.names
        sizes = batch.column("length").to_pylist() if "length" in names else [None] * len(uris)
        if "content" in names:
            contents = batch.column("content").to_pylist()
            records = (
                (relative_path(uri, drop_path), content, size, missing)
                for uri, size, content in zip(uris, sizes, contents, strict=True)
            )
        elif local_read:
            records = (
                (relative_path(uri, drop_path), *read_file(uri_to_path(uri), params.max_file_bytes)) for uri in uris
            )
        else:
            records = (
                (relative_path(uri, drop_path), None, size, missing) for uri, size in zip(uris, sizes, strict=True)
            )
        yield from decode_files(records, params)


def decode_local(batches: Iterable[pa.RecordBatch], drop_path: str, params: IngestParams) -> Iterator[pa.RecordBatch]:
    """mapInArrow body for file:// drops: relative paths (``path``) -> DECODED, each file read here."""

    def records(rel_paths: list[str]):
        for rel_path in rel_paths:
            content, size, reason = read_file(os.path.join(drop_path, rel_path), params.max_file_bytes)
            yield rel_path, content, size, reason

    for batch in batches:
        yield from decode_files(records(batch.column(schema.PATH).to_pylist()), params)


def skipped_name(name: str) -> bool:
    """Names that are not part of a drop (Spark's listing skips them too): ``.x``, ``_x``, ``x._COPYING_``."""
    return name.startswith((".", "_")) or name.endswith("._COPYING_")


def walk_files(drop_path: str, entry: str) -> Iterator[str]:
    """The path (relative to the drop) of ``entry`` if it is a file, else of every file below it.

    No stat per file: folders are told from files by the directory entry's type, without
    following links to folders (no cycles); a link is listed as a file, and the reader refuses
    it when it leads nowhere or to a folder.
    """
    top = os.path.join(drop_path, entry)
    try:
        is_dir = os.path.isdir(top) and not os.path.islink(top)
    except OSError:
        is_dir = False
    if not is_dir:
        yield entry
        return
    stack = [(top, entry)]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as entries:
            for item in entries:
                if skipped_name(item.name):
                    continue
                if item.is_dir(follow_symlinks=False):
                    stack.append((item.path, f"{rel}/{item.name}"))
                else:
                    yield f"{rel}/{item.name}"


def _listable(path: str) -> str:
    """A path as an Arrow string: names that are not UTF-8 keep a readable, replaced spelling."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", errors="replace")
    return path


def _path_batch(rel_paths: list[str]) -> pa.RecordBatch:
    try:
        column = pa.array(rel_paths, pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        column = pa.array([_listable(path) for path in rel_paths], pa.string())
    return pa.RecordBatch.from_arrays([column], names=[schema.PATH])


def walk_batches(batches: Iterable[pa.RecordBatch], drop_path: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: top-level entries of a drop (``entry``) -> ``path`` of every file in them.

    Batches of at most ``LISTING_BATCH`` files: a folder of millions of files streams through.
    """
    for batch in batches:
        for entry in batch.column("entry").to_pylist():
            rel_paths: list[str] = []
            for rel_path in walk_files(drop_path, entry):
                rel_paths.append(rel_path)
                if len(rel_paths) >= LISTING_BATCH:
                    yield _path_batch(rel_paths)
                    rel_paths = []
            if rel_paths:
                yield _path_batch(rel_paths)


def listing_paths(batches: Iterable[pa.RecordBatch], drop_path: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: percent-encoded listing URIs (``value``) -> (uri, relative path)."""
    for batch in batches:
        uris = batch.column("value").to_pylist()
        rel = [relative_path(unquote(uri), drop_path) for uri in uris]
        yield pa.RecordBatch.from_pydict({"uri": uris, schema.PATH: rel})


# -- pure functions: statistics, labels, drift ---------------------------------------------------


def size_bucket(height: int, width: int) -> str:
    """Histogram bucket of an original size: the longest side rounded up to a power of two.

    The definition that the statistics' Spark aggregation (``_summarizer``) computes in SQL; the
    integration tests check the one against the other.
    """
    longest = max(height, width, 1)
    return f"<={1 << (longest - 1).bit_length()}"


def hash_part(path: str, digest: str) -> int:
    """One accepted file's share of the dataset hash: 64 bits of sha256("<path>:<content hash>")."""
    return int(hashlib.sha256(f"{path}:{digest}".encode()).hexdigest()[:16], 16)


def fold_summary(rows: Iterable[dict], spec: ImageSpec) -> dict:
    """The summary of one ingest from the rows of its one aggregation (see ``_summarizer``).

    Each row is one (reason, label, size bucket, channels) group with ``files``, ``bytes``, and
    sums of its accepted images' hash parts (HASH_PART_HI/LO) and per-channel pixel sums.
    """
    channels = spec.channels
    total: dict = {"groups": {}, "sizes": {}, "in_channels": {}, "hash_sum": 0, "duplicates": 0}
    images_n = 0
    sums = [0] * channels
    squares = [0] * channels
    for row in rows:
        reason, files = row[schema.REASON], row["files"]
        group = total["groups"].setdefault(f"{reason or ''}|{row[schema.LABEL] or ''}", [0, 0])
        group[0] += files
        group[1] += row["bytes"] or 0
        if reason is not None:
            continue
        images_n += files
        bucket = f"<={row['size_edge']}"
        total["sizes"][bucket] = total["sizes"].get(bucket, 0) + files
        key = str(row[schema.ORIG_CHANNELS])
        total["in_channels"][key] = total["in_channels"].get(key, 0) + files
        total["hash_sum"] += (row[schema.HASH_PART_HI] << 32) + row[schema.HASH_PART_LO]
        for c in range(channels):
            sums[c] += row[schema.PIXEL_SUMS[c]]
            squares[c] += row[schema.PIXEL_SUMSQS[c]]
    n = images_n * spec.height * spec.width
    total["channel_mean"] = [round(s / n, 4) if n else None for s in sums]
    total["channel_std"] = [
        round(math.sqrt(max(q / n - (s / n) ** 2, 0.0)), 4) if n else None for s, q in zip(sums, squares, strict=True)
    ]
    return total


def assign_label_indices(labels: Iterable[str], previous: dict[str, int] | None) -> dict[str, int]:
    """Label -> index, keeping every earlier version's indices; new labels append in sorted order."""
    mapping = dict(previous or {})
    for label in sorted(set(labels) - set(mapping)):
        mapping[label] = len(mapping)
    return mapping


def label_drift(previous: dict[str, int] | None, current: dict[str, int], threshold: float) -> dict | None:
    """Label-distribution drift against the previous version: total variation distance.

    TV = 1/2 * sum |p(label) - q(label)| over the union of labels: 0 = same shares, 1 = disjoint.
    """
    if not previous:
        return None
    prev_n, cur_n = sum(previous.values()), sum(current.values())
    labels = sorted(set(previous) | set(current))
    shares = {
        label: {
            "previous": round(previous.get(label, 0) / prev_n, 6) if prev_n else 0.0,
            "current": round(current.get(label, 0) / cur_n, 6) if cur_n else 0.0,
        }
        for label in labels
    }
    tv = 0.5 * sum(abs(s["previous"] - s["current"]) for s in shares.values())
    return {
        "metric": "total_variation",
        "value": round(tv, 6),
        "threshold": threshold,
        "exceeded": tv > threshold,
        "new_labels": sorted(set(current) - set(previous)),
        "missing_labels": sorted(set(previous) - set(current)),
        "shares": shares,
    }


def output_partitions(rows: int, row_bytes: int, target_mb: int) -> int:
    """How many Parquet files for ``rows`` rows of about ``row_bytes`` each: sized by bytes."""
    return max(1, math.ceil(rows * row_bytes / (target_mb * 1024 * 1024)))


def build_manifest(
    summary: dict, found: int, found_bytes: int | None, paths: DatasetPaths, params: IngestParams
) -> dict:
    """Counts, reasons, sizes and statistics of one ingest; checks accepted + rejected == found."""
    accepted = rejected = accepted_bytes = 0
    by_reason: dict[str, int] = {}
    per_label: dict[str, int] = {}
    rejected_per_label: dict[str, int] = {}
    total_bytes = 0
    for key, (n, nbytes) in summary["groups"].items():
        reason, label = key.split("|", 1)
        total_bytes += nbytes
        if reason:
            rejected += n
            by_reason[reason] = by_reason.get(reason, 0) + n
            rejected_per_label[label or "(none)"] = rejected_per_label.get(label or "(none)", 0) + n
        else:
            accepted += n
            accepted_bytes += nbytes
            per_label[label] = per_label.get(label, 0) + n
    if found == 0:
        raise RuntimeError(f"ingest found no files in {paths.raw}")
    if accepted + rejected != found:
        raise AccountingError(f"accounting error: {accepted} accepted + {rejected} rejected != {found} files found")
    return {
        "dataset": paths.dataset,
        "version": paths.version,
        "source": paths.raw,
        "image_shape": list(params.spec.shape),
        "params": {**asdict(params), "spec": str(params.spec)},
        "files_found": found,
        "accepted": accepted,
        "rejected": rejected,
        "invariant": f"accepted + rejected == files_found: {accepted} + {rejected} == {found}",
        "rejected_share": round(rejected / found, 6),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "rejected_per_label": dict(sorted(rejected_per_label.items())),
        "duplicates_flagged": summary["duplicates"],
        "per_label": dict(sorted(per_label.items())),
        "bytes": found_bytes if found_bytes is not None else total_bytes,
        "bytes_accepted": accepted_bytes,
        "orig_size_histogram": dict(sorted(summary["sizes"].items(), key=lambda kv: int(kv[0][2:]))),
        "orig_channels_histogram": dict(sorted(summary["in_channels"].items())),
        "channel_mean": summary["channel_mean"],
        "channel_std": summary["channel_std"],
    }


def dataset_hash(hash_sum: int, params: IngestParams, label_index: dict[str, int]) -> str:
    """The dataset's content hash: every accepted (path, file hash), the conversion and the labels.

    Order-independent (a sum over files), so it does not depend on partitioning or listing order.
    """
    text = json.dumps(
        [f"{hash_sum:x}", str(params.spec), params.resize_policy, params.alpha_background, label_index],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


# -- Spark -----------------------------------------------------------------------------------------


@contextmanager
def session_conf(spark, conf: dict[str, str]) -> Iterator[None]:
    """Set SQL confs for the block and restore them after (the session may be shared)."""
    old = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


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
    from sparkvision.storage import HadoopFS

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
            .mapInArrow(lambda it: decode_local(it, drop_path, params), from_arrow_schema(_DECODED))
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
    decoded_type = from_arrow_schema(_DECODED)
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
        return _unreadable(spark, files, decoded, drop_path, params, decoded_type)

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

    from sparkvision.storage import HadoopFS

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
        previous_manifest = fs.read_json(f"{parent}/{previous}/manifest.json") if previous else {}
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
                manifest["output_files"] = sum(name.endswith(".parquet") for name in fs.list(f"{tmp}/images.parquet"))
                log.info("wrote images.parquet (%.1fs)", time.monotonic() - started)
                fs.write_json(f"{tmp}/labels.json", label_index)
            _write_rejects(flagged, manifest["rejected"], tmp)
            manifest["duration_s"] = round(time.monotonic() - started, 2)
            fs.write_json(f"{tmp}/manifest.json", manifest)
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
            f"see {paths.curated}/rejects.parquet for paths and reasons"
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
    return flagged.select(*_DECODED.names, schema.DUPLICATE_OF), info


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


def _unreadable(spark, files, decoded, drop_path: str, params: IngestParams, decoded_type):
    """DECODED rows for the listed files that no decoded row stands for.

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
        rows.append(decode_record(row[schema.PATH], None, params, size, reason))
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
    rows.write.options(**PARQUET_WRITE_OPTIONS).parquet(f"{tmp}/images.parquet")


def _write_rejects(flagged, rejected: int, tmp: str) -> None:
    from pyspark.sql import functions as F

    rows = flagged.filter(F.col(schema.REASON).isNotNull()).select(*schema.REJECTS_SCHEMA.names)
    n = output_partitions(rejected, 300, DEFAULT_TARGET_FILE_MB)
    rows = rows.coalesce(1) if n == 1 else rows.repartitionByRange(n, schema.PATH)
    rows.sortWithinPartitions(schema.PATH).write.parquet(f"{tmp}/rejects.parquet")


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
