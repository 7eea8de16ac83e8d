"""The streamed input: every row exactly once per epoch, whole batches, shuffled, bounded memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkvision.platform import schema
from sparkvision.training import tfdata

SHAPE = (4, 4, 1)


def write_shard(path, start: int, n: int, row_group_size: int) -> None:
    """Rows whose label is their id and whose pixels all equal id % 256."""
    ids = np.arange(start, start + n)
    pixels = [bytes([i % 256]) * int(np.prod(SHAPE)) for i in ids]
    table = pa.table(
        {
            schema.ID: [str(i) for i in ids],
            schema.LABEL_INDEX: pa.array(ids, pa.int32()),
            schema.PIXELS: pa.array(pixels, pa.binary()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture
def split_dir(tmp_path):
    write_shard(tmp_path / "part-0.parquet", 0, 1000, 128)
    write_shard(tmp_path / "part-1.parquet", 1000, 500, 100)
    return tmp_path


def test_pixels_to_array_reads_fixed_size_images_without_a_copy_per_row():
    column = pa.array([bytes(range(16)), bytes(range(16, 32))], pa.binary())
    array = tfdata.pixels_to_array(column, SHAPE)
    assert array.shape == (2, *SHAPE) and array.dtype == np.uint8
    assert array[1, 0, 0, 0] == 16
    with pytest.raises(ValueError):
        tfdata.pixels_to_array(pa.array([b"\x00" * 15]), SHAPE)


def test_iter_chunks_yields_one_row_group_at_a_time(split_dir):
    chunks = list(tfdata.iter_chunks(tfdata.shard_files(split_dir), SHAPE, seed=None))
    assert [len(y) for _, y in chunks] == [128] * 7 + [104] + [100] * 5
    x, y = chunks[0]
    assert (x[:, 0, 0, 0] == y % 256).all()


@pytest.mark.parametrize("buffer", [0, 50, 300, 5000])
def test_iter_batches_gives_every_row_once_in_whole_batches(split_dir, buffer):
    files = tfdata.shard_files(split_dir)
    batches = list(tfdata.iter_batches(tfdata.iter_chunks(files, SHAPE, seed=1 if buffer else None), 64, buffer, 1))
    sizes = [len(y) for _, y in batches]
    assert sizes == [64] * (1500 // 64) + [1500 % 64]
    labels = np.concatenate([y for _, y in batches])
    assert sorted(labels.tolist()) == list(range(1500))
    for x, y in batches:  # images stay with their labels through the shuffle
        assert (x[:, 0, 0, 0] == y % 256).all()
    if buffer:
        assert labels.tolist() != list(range(1500))
    if buffer > 128:  # a pool larger than a row group mixes rows of different groups in one batch
        assert np.ptp(batches[0][1]) > 128


def test_shuffle_differs_between_epochs_and_is_seeded(split_dir):
    files = tfdata.shard_files(split_dir)

    def epoch(seed):
        return np.concatenate(
            [y for _, y in tfdata.iter_batches(tfdata.iter_chunks(files, SHAPE, seed), 32, 200, seed)]
        )

    assert (epoch(3) == epoch(3)).all()
    assert not (epoch(3) == epoch(4)).all()


def test_shuffle_pool_stays_bounded(split_dir):
    """The generator never holds more than the buffer + one row group + one batch of rows."""
    files = tfdata.shard_files(split_dir)
    held = []

    def watched():
        for x, y in tfdata.iter_chunks(files, SHAPE, seed=0):
            held.append(len(y))
            yield x, y

    emitted = 0
    for _, y in tfdata.iter_batches(watched(), 32, 200, 0):
        emitted += len(y)
        assert sum(held) - emitted <= 200 + 128 + 32


def test_make_dataset_batches_and_cardinality(split_dir):
    dataset = tfdata.make_dataset(split_dir, SHAPE, 256, shuffle_buffer=300, seed=0)
    assert int(dataset.cardinality()) == 6
    first = [y.numpy() for _, y in dataset]
    second = [y.numpy() for _, y in dataset]
    assert [len(b) for b in first] == [256] * 5 + [220]
    assert sorted(np.concatenate(first).tolist()) == list(range(1500))
    assert not (np.concatenate(first) == np.concatenate(second)).all()  # a new order every epoch
    x, _ = next(iter(dataset))
    assert x.dtype.name == "uint8" and tuple(x.shape[1:]) == SHAPE


def test_fixed_batches_read_a_large_enough_part_once(split_dir):
    files = tfdata.shard_files(split_dir)
    batches = list(tfdata.fixed_batches(files, SHAPE, 64, 23, shuffle_buffer=300, seed=5))
    assert [len(y) for _, y in batches] == [64] * 23  # 1,472 of 1,500 rows: less than one batch left out
    labels = np.concatenate([y for _, y in batches])
    assert len(set(labels.tolist())) == len(labels)  # no row twice
    for x, y in batches:
        assert (x[:, 0, 0, 0] == y % 256).all()


def test_fixed_batches_read_a_small_part_again_to_run_every_step(split_dir):
    files = tfdata.shard_files(split_dir)
    batches = list(tfdata.fixed_batches(files, SHAPE, 64, 50, shuffle_buffer=300, seed=5))
    assert [len(y) for _, y in batches] == [64] * 50
    labels = np.concatenate([y for _, y in batches])
    assert set(labels.tolist()) == set(range(1500)) and len(labels) == 3200
    with pytest.raises(ValueError, match="not one full batch"):
        list(tfdata.fixed_batches(files, SHAPE, 2000, 1, shuffle_buffer=0, seed=0))
