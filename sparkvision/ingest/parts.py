"""file:// roots: pixels stay in the Python workers, and each decode task writes its own curated files.

The three task bodies of a local ingest (``run.ingest_local`` plans them):

1. ``decode_to_spill`` (decode pass, one task per sorted path range): reads and decodes its
   files, keeps every decoded row (pixels included) in a spill file of its own under the staging
   folder, adds up its files' statistics (one ``STATS`` row per reason, label, size bucket and
   channels: what it tells the driver) and writes its accepted files' (content hash, path) into
   one small file per hash bucket. With ``drop_duplicates`` it also writes the small columns
   (``SMALL_SCHEMA``) as Parquet: the statistics then depend on the duplicates, and Spark adds
   them up once those are known.
2. ``find_duplicates`` (duplicates pass, one task per hash bucket): reads its bucket from every
   decode task, finds the groups of equal content (the first path, in path order, and the
   others) and writes the duplicates of each decode task's range to that range's folder.
3. ``write_parts`` (write pass, one task per decode task, once the label indices and the
   duplicates are known): streams its spill file back, sets ``label_index`` and ``duplicate_of``
   (and rejects duplicates when they are dropped), and writes ``images.parquet/part-NNNNN.parquet``
   and, when it has rejects, ``rejects.parquet/part-NNNNN.parquet`` with pyarrow.

So the JVM never holds, caches, serializes, sorts or encodes a pixel or a path: it schedules the
tasks and gets a few rows from each. Every task works on a bounded share: one batch at a time,
its own range, or one hash bucket (there are as many buckets as decode tasks, which grow with
the drop's bytes). The spill of a task is as large as its curated file and lives on the output's
filesystem (a file:// root is mounted at the same path on every node, so any pass may run
anywhere). Files are written under a hidden name and renamed when complete, so a retried task
leaves one copy.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkvision.config.params import IngestParams
from sparkvision.ingest import images
from sparkvision.ingest.decode import decode_local
from sparkvision.platform import schema
from sparkvision.platform.layout import CURATED_IMAGES, CURATED_REJECTS

#: The decode task (and write task) a row belongs to: its spill file and its curated part files.
PART = "part"
#: What the decode pass keeps of every row for the write pass (everything but the statistics).
SPILL_SCHEMA = pa.schema([f for f in schema.DECODED_SCHEMA if f.name not in schema.DECODE_STATS])
#: What the decode pass hands Spark for every file: no pixels, no ids, no text.
SMALL_SCHEMA = pa.schema(
    [
        *[
            schema.DECODED_SCHEMA.field(name)
            for name in (
                schema.PATH,
                schema.LABEL,
                schema.CONTENT_HASH,
                schema.ORIG_HEIGHT,
                schema.ORIG_WIDTH,
                schema.ORIG_CHANNELS,
                schema.SIZE,
                schema.REASON,
                *schema.DECODE_STATS,
            )
        ],
        (PART, pa.int32()),
    ]
)
#: The statistics' size bucket of an accepted image: its longest side rounded up to a power of two.
SIZE_EDGE = "size_edge"
#: The statistics of a decode task's files, a row per group (the rows ``summary.fold_summary``
#: adds up): the group's files and bytes, and its accepted images' pixel sums and hash parts.
_STATS_KEYS = (schema.REASON, schema.LABEL, SIZE_EDGE, schema.ORIG_CHANNELS)
_STATS_SUMS = (schema.SIZE, *schema.DECODE_STATS)
STATS = pa.schema(
    [
        (PART, pa.int32()),
        (schema.REASON, pa.string()),
        (schema.LABEL, pa.string()),
        (SIZE_EDGE, pa.int64()),
        (schema.ORIG_CHANNELS, pa.int32()),
        ("files", pa.int64()),
        ("bytes", pa.int64()),
        *[(name, pa.int64()) for name in schema.DECODE_STATS],
    ]
)
#: What a duplicates task and a write task tell the driver (Arrow; Spark's types are made from these).
FOUND = pa.schema([("bucket", pa.int32()), ("groups", pa.int64()), ("files", pa.int64())])
WRITTEN = pa.schema([(PART, pa.int32()), ("images", pa.int64()), ("rejects", pa.int64())])
#: What a decode task keeps of each accepted file for the duplicates pass, per hash bucket.
_HASHED_SCHEMA = pa.schema(
    [schema.DECODED_SCHEMA.field(schema.CONTENT_HASH), schema.DECODED_SCHEMA.field(schema.PATH), (PART, pa.int32())]
)
#: Columns of the duplicates table the write pass reads: a duplicate's path and its first path.
FIRST = "first_path"
#: A Parquet row group of images.parquet holds about this many bytes (as Spark's writer did).
ROW_GROUP_BYTES = 32 * 1024 * 1024
#: Bytes of one SMALL_SCHEMA row, about (paths, hashes, a dozen numbers).
SMALL_ROW_BYTES = 200
#: Columns whose values repeat (a dictionary pays); the others are unique per row.
_DICTIONARY_COLUMNS = [
    schema.LABEL,
    schema.LABEL_INDEX,
    schema.SOURCE_SPLIT,
    schema.ORIG_HEIGHT,
    schema.ORIG_WIDTH,
    schema.ORIG_CHANNELS,
    schema.REASON,
]


def spill_path(spill_dir: str, part: int) -> str:
    return f"{spill_dir}/part-{part:05d}.arrow"


def bucket_dir(hashes_dir: str, bucket: int) -> str:
    return f"{hashes_dir}/bucket-{bucket:05d}"


def decode_to_spill(
    batches: Iterable[pa.RecordBatch],
    drop_path: str,
    params: IngestParams,
    spill_dir: str,
    hashes_dir: str,
    buckets: int,
    small_dir: str | None,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of the decode pass: paths -> this task's spill file, hash buckets and statistics.

    Yields the task's ``STATS`` rows. ``small_dir``: where to write the small columns as Parquet
    (with ``drop_duplicates``), or None.
    """
    from pyspark import TaskContext

    context = TaskContext.get()
    part = context.partitionId()
    spill_file = spill_path(spill_dir, part)
    spill_tmp = f"{spill_dir}/.part-{part:05d}.{context.attemptNumber()}.{os.getpid()}.tmp"
    small = _PartWriter(small_dir, part, SMALL_SCHEMA, SMALL_ROW_BYTES, _DICTIONARY_COLUMNS) if small_dir else None
    stats = _Stats()
    hashed: list[pa.RecordBatch] = []
    with pa.OSFile(spill_tmp, "wb") as sink, pa.ipc.new_stream(sink, SPILL_SCHEMA) as spill:
        for batch in decode_local(batches, drop_path, params):
            spill.write_batch(batch.select(SPILL_SCHEMA.names))
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            columns[PART] = pa.array(np.full(batch.num_rows, part, dtype=np.int32))
            stats.add(batch)
            hashed.append(_batch(columns, _HASHED_SCHEMA).filter(pc.is_null(batch.column(schema.REASON))))
            if small is not None:
                small.add(_batch(columns, SMALL_SCHEMA))
    os.replace(spill_tmp, spill_file)
    if small is not None:
        small.close()
    _write_buckets(pa.Table.from_batches(hashed, schema=_HASHED_SCHEMA), hashes_dir, buckets, part)
    yield stats.batch(part)


