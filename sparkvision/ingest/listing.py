"""file:// roots: the drop's listing as sorted runs of paths in the staging folder, cut into the
decode tasks' path ranges (no process holds the listing, and it never passes through the JVM).

Three steps, the first and last in tasks (``run.ingest_local`` plans them):

1. ``write_runs`` (listing tasks, each given some of the drop's top-level entries): walks them;
   every ``RUN_PATHS`` paths are sorted and written as one *run*, an Arrow IPC file of batches of
   ``BATCH_PATHS`` sorted paths. The task hands the driver one row per batch: the run, the
   batch's number, its size and its first path.
2. ``plan_ranges`` (driver): from those rows (one per ``BATCH_PATHS`` files), cuts the sorted
   paths into ranges of about equal size, one per decode task, and gives each range the batches
   that may hold its paths (the runs overlap: each is sorted, not the runs among themselves).
3. ``range_batches`` (decode tasks): reads its range's batches, keeps the paths in the range,
   sorts them and hands them on in batches of ``DECODE_BATCH`` paths.

Paths compare as UTF-8 bytes everywhere (Arrow's order, the same as Python's order of ``str`` and
Spark's of strings), so the ranges are disjoint and cover every path, even one listed twice.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from sparkvision.ingest.files import path_array, walk_files
from sparkvision.platform import schema

#: Paths a listing task sorts in memory at a time (one run): about 10 MB of a Python worker.
RUN_PATHS = 100_000
#: Paths per batch of a run: the driver gets one row (the batch's first path) per this many files.
BATCH_PATHS = 1_000
#: Paths per Arrow batch handed to the decoder.
DECODE_BATCH = 1_000
#: The drop's top-level entries (label folders, loose files), one listing task's input rows.
ENTRIES = pa.schema([("entry", pa.string())])
#: What a listing task tells the driver, one row per batch of a run.
BATCHES = pa.schema([("run", pa.string()), ("batch", pa.int32()), ("files", pa.int32()), ("first", pa.string())])
_RUN_SCHEMA = pa.schema([(schema.PATH, pa.string())])


@dataclass(frozen=True)
class Batch:
    """One batch of a run, as a listing task described it."""

    run: str
    batch: int
    files: int
    first: str


@dataclass(frozen=True)
class PathRange:
    """The paths ``low <= path < high`` (None: unbounded) of one decode task, and the run batches
    (run file name, batch number) that may hold them."""

    low: str | None
    high: str | None
    batches: tuple[tuple[str, int], ...]


def write_runs(entries: Iterable[pa.RecordBatch], drop_path: str, listing_dir: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body of a listing task: top-level entries (``entry``) -> its runs in ``listing_dir``
    and one ``BATCHES`` row per batch written. Runs are named after the task and its attempt
    (``part-PPPPP-A-RRRRR.arrow``), so a retried task never mixes with an earlier attempt."""
    from pyspark import TaskContext

    context = TaskContext.get()
    prefix = f"part-{context.partitionId():05d}-{context.attemptNumber()}"
    paths: list[str] = []
    runs = 0
    for batch in entries:
        for entry in batch.column("entry").to_pylist():
            for rel_path in walk_files(drop_path, entry):
                paths.append(rel_path)
                if len(paths) >= RUN_PATHS:
                    yield write_run(paths, listing_dir, f"{prefix}-{runs:05d}.arrow")
                    runs, paths = runs + 1, []
    if paths:
        yield write_run(paths, listing_dir, f"{prefix}-{runs:05d}.arrow")


