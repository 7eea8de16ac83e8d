"""Unit tests of the file:// listing: sorted runs on disk cut into decode ranges (no Spark)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from sparkvision.ingest import listing
from sparkvision.ingest.listing import Batch, PathRange, plan_ranges, range_paths, write_run


def runs_of(folder, paths: list[str], per_run: int) -> list[Batch]:
    """Write ``paths`` (in the given, unsorted order) as runs of ``per_run`` paths; their batches."""
    batches = []
    for n, start in enumerate(range(0, len(paths), per_run)):
        rows = write_run(paths[start : start + per_run], str(folder), f"part-00000-0-{n:05d}.arrow")
        batches += [Batch(**row) for row in rows.to_pylist()]
    return batches


def read_all(folder, ranges: list[PathRange]) -> list[list[str]]:
    return [range_paths(str(folder), r).to_pylist() for r in ranges]


@pytest.mark.parametrize("tasks", [1, 2, 3, 7])
def test_ranges_are_sorted_disjoint_cover_every_path_and_are_balanced(tmp_path, monkeypatch, tasks):
    monkeypatch.setattr(listing, "BATCH_PATHS", 10)
    paths = [f"{label}/img-{i:05d}.png" for label in ("a", "a.b", "a-c", "b", "é") for i in range(200)]
    paths.append("loose.png")
    random.Random(7).shuffle(paths)  # walk order is the directory's, not the paths'
    batches = runs_of(tmp_path, paths, per_run=230)
    assert sum(b.files for b in batches) == len(paths)
    assert len(batches) == sum(-(-len(paths[s : s + 230]) // 10) for s in range(0, len(paths), 230))

    ranges = plan_ranges(batches, tasks)
    assert len(ranges) == tasks
    got = read_all(tmp_path, ranges)
    assert [p for part in got for p in part] == sorted(paths)  # in order, each path once
    # each cut lands within one batch per run (5 runs of 10-path batches) of the ideal
    assert max(len(part) for part in got) - len(paths) / tasks <= 2 * 5 * 10
    # a range reads only the batches that can hold its paths, not every run's every batch
    if tasks > 1:
        assert max(len(r.batches) for r in ranges) < len(batches)


def test_small_listings_give_empty_ranges_not_missing_ones(tmp_path):
    batches = runs_of(tmp_path, ["b/2.png", "a/1.png", "c/3.png"], per_run=100)
    ranges = plan_ranges(batches, 4)
    got = read_all(tmp_path, ranges)
    assert [p for part in got for p in part] == ["a/1.png", "b/2.png", "c/3.png"]
    assert sum(1 for part in got if part) == 1  # one batch: one range holds it all
    assert plan_ranges([], 3) == [PathRange(None, None, ())] * 3  # an empty drop


def test_a_path_listed_twice_is_read_twice_by_one_range(tmp_path, monkeypatch):
    """Two names that are not UTF-8 may get the same replaced spelling: both rows stay."""
    monkeypatch.setattr(listing, "BATCH_PATHS", 2)
    paths = ["a/1", "a/2", "a/3", "a/3", "a/3", "a/4", "a/5", "a/6"]
    batches = runs_of(tmp_path, paths, per_run=4)
    got = read_all(tmp_path, plan_ranges(batches, 3))
    assert [p for part in got for p in part] == sorted(paths)
    assert sum("a/3" in part for part in got) == 1


def test_runs_hold_names_that_are_not_utf8_with_a_replaced_spelling(tmp_path):
    odd = b"a/caf\xe9.png".decode("utf-8", "surrogateescape")
    rows = write_run([odd, "a/b.png"], str(tmp_path), "part-00000-0-00000.arrow")
    assert rows.column("files").to_pylist() == [2]
    with pa.memory_map(str(tmp_path / "part-00000-0-00000.arrow")) as source:
        stored = pa.ipc.open_file(source).get_batch(0).column(0).to_pylist()
    assert stored == ["a/b.png", "a/caf\ufffd.png"]
    assert not list(tmp_path.glob(".*.tmp"))  # written under a hidden name, then renamed