def _write_buckets(table: pa.Table, hashes_dir: str, buckets: int, part: int) -> None:
    """Split a decode task's (content hash, path) rows by hash bucket: one file per bucket."""
    if not table.num_rows:
        return
    of_row = np.concatenate([_bucket_of(chunk, buckets) for chunk in table.column(schema.CONTENT_HASH).chunks])
    # one stable sort by bucket, then a slice per bucket (rows keep their order within a bucket)
    order = np.argsort(of_row, kind="stable")
    present, starts = np.unique(of_row[order], return_index=True)
    by_bucket = table.take(pa.array(order))
    for bucket, start, end in zip(present, starts, [*starts[1:], len(order)], strict=True):
        folder = bucket_dir(hashes_dir, int(bucket))
        os.makedirs(folder, exist_ok=True)
        final = f"{folder}/part-{part:05d}.arrow"
        tmp = f"{folder}/.part-{part:05d}.{os.getpid()}.tmp"
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, _HASHED_SCHEMA) as out:
            out.write_table(by_bucket.slice(int(start), int(end - start)))
        os.replace(tmp, final)


#: Hex digit -> value, for the bytes of a lowercase hex digest.
_HEX = np.zeros(256, np.uint32)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint32)


def _bucket_of(digests: pa.StringArray, buckets: int) -> np.ndarray:
    """The bucket of each sha256 hex digest: its first 8 digits (32 uniform bits) modulo ``buckets``.

    Read from the Arrow string buffers directly (a Python loop would parse 100,000 strings a task).
    """
    offsets = np.frombuffer(digests.buffers()[1], np.int32)[digests.offset : digests.offset + len(digests)]
    data = np.frombuffer(digests.buffers()[2], np.uint8)
    value = np.zeros(len(digests), np.uint64)
    for k in range(8):
        value = (value << np.uint64(4)) | _HEX[data[offsets + k]].astype(np.uint64)
    return (value % np.uint64(buckets)).astype(np.int32)