def write_run(paths: list[str], listing_dir: str, name: str) -> pa.RecordBatch:
    """Sort ``paths`` and write them as the run ``listing_dir/name``; its ``BATCHES`` rows."""
    column = path_array(paths)
    column = column.take(pc.array_sort_indices(column))
    firsts, sizes = [], []
    tmp = f"{listing_dir}/.{name}.tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, _RUN_SCHEMA) as writer:
        for start in range(0, len(column), BATCH_PATHS):
            part = column.slice(start, BATCH_PATHS)
            writer.write_batch(pa.RecordBatch.from_arrays([part], schema=_RUN_SCHEMA))
            firsts.append(part[0].as_py())
            sizes.append(len(part))
    os.replace(tmp, f"{listing_dir}/{name}")
    return pa.RecordBatch.from_pydict(
        {"run": [name] * len(sizes), "batch": list(range(len(sizes))), "files": sizes, "first": firsts},
        schema=BATCHES,
    )


def plan_ranges(batches: Iterable[Batch], tasks: int) -> list[PathRange]:
    """``tasks`` path ranges of about equal size (within a batch per run at each cut), in order.

    The cuts are batches' first paths: where the files of the batches that start before it,
    in path order, reach ``k / tasks`` of all. A range may be empty (a drop smaller than a task).
    """
    batches = list(batches)
    total = sum(b.files for b in batches)
    cuts: list[str] = []
    done = 0
    for b in sorted(batches, key=lambda b: b.first):
        while len(cuts) < tasks - 1 and done * tasks >= (len(cuts) + 1) * total:
            cuts.append(b.first)
        done += b.files
    if cuts:
        cuts += [cuts[-1]] * (tasks - 1 - len(cuts))  # the tail's ranges are empty
    edges: list[str | None] = [None, *cuts, None] if cuts else [None] * (tasks + 1)
    runs: dict[str, list[str]] = {}
    for b in sorted(batches, key=lambda b: (b.run, b.batch)):
        runs.setdefault(b.run, []).append(b.first)
    if not cuts:  # one range (or nothing listed): every batch goes to the first
        everything = tuple((run, i) for run, firsts in runs.items() for i in range(len(firsts)))
        return [PathRange(None, None, everything if k == 0 else ()) for k in range(tasks)]
    ranges = []
    for low, high in pairwise(edges):
        chosen = []
        for run, firsts in runs.items():
            # batch i holds paths in [firsts[i], firsts[i + 1]] (equal ends: a path listed twice)
            start = 0 if low is None else max(0, bisect_left(firsts, low) - 1)
            stop = len(firsts) if high is None else bisect_left(firsts, high)
            chosen += [(run, i) for i in range(start, stop)]
        ranges.append(PathRange(low, high, tuple(chosen)))
    return ranges


def range_paths(listing_dir: str, path_range: PathRange) -> pa.Array:
    """The sorted paths of one range, read from its run batches."""
    by_run: dict[str, list[int]] = {}
    for run, batch in path_range.batches:
        by_run.setdefault(run, []).append(batch)
    kept = []
    for run, numbers in by_run.items():
        with pa.memory_map(f"{listing_dir}/{run}") as source:
            reader = pa.ipc.open_file(source)
            for number in numbers:
                column = reader.get_batch(number).column(0)
                inside = None
                if path_range.low is not None:
                    inside = pc.greater_equal(column, path_range.low)
                if path_range.high is not None:
                    below = pc.less(column, path_range.high)
                    inside = below if inside is None else pc.and_(inside, below)
                kept.append(column if inside is None else column.filter(inside))
    paths = pa.concat_arrays(kept) if kept else pa.array([], pa.string())
    return paths.take(pc.array_sort_indices(paths))


def range_batches(ids: Iterable[pa.RecordBatch], listing_dir: str, ranges: list[PathRange]) -> Iterator[pa.RecordBatch]:
    """The decode tasks' input: task numbers (``id``) -> the sorted paths of their ranges, in batches."""
    for batch in ids:
        for task in batch.column("id").to_pylist():
            paths = range_paths(listing_dir, ranges[task])
            for start in range(0, len(paths), DECODE_BATCH):
                yield pa.RecordBatch.from_arrays([paths.slice(start, DECODE_BATCH)], schema=_RUN_SCHEMA)
