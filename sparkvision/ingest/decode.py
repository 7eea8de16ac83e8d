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
from sparkvision.ingest.files import label_of, read_file, source_split
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

    The loop is the ingest's hot path (one pass per file, tens of microseconds each): the
    parameters are taken apart once, label folders are checked once per folder, and every
    column is a plain list until the batch is built.
    """
    spec = params.spec
    decode = images.decode_pixels
    max_pixels, policy, background = params.max_pixels, params.resize_policy, params.alpha_background
    per_batch = max(1, DECODED_BATCH_BYTES // spec.nbytes)
    label_for = _LabelRule()
    sha256, sha1, rejected_error = hashlib.sha256, hashlib.sha1, images.Rejected
    batch = _Rows()
    for rel_path, content, size, missing in records:
        label = digest = None
        try:
            label = label_for(rel_path) if labelled else None
            if content is None:
                raise rejected_error(*(missing or (images.UNREADABLE, "the file could not be read")))
            digest = sha256(content).hexdigest()
            image, height, width, channels = decode(content, spec, max_pixels, policy, background)
        except rejected_error as rejected:
            batch.add(sha1(rel_path.encode()).hexdigest()[:16], rel_path, label, digest, size, content)
            batch.reject(rejected.reason, rejected.detail)
        else:
            batch.add(sha1(rel_path.encode()).hexdigest()[:16], rel_path, label, digest, size, content)
            batch.accept(image, height, width, channels)
            if len(batch.pixels) >= per_batch:
                yield batch.to_arrow(spec)
                batch = _Rows()
    if batch.paths:
        yield batch.to_arrow(spec)


class _LabelRule:
    """``label_of`` with one check per label folder (a drop has few folders and many files)."""

    def __init__(self) -> None:
        self._seen: dict[str, str | images.Rejected] = {}

    def __call__(self, rel_path: str) -> str:
        folder, slash, _ = rel_path.partition("/")
        if not slash:
            raise images.Rejected(images.NO_LABEL, "the file is not inside a <label>/ folder")
        known = self._seen.get(folder)
        if known is None:
            try:
                known = label_of(rel_path)
            except images.Rejected as rejected:
                known = rejected
            self._seen[folder] = known
        if isinstance(known, images.Rejected):
            raise images.Rejected(known.reason, known.detail)
        return known


class _Rows:
    """The columns of one DECODED batch, built as lists, one file at a time."""

    def __init__(self) -> None:
        self.ids: list = []
        self.paths: list = []
        self.labels: list = []
        self.digests: list = []
        self.sizes: list = []
        self.heights: list = []
        self.widths: list = []
        self.channels: list = []
        self.reasons: list = []
        self.details: list = []
        self.kept: list[int] = []
        self.pixels: list[np.ndarray] = []

    def add(self, row_id: str, rel_path: str, label, digest, size, content) -> None:
        self.ids.append(row_id)
        self.paths.append(rel_path)
        self.labels.append(label)
        self.digests.append(digest)
        self.sizes.append(size if size is not None or content is None else len(content))

    def accept(self, image: np.ndarray, height: int, width: int, channels: int) -> None:
        self.kept.append(len(self.paths) - 1)
        self.pixels.append(image)
        self.heights.append(height)
        self.widths.append(width)
        self.channels.append(channels)
        self.reasons.append(None)
        self.details.append(None)

    def reject(self, reason: str, detail: str) -> None:
        self.heights.append(None)
        self.widths.append(None)
        self.channels.append(None)
        self.reasons.append(reason)
        self.details.append(detail)

    def to_arrow(self, spec: ImageSpec) -> pa.RecordBatch:
        """One DECODED_SCHEMA batch: pixels of the kept rows in one buffer, nulls elsewhere."""
        n, kept = len(self.paths), self.kept
        valid = np.zeros(n, dtype=bool)
        valid[kept] = True
        channels = spec.channels
        block = np.stack(self.pixels).reshape(len(kept), -1) if kept else np.zeros((0, spec.nbytes), np.uint8)
        validity = pa.array(valid).buffers()[1]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(valid * spec.nbytes, out=offsets[1:])
        pixel_column = pa.Array.from_buffers(
            pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(block)], null_count=n - len(kept)
        )
        per_channel = block.reshape(len(kept), spec.height * spec.width, channels)
        sums = per_channel.sum(axis=1, dtype=np.int64)
        squares = _SQUARES[per_channel].sum(axis=1, dtype=np.int64)
        invalid = ~valid
        arrays = {
            schema.ID: pa.array(self.ids, pa.string()),
            schema.PATH: pa.array(self.paths, pa.string()),
            schema.LABEL: pa.array(self.labels, pa.string()),
            schema.SOURCE_SPLIT: pa.array([source_split(path) for path in self.paths], pa.string()),
            schema.CONTENT_HASH: pa.array(self.digests, pa.string()),
            schema.ORIG_HEIGHT: pa.array(self.heights, pa.int32()),
            schema.ORIG_WIDTH: pa.array(self.widths, pa.int32()),
            schema.ORIG_CHANNELS: pa.array(self.channels, pa.int32()),
            schema.PIXELS: pixel_column,
            schema.SIZE: pa.array(self.sizes, pa.int64()),
            schema.REASON: pa.array(self.reasons, pa.string()),
            schema.DETAIL: pa.array(self.details, pa.string()),
        }
        all_null = np.ones(n, dtype=bool)
        for c, (sum_name, sumsq_name) in enumerate(zip(schema.PIXEL_SUMS, schema.PIXEL_SUMSQS, strict=True)):
            for name, values in ((sum_name, sums), (sumsq_name, squares)):
                column = np.zeros(n, dtype=np.int64)
                if c < channels:
                    column[kept] = values[:, c]
                arrays[name] = pa.array(column, mask=invalid if c < channels else all_null)
        parts = np.zeros(n, dtype=np.uint64)
        paths, digests = self.paths, self.digests
        parts[kept] = [hash_part(paths[i], digests[i]) for i in kept]
        arrays[schema.HASH_PART_HI] = pa.array((parts >> np.uint64(32)).astype(np.int64), mask=invalid)
        arrays[schema.HASH_PART_LO] = pa.array((parts & np.uint64(0xFFFFFFFF)).astype(np.int64), mask=invalid)
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


def decode_local(
    batches: Iterable[pa.RecordBatch], drop_path: str, params: IngestParams, labelled: bool = True
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body for file:// drops: relative paths (``path``) -> DECODED, each file read here."""
    folder = os.open(drop_path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    limit = params.max_file_bytes

    def records(rel_paths: list[str]):
        for rel_path in rel_paths:
            yield rel_path, *read_file(rel_path, limit, folder)

    try:
        for batch in batches:
            yield from decode_files(records(batch.column(schema.PATH).to_pylist()), params, labelled)
    finally:
        os.close(folder)


def hash_part(path: str, digest: str) -> int:
    """One accepted file's share of the dataset hash: 64 bits of sha256("<path>:<content hash>")."""
    return int(hashlib.sha256(f"{path}:{digest}".encode()).hexdigest()[:16], 16)