class _Stats:
    """A decode task's statistics: its rows grouped by ``_STATS_KEYS`` (pyarrow), added up here.

    The same groups and sums as Spark's aggregation over the small columns (``run._summarizer``):
    size bucket and channels only for accepted images, pixel sums and hash parts only of them.
    Batches are grouped ``GROUP_ROWS`` rows at a time (a group-by per batch of 1,000 costs more).
    """

    GROUP_ROWS = 64 * 1024

    def __init__(self) -> None:
        self.groups: dict[tuple, list[int]] = {}
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        accepted = pc.is_null(batch.column(schema.REASON))
        longest = pc.max_element_wise(batch.column(schema.ORIG_HEIGHT), batch.column(schema.ORIG_WIDTH), 1)
        longest = longest.to_numpy(zero_copy_only=False).astype(np.int64)
        # 1 << bit_length(longest - 1), as summary.size_bucket: 2 ** ceil(log2(longest)), exact here
        edge = np.left_shift(1, np.ceil(np.log2(np.maximum(longest, 1))).astype(np.int64))
        nothing = pa.scalar(None, pa.int64())
        columns = {
            schema.REASON: batch.column(schema.REASON),
            schema.LABEL: batch.column(schema.LABEL),
            SIZE_EDGE: pc.if_else(accepted, pa.array(edge, pa.int64()), nothing),
            schema.ORIG_CHANNELS: pc.if_else(accepted, batch.column(schema.ORIG_CHANNELS), pa.scalar(None, pa.int32())),
            schema.SIZE: batch.column(schema.SIZE),
            **{name: pc.if_else(accepted, batch.column(name), nothing) for name in schema.DECODE_STATS},
        }
        self.pending.append(pa.table(columns))
        self.pending_rows += batch.num_rows
        if self.pending_rows >= self.GROUP_ROWS:
            self._group()

    def _group(self) -> None:
        if not self.pending:
            return
        grouped = pa.concat_tables(self.pending).group_by(list(_STATS_KEYS), use_threads=False)
        self.pending, self.pending_rows = [], 0
        sums = grouped.aggregate([([], "count_all"), *[(name, "sum") for name in _STATS_SUMS]])
        names = ["count_all", *[f"{name}_sum" for name in _STATS_SUMS]]
        keys = zip(*[sums.column(name).to_pylist() for name in _STATS_KEYS], strict=True)
        values = zip(*[sums.column(name).to_pylist() for name in names], strict=True)
        for key, row in zip(keys, values, strict=True):
            total = self.groups.setdefault(key, [0] * len(names))
            for i, value in enumerate(row):
                total[i] += value or 0

    def batch(self, part: int) -> pa.RecordBatch:
        self._group()
        keys, values = list(self.groups), list(self.groups.values())
        columns = {PART: [part] * len(keys)}
        for i, name in enumerate(_STATS_KEYS):
            columns[name] = [key[i] for key in keys]
        for i, name in enumerate(STATS.names[len(columns) :]):  # the sums, after part and the keys
            columns[name] = [row[i] for row in values]
        return pa.RecordBatch.from_pydict(columns, schema=STATS)


