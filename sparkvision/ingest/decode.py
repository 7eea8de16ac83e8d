"""Decoding files into rows: OpenCV per file, Arrow batches out (the bodies of the decode tasks).

Every file gives one row of ``DECODED_SCHEMA``: an image (pixels at the target shape, its sums
for the statistics and its share of the dataset hash) or the reason it was rejected. Batch
inference decodes with the same code, so its rejects have the same reasons; its batches have no
labels (``labelled=False``: files need no label folder and get no label).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from sparkvision.config.params import ImageSpec, IngestParams
from sparkvision.ingest import images
from sparkvision.ingest.files import label_of, read_file, relative_path, source_split, uri_to_path
from sparkvision.platform import schema

_DECODED = schema.DECODED_SCHEMA
#: One Arrow batch out of the decoder holds at most this many bytes of pixels.
DECODED_BATCH_BYTES = 64 * 1024 * 1024
#: Squares of uint8 values (255**2 fits 16 bits: sums of squares with a 2x, not 8x, temporary).
_SQUARES = (np.arange(256, dtype=np.uint32) ** 2).astype(np.uint16)


def decode_files(
    records: Iterable[tuple[str, bytes | None, int | None, tuple[str, str] | None]],
    params: IngestParams,
    labelled: bool = True,
):
    """(relative path, bytes, size, reason when not read) per file -> DECODED_SCHEMA batches.

    Files are decoded one at a time as ``records`` yields them (a lazy reader holds one file's
    bytes at a time); pixels of one output batch land in one buffer. Precedence of reasons: no
    label folder, unsafe label (both only when ``labelled``), not read, then what the bytes say.
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
            label = label_of(rel_path) if labelled else None
            if content is None:
                raise images.Rejected(*(missing or (images.UNREADABLE, "the file could not be read")))
            digest = images.content_hash(content)
            image, *dims = images.decode_array(content, params)
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
    labelled: bool = True,
) -> tuple:
    """One row of DECODED_SCHEMA (a tuple in its column order) for one file: ``decode_files`` of one.

    ``content`` None means the bytes were not read; ``missing`` gives the reason.
    """
    (batch,) = decode_files([(rel_path, content, size, missing)], params, labelled)
    return tuple(column[0].as_py() for column in batch.columns)


def decode_batches(
    batches: Iterable[pa.RecordBatch],
    drop_path: str,
    params: IngestParams,
    missing: tuple[str, str] = (images.UNREADABLE, "the file could not be read"),
    local_read: bool = False,
    labelled: bool = True,
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
        yield from decode_files(records, params, labelled)


def decode_local(
    batches: Iterable[pa.RecordBatch], drop_path: str, params: IngestParams, labelled: bool = True
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body for file:// drops: relative paths (``path``) -> DECODED, each file read here."""

    def records(rel_paths: list[str]):
        for rel_path in rel_paths:
            content, size, reason = read_file(os.path.join(drop_path, rel_path), params.max_file_bytes)
            yield rel_path, content, size, reason

    for batch in batches:
        yield from decode_files(records(batch.column(schema.PATH).to_pylist()), params, labelled)


def hash_part(path: str, digest: str) -> int:
    """One accepted file's share of the dataset hash: 64 bits of sha256("<path>:<content hash>")."""
    return int(hashlib.sha256(f"{path}:{digest}".encode()).hexdigest()[:16], 16)
