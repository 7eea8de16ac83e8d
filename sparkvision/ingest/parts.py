"""file:// roots: pixels stay in the Python workers, and each decode task writes its own curated files.

The two task bodies of a local ingest (``run.ingest_local`` plans them):

1. ``decode_to_spill`` (decode pass, one task per sorted path range): reads and decodes its
   files, keeps every decoded row (pixels included) in a spill file of its own under the staging
   folder, and hands Spark only the small columns (``SMALL_SCHEMA``: path, label, reason, sizes,
   content hash, pixel sums, hash share), from which Spark finds the duplicate groups and adds up
   the statistics.
2. ``write_parts`` (write pass, one task per decode task, once the label indices and the
   duplicates are known): streams its spill file back, sets ``label_index`` and ``duplicate_of``
   (and rejects duplicates when they are dropped), and writes ``images.parquet/part-NNNNN.parquet``
   and, when it has rejects, ``rejects.parquet/part-NNNNN.parquet`` with pyarrow.

So the JVM never holds, caches, serializes or encodes a pixel: per file it sees about 150 bytes.
Both passes work on one bounded batch at a time; the spill of a task is as large as its curated
file and lives on the output's filesystem (a file:// root is mounted at the same path on every
node, so the write pass may run anywhere). Files are written under a hidden name and renamed
when complete, so a retried task leaves one copy.
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
#: What a decode task and a write task tell the driver (Spark DDL, and as Arrow schemas).
COUNTS = f"{PART} int, files long"
WRITTEN = f"{PART} int, images long, rejects long"
_COUNTS_SCHEMA = pa.schema([(PART, pa.int32()), ("files", pa.int64())])
_WRITTEN_SCHEMA = pa.schema([(PART, pa.int32()), ("images", pa.int64()), ("rejects", pa.int64())])
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


def decode_to_spill(
    batches: Iterable[pa.RecordBatch], drop_path: str, params: IngestParams, spill_dir: str, small_dir: str
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of the decode pass: paths -> this task's spill file and small Parquet file.

    Yields one COUNTS row (the task's part number and files decoded): Spark reads the small
    columns back from the Parquet files, with its vectorized reader, only the columns it needs.
    """
    from pyspark import TaskContext

    context = TaskContext.get()
    part = context.partitionId()
    spill_file = spill_path(spill_dir, part)
    spill_tmp = f"{spill_dir}/.part-{part:05d}.{context.attemptNumber()}.{os.getpid()}.tmp"
    small = _PartWriter(small_dir, part, SMALL_SCHEMA, SMALL_ROW_BYTES, _DICTIONARY_COLUMNS)
    files = 0
    with pa.OSFile(spill_tmp, "wb") as sink, pa.ipc.new_stream(sink, SPILL_SCHEMA) as spill:
        for batch in decode_local(batches, drop_path, params):
            spill.write_batch(batch.select(SPILL_SCHEMA.names))
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            columns[PART] = pa.array(np.full(batch.num_rows, part, dtype=np.int32))
            small.add(_batch(columns, SMALL_SCHEMA))
            files += batch.num_rows
    os.replace(spill_tmp, spill_file)
    small.close()
    yield pa.RecordBatch.from_pydict({PART: [part], "files": [files]}, schema=_COUNTS_SCHEMA)


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
                {PART: [part], "images": [counts[0]], "rejects": [counts[1]]}, schema=_WRITTEN_SCHEMA
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
    """The batches of a spill file, none when there is none (a decode task over no files)."""
    if not os.path.exists(path):
        return
    with pa.memory_map(path) as source:
        yield from pa.ipc.open_stream(source)


def _batch(columns: dict, arrow_schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([columns[name] for name in arrow_schema.names], schema=arrow_schema)