def find_duplicates(batches: Iterable[pa.RecordBatch], hashes_dir: str, dups_dir: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of the duplicates pass: bucket numbers (``id``) -> (bucket, groups, files).

    A duplicate is an accepted file whose content hash an earlier path (in path order) has. Each
    bucket's duplicates are written as ``dups_dir/part=<decode task>/bucket-NNNNN.parquet``
    (``path``, ``FIRST``): the write pass of a range reads only its own folder.
    """
    for batch in batches:
        for bucket in batch.column("id").to_pylist():
            groups, files = _bucket_duplicates(int(bucket), hashes_dir, dups_dir)
            yield pa.RecordBatch.from_pydict({"bucket": [bucket], "groups": [groups], "files": [files]}, schema=FOUND)


def _bucket_duplicates(bucket: int, hashes_dir: str, dups_dir: str) -> tuple[int, int]:
    folder = bucket_dir(hashes_dir, bucket)
    names = sorted(glob.glob(f"{glob.escape(folder)}/part-*.arrow"))
    if not names:
        return 0, 0
    tables = []
    for name in names:
        with pa.memory_map(name) as source:
            tables.append(pa.ipc.open_file(source).read_all())
    rows = pa.concat_tables(tables)
    per_hash = rows.group_by(schema.CONTENT_HASH, use_threads=False).aggregate(
        [(schema.PATH, "min"), (schema.PATH, "count")]
    )
    shared = per_hash.filter(pc.greater(per_hash.column(f"{schema.PATH}_count"), 1))
    if not shared.num_rows:
        return 0, 0
    firsts = shared.select([schema.CONTENT_HASH, f"{schema.PATH}_min"]).rename_columns([schema.CONTENT_HASH, FIRST])
    joined = rows.join(firsts, schema.CONTENT_HASH, join_type="inner", use_threads=False)
    duplicates = joined.filter(pc.not_equal(joined.column(schema.PATH), joined.column(FIRST)))
    for part in pc.unique(duplicates.column(PART)).to_pylist():
        out = f"{dups_dir}/{PART}={part}"
        os.makedirs(out, exist_ok=True)
        chosen = duplicates.filter(pc.equal(duplicates.column(PART), part)).select([schema.PATH, FIRST])
        tmp = f"{out}/.bucket-{bucket:05d}.{os.getpid()}.tmp"
        pq.write_table(chosen.sort_by(schema.PATH), tmp)
        os.replace(tmp, f"{out}/bucket-{bucket:05d}.parquet")
    return shared.num_rows, duplicates.num_rows


def write_parts(
    batches: Iterable[pa.RecordBatch],
    spill_dir: str,
    dups_dir: str | None,
    out_dir: str,
    label_index: dict[str, int],
    params: IngestParams,
    write_images: bool,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of the write pass: part numbers (``id``) -> (part, images, rejects) written.

    ``dups_dir``: the duplicates table (``part``, ``path``, FIRST), partitioned by part, or None
    when there are no duplicates. ``write_images``: False when the run failed its rejected-share
    check (only the rejects are written then). Part 0 always writes both files, so that each
    table has at least one file (with its schema) even when it has no rows.
    """
    for batch in batches:
        for part in batch.column("id").to_pylist():
            counts = _write_part(part, spill_dir, dups_dir, out_dir, label_index, params, write_images)
            yield pa.RecordBatch.from_pydict(
                {PART: [part], "images": [counts[0]], "rejects": [counts[1]]}, schema=WRITTEN
            )


def _duplicates_of(dups_dir: str | None, part: int) -> dict[str, str]:
    """path -> first path with the same content, for the duplicates in one part (bounded by it)."""
    if dups_dir is None:
        return {}
    found: dict[str, str] = {}
    for name in sorted(glob.glob(f"{glob.escape(dups_dir)}/{PART}={part}/*.parquet")):
        table = pq.read_table(name, columns=[schema.PATH, FIRST])
        found.update(zip(table.column(schema.PATH).to_pylist(), table.column(FIRST).to_pylist(), strict=True))
    return found


class _PartWriter:
    """One curated Parquet file, written under a hidden name, row groups of about ROW_GROUP_BYTES."""

    def __init__(self, folder: str, part: int, arrow_schema: pa.Schema, row_bytes: int, dictionary: list[str]) -> None:
        os.makedirs(folder, exist_ok=True)
        self.final = f"{folder}/part-{part:05d}.parquet"
        self.tmp = f"{folder}/.part-{part:05d}.parquet.{os.getpid()}.{id(self)}.tmp"
        self.rows_per_group = max(1, ROW_GROUP_BYTES // row_bytes)
        self.schema = arrow_schema
        self.writer = pq.ParquetWriter(
            self.tmp,
            arrow_schema,
            compression="snappy",
            use_dictionary=[name for name in dictionary if name in arrow_schema.names],
            write_statistics=[name for name in arrow_schema.names if name != schema.PIXELS],
        )
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.pending.append(batch)
            self.pending_rows += batch.num_rows
            if self.pending_rows >= self.rows_per_group:
                self._flush()

    def _flush(self) -> None:
        if self.pending:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=self.rows_per_group)
            self.rows += table.num_rows
            self.pending, self.pending_rows = [], 0

    def close(self) -> int:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.final)
        return self.rows


