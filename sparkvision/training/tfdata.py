"""Stream tensor shards (Parquet) into tf.data with bounded memory.

One Parquet row group is decoded at a time, straight from the Arrow buffer into numpy (no
per-row Python loop). Shuffling happens in numpy over a bounded pool of rows drawn from many
row groups (files and row groups are also read in a new random order every epoch), and the
generator hands tf.data whole batches: per-batch, not per-image, work on the Python side keeps
the streamed input as fast as ``model.fit`` on in-memory arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkvision.platform import schema


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
    files: list[Path], shape: tuple[int, int, int], seed: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images, labels), one Parquet row group at a time; files and groups in random order when seeded."""
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
            table = parquet.read_row_group(group, columns=[schema.PIXELS, schema.LABEL_INDEX])
            if table.num_rows == 0:
                continue
            x = pixels_to_array(table.column(schema.PIXELS), shape)
            y = table.column(schema.LABEL_INDEX).to_numpy().astype(np.int32)
            yield x, y


def iter_batches(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]], batch_size: int, shuffle_buffer: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Whole batches from row-group chunks, rows shuffled through a pool of about ``shuffle_buffer``.

    Every batch is full except possibly the last one, so an epoch has ceil(rows / batch_size)
    batches. Memory: the pool (at most ``shuffle_buffer`` + one row group + one batch of rows).
    """
    rng = np.random.default_rng(seed)
    pool_x: np.ndarray | None = None
    pool_y: np.ndarray | None = None
    for x, y in chunks:
        if pool_x is None:
            pool_x, pool_y = x, y
        else:
            pool_x, pool_y = np.concatenate([pool_x, x]), np.concatenate([pool_y, y])
        ready = (len(pool_y) - shuffle_buffer) // batch_size * batch_size
        if ready <= 0:
            continue
        if shuffle_buffer:
            order = rng.permutation(len(pool_y))
            pool_x, pool_y = pool_x[order], pool_y[order]
        for start in range(0, ready, batch_size):
            yield pool_x[start : start + batch_size], pool_y[start : start + batch_size]
        # A copy, so the pool does not pin the big array it was sliced from.
        pool_x, pool_y = pool_x[ready:].copy(), pool_y[ready:].copy()
    if pool_y is not None and len(pool_y):
        if shuffle_buffer:
            order = rng.permutation(len(pool_y))
            pool_x, pool_y = pool_x[order], pool_y[order]
        for start in range(0, len(pool_y), batch_size):
            yield pool_x[start : start + batch_size], pool_y[start : start + batch_size]


def fixed_batches(
    files: list[Path], shape: tuple[int, int, int], batch_size: int, steps: int, *, shuffle_buffer: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Exactly ``steps`` full batches: one epoch of a worker in a distributed training.

    Passes over ``files`` in a new shuffled order each (``seed`` and the pass number) until
    ``steps`` batches came out; the rows short of a full batch at the end of a pass are left
    out. A part holding at least ``steps * batch_size`` rows is read once, each of its rows at
    most once; a smaller part is read again, so that its worker still runs every step.
    """
    produced = 0
    for turn in range(steps + 1):  # every pass yields at least one batch, or none ever will
        pass_seed = seed * 1_000_003 + turn
        chunks = iter_chunks(files, shape, seed=pass_seed if shuffle_buffer else None)
        for x, y in iter_batches(chunks, batch_size, shuffle_buffer, seed=pass_seed):
            if len(y) < batch_size:
                continue
            yield x, y
            produced += 1
            if produced == steps:
                return
    raise ValueError(f"{files} hold fewer than {batch_size} rows: not one full batch")


def count_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def make_dataset(
    split_dir: str | Path | list[Path],
    shape: tuple[int, int, int],
    batch_size: int,
    *,
    shuffle_buffer: int,
    seed: int,
    first_epoch: int = 0,
):
    """A tf.data.Dataset of (uint8 images, int32 labels) batches streamed from Parquet.

    ``split_dir`` is a split folder (or a list of its shard files). With ``shuffle_buffer`` > 0,
    every epoch reads files and row groups in a new order and mixes rows through a numpy pool of
    that many images; memory stays bounded by the pool and one row group, whatever the size of
    the split. Without it the order is the files' order (evaluation). ``first_epoch``: the epochs
    already trained (a resumed run), so that it does not replay the first epochs' order.
    """
    import tensorflow as tf

    files = list(split_dir) if isinstance(split_dir, list) else shard_files(split_dir)
    epoch = {"n": first_epoch}

    def generator():
        epoch["n"] += 1
        epoch_seed = seed * 1_000_003 + epoch["n"]
        chunks = iter_chunks(files, shape, seed=epoch_seed if shuffle_buffer else None)
        yield from iter_batches(chunks, batch_size, shuffle_buffer, seed=epoch_seed)

    signature = (tf.TensorSpec((None, *shape), tf.uint8), tf.TensorSpec((None,), tf.int32))
    dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
    batches = -(-count_rows(files) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(4)
