"""Stream tensor shards (Parquet) into tf.data with bounded memory.

Only one Parquet row group per file is decoded at a time; rows are shuffled through a bounded
buffer. Pixels go from the Arrow buffer to numpy without a per-row Python loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkvision import schema


def shard_files(split_dir: str | Path) -> list[Path]:
    """The Parquet files of one split folder, sorted."""
    files = sorted(Path(split_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {split_dir}")
    return files


def pixels_to_array(column: pa.Array | pa.ChunkedArray, shape: tuple[int, int, int]) -> np.ndarray:
    """A binary column of fixed-size images -> uint8 array (n, h, w, c), without a Python loop."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    arrays = []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        if len(data) != len(chunk) * int(np.prod(shape)):
            raise ValueError(f"pixel column does not hold {len(chunk)} images of shape {shape}")
        arrays.append(data.reshape(len(chunk), *shape))
    if not arrays:
        return np.zeros((0, *shape), dtype=np.uint8)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def iter_chunks(
    files: list[Path], shape: tuple[int, int, int], seed: int | None = None, batch_rows: int = 8192
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, labels) chunks, one row group's worth at a time; shuffled order when seed is set."""
    rng = np.random.default_rng(seed) if seed is not None else None
    order = list(files)
    if rng is not None:
        rng.shuffle(order)
    for path in order:
        parquet = pq.ParquetFile(path)
        groups = list(range(parquet.num_row_groups))
        if rng is not None:
            rng.shuffle(groups)
        for group in groups:
            for batch in parquet.iter_batches(
                batch_size=batch_rows, row_groups=[group], columns=[schema.PIXELS, schema.LABEL_INDEX]
            ):
                x = pixels_to_array(batch.column(schema.PIXELS), shape)
                y = batch.column(schema.LABEL_INDEX).to_numpy().astype(np.int32)
                if rng is not None:
                    permutation = rng.permutation(len(y))
                    x, y = x[permutation], y[permutation]
                yield x, y


def count_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def make_dataset(
    split_dir: str | Path, shape: tuple[int, int, int], batch_size: int, shuffle_buffer: int = 0, seed: int = 0
):
    """A tf.data.Dataset of (uint8 images, int32 labels) batches streamed from Parquet.

    With ``shuffle_buffer`` > 0, every epoch reads files and row groups in a new order and
    mixes rows through a buffer of that many images; memory stays bounded by the buffer and
    one row group, whatever the size of the split.
    """
    import tensorflow as tf

    files = shard_files(split_dir)
    epoch = {"n": 0}

    def generator():
        epoch["n"] += 1
        yield from iter_chunks(files, shape, seed=seed + epoch["n"] if shuffle_buffer else None)

    signature = (tf.TensorSpec((None, *shape), tf.uint8), tf.TensorSpec((None,), tf.int32))
    dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
    if shuffle_buffer:
        dataset = dataset.unbatch().shuffle(shuffle_buffer, seed=seed).batch(batch_size)
    else:
        dataset = dataset.rebatch(batch_size)
    batches = -(-count_rows(files) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