def _write_part(
    part: int,
    spill_dir: str,
    dups_dir: str | None,
    out_dir: str,
    label_index: dict[str, int],
    params: IngestParams,
    write_images: bool,
) -> tuple[int, int]:
    duplicates = _duplicates_of(dups_dir, part)
    label_names = pa.array(list(label_index), pa.string())
    label_values = pa.array(list(label_index.values()), pa.int32())
    image_bytes = params.spec.nbytes + 200
    writers: dict[str, _PartWriter] = {}

    def writer(name: str) -> _PartWriter:
        if name not in writers:
            if name == CURATED_IMAGES:
                arrow_schema, row_bytes = schema.CURATED_SCHEMA, image_bytes
            else:
                arrow_schema, row_bytes = schema.REJECTS_SCHEMA, 300
            writers[name] = _PartWriter(f"{out_dir}/{name}", part, arrow_schema, row_bytes, _DICTIONARY_COLUMNS)
        return writers[name]

    if part == 0:
        writer(CURATED_REJECTS)
        if write_images:
            writer(CURATED_IMAGES)
    for batch in _spilled(spill_path(spill_dir, part)):
        if duplicates:
            found = [duplicates.get(path) for path in batch.column(schema.PATH).to_pylist()]
            duplicate_of = pa.array(found, pa.string())
        else:
            duplicate_of = pa.nulls(batch.num_rows, pa.string())
        reason, detail = batch.column(schema.REASON), batch.column(schema.DETAIL)
        if params.drop_duplicates and duplicates:
            dropped = pc.and_kleene(pc.is_null(reason), pc.is_valid(duplicate_of))
            reason = pc.if_else(dropped, pa.scalar(images.DUPLICATE), reason)
            detail = pc.if_else(dropped, pc.binary_join_element_wise("same content as ", duplicate_of, ""), detail)
            duplicate_of = pc.if_else(dropped, pa.scalar(None, pa.string()), duplicate_of)
        accepted = pc.is_null(reason)
        columns = {name: batch.column(name) for name in SPILL_SCHEMA.names}
        columns.update({schema.REASON: reason, schema.DETAIL: detail, schema.DUPLICATE_OF: duplicate_of})
        rejected = pc.invert(accepted)
        if pc.any(rejected).as_py():
            writer(CURATED_REJECTS).add(_batch(columns, schema.REJECTS_SCHEMA).filter(rejected))
        if write_images and pc.any(accepted).as_py():
            kept = {name: pc.filter(column, accepted) for name, column in columns.items()}
            kept[schema.LABEL_INDEX] = pc.take(label_values, pc.index_in(kept[schema.LABEL], value_set=label_names))
            writer(CURATED_IMAGES).add(_batch(kept, schema.CURATED_SCHEMA))
    counts = {name: w.close() for name, w in writers.items()}
    return counts.get(CURATED_IMAGES, 0), counts.get(CURATED_REJECTS, 0)


def _spilled(path: str) -> Iterator[pa.RecordBatch]:
    """The batches of a spill file, none when there is none (a decode task over no files).

    Read, not memory-mapped: a mapped file's pages stay in the worker's resident memory until
    the end, so the worker would grow with its range (up to ``target_file_mb``) instead of
    holding one batch at a time.
    """
    if not os.path.exists(path):
        return
    with pa.OSFile(path, "rb") as source:
        yield from pa.ipc.open_stream(source)


def _batch(columns: dict, arrow_schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([columns[name] for name in arrow_schema.names], schema=arrow_schema)
