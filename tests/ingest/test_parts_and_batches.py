"""Unit tests of the file:// write pass and the Hadoop reader's batching (no Spark)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkvision.config.params import IngestParams
from sparkvision.ingest import images, parts
from sparkvision.ingest.decode import decode_files
from sparkvision.ingest.hadoop import decode_read, read_batches
from sparkvision.platform import schema


def png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((28, 28), value, np.uint8))[1].tobytes()


def spill(folder, part: int, records, params: IngestParams) -> None:
    folder.mkdir(exist_ok=True)
    with (
        pa.OSFile(parts.spill_path(str(folder), part), "wb") as sink,
        pa.ipc.new_stream(sink, parts.SPILL_SCHEMA) as out,
    ):
        for batch in decode_files(records, params):
            out.write_batch(batch.select(parts.SPILL_SCHEMA.names))


def write(tmp_path, params: IngestParams, duplicates: dict[str, str], write_images: bool = True):
    dups_dir = None
    if duplicates:
        dups_dir = tmp_path / "dups"
        (dups_dir / f"{parts.PART}=0").mkdir(parents=True)
        table = pa.table({schema.PATH: list(duplicates), parts.FIRST: list(duplicates.values())})
        pq.write_table(table, dups_dir / f"{parts.PART}=0" / "x.parquet")
    batch = pa.RecordBatch.from_pydict({"id": [0]})
    out = tmp_path / "out"
    labels = {"b": 0, "a": 1}
    (counts,) = parts.write_parts(
        [batch], str(tmp_path / "spill"), dups_dir and str(dups_dir), str(out), labels, params, write_images
    )
    images_rows = pq.read_table(out / "images.parquet").to_pylist() if write_images else None
    return counts.to_pylist()[0], images_rows, pq.read_table(out / "rejects.parquet").to_pylist()


RECORDS = [
    ("a/1.png", png(1), None, None),
    ("a/2.png", png(1), None, None),  # same content as a/1.png
    ("b/3.png", png(3), None, None),
    ("b/bad.png", b"junk", None, None),
]


def test_write_pass_sets_label_index_and_duplicate_of(tmp_path):
    params = IngestParams()
    spill(tmp_path / "spill", 0, RECORDS, params)
    counts, rows, rejects = write(tmp_path, params, {"a/2.png": "a/1.png"})
    assert counts == {parts.PART: 0, "images": 3, "rejects": 1}
    assert [(r["path"], r["label_index"], r["duplicate_of"]) for r in rows] == [
        ("a/1.png", 1, None),
        ("a/2.png", 1, "a/1.png"),
        ("b/3.png", 0, None),
    ]
    assert pq.read_schema(tmp_path / "out/images.parquet/part-00000.parquet").names == schema.CURATED_SCHEMA.names
    assert [(r["path"], r["reason"]) for r in rejects] == [("b/bad.png", images.NOT_IMAGE)]


def test_write_pass_drops_duplicates_as_rejects_and_writes_only_rejects_when_failed(tmp_path):
    params = IngestParams(drop_duplicates=True)
    spill(tmp_path / "spill", 0, RECORDS, params)
    counts, rows, rejects = write(tmp_path, params, {"a/2.png": "a/1.png"})
    assert counts["images"] == 2 and [r["path"] for r in rows] == ["a/1.png", "b/3.png"]
    assert [(r["path"], r["reason"], r["detail"]) for r in rejects] == [
        ("a/2.png", images.DUPLICATE, "same content as a/1.png"),
        ("b/bad.png", images.NOT_IMAGE, rejects[1]["detail"]),
    ]
    failed = tmp_path / "failed"
    failed.mkdir()
    spill(failed / "spill", 0, RECORDS, params)
    counts, _, rejects = write(failed, params, {}, write_images=False)
    assert counts == {parts.PART: 0, "images": 0, "rejects": 1}
    assert not (failed / "out" / "images.parquet").exists()


def test_read_batches_are_bounded_by_files_and_listed_bytes():
    lengths = [10, 10, 10, 1000, 5, 5, 10**9, 5]
    batch = pa.RecordBatch.from_pydict({"path": [f"a/{i}" for i in range(len(lengths))], "length": lengths})
    (out,) = read_batches([batch], max_file_bytes=10_000, files=3, limit=25)
    groups = out.column("paths").to_pylist()
    # a batch ends at 3 files or once it holds 25 listed bytes; a file over the limit weighs nothing
    assert groups == [["a/0", "a/1", "a/2"], ["a/3"], ["a/4", "a/5", "a/6"], ["a/7"]]
    assert out.column("lengths").to_pylist()[2] == [5, 5, 10**9]


def test_decode_read_rows_say_why_a_file_was_not_read():
    params = IngestParams(max_file_bytes=1000)
    files = pa.array(
        [
            {
                "content": [png(2), None, None],
                "size": [None, 5000, None],
                "error": [None, "over", "FileNotFoundException: x"],
            }
        ],
        pa.struct(
            [("content", pa.list_(pa.binary())), ("size", pa.list_(pa.int64())), ("error", pa.list_(pa.string()))]
        ),
    )
    batch = pa.RecordBatch.from_pydict(
        {"paths": [["a/ok.png", "a/big.png", "a/gone.png"]], "lengths": [[100, 900, 100]], "files": files}
    )
    (out,) = decode_read([batch], params)
    rows = out.to_pylist()
    assert [r[schema.REASON] for r in rows] == [None, images.FILE_TOO_LARGE, images.UNREADABLE]
    assert rows[1][schema.SIZE] == 5000 and "FileNotFoundException" in rows[2][schema.DETAIL]


def test_duplicates_pass_finds_the_first_path_of_each_content_across_tasks_and_buckets(tmp_path):
    """Decode tasks split their (content hash, path) rows by bucket; one task per bucket finds
    the duplicates; each decode task's range gets its own folder. Checked against a plain loop."""
    rows = [(f"{label}/{i:03d}.png", f"content {i * 7 % 5 if i % 3 else i % 4}") for label in "xy" for i in range(40)]
    rows.append(("z/only.png", "content of one file"))
    ranges = [rows[:30], rows[30:61], rows[61:]]  # three decode tasks, each a path range
    hashes_dir, dups_dir, buckets = tmp_path / "hashes", tmp_path / "dups", 3
    for part, chunk in enumerate(ranges):
        table = pa.table(
            {
                schema.CONTENT_HASH: [hashlib.sha256(content.encode()).hexdigest() for _, content in chunk],
                schema.PATH: [path for path, _ in chunk],
                parts.PART: pa.array([part] * len(chunk), pa.int32()),
            }
        )
        parts._write_buckets(table, str(hashes_dir), buckets, part)
    assert sorted(p.name for p in hashes_dir.iterdir()) == [f"bucket-{b:05d}" for b in range(buckets)]
    ids = pa.RecordBatch.from_pydict({"id": list(range(buckets))})
    found = pa.Table.from_batches(list(parts.find_duplicates([ids], str(hashes_dir), str(dups_dir))))

    first: dict[str, str] = {}
    for path, content in sorted(rows):
        first.setdefault(content, path)
    part_of = {path: part for part, chunk in enumerate(ranges) for path, _ in chunk}
    expected = {(part_of[path], path, first[content]) for path, content in rows if first[content] != path}
    written = set()
    for folder in dups_dir.iterdir():
        part = int(folder.name.split("=")[1])
        for name in folder.glob("*.parquet"):
            table = pq.read_table(name)
            pairs = zip(table[schema.PATH].to_pylist(), table[parts.FIRST].to_pylist(), strict=True)
            written |= {(part, path, first_path) for path, first_path in pairs}
    assert written == expected and len(expected) == len(rows) - 1 - 5
    assert sum(found["files"].to_pylist()) == len(expected) and sum(found["groups"].to_pylist()) == 5
    assert parts._duplicates_of(str(dups_dir), 1) == {path: f for part, path, f in expected if part == 1}


def test_decode_task_statistics_are_the_groups_of_the_spark_aggregation():
    """A decode task's STATS rows: per (reason, label, size bucket, channels), as ``_summarizer``."""
    from sparkvision.ingest.summary import fold_summary, size_bucket

    params = IngestParams()
    wide = cv2.imencode(".png", np.full((20, 33), 9, np.uint8))[1].tobytes()  # longest side 33 -> 64
    more = [("b/wide.png", wide, None, None), ("a/one.png", png(7), None, None)]
    batches = [*decode_files(RECORDS, params), *decode_files(more, params)]  # groups add up across batches
    stats = parts._Stats()
    for batch in batches:
        stats.add(batch)
    rows = stats.batch(3).to_pylist()
    assert {row[parts.PART] for row in rows} == {3}
    expected: dict = {}
    for row in (row for batch in batches for row in batch.to_pylist()):
        accepted = row[schema.REASON] is None
        edge = int(size_bucket(row[schema.ORIG_HEIGHT], row[schema.ORIG_WIDTH])[2:]) if accepted else None
        key = (row[schema.REASON], row[schema.LABEL], edge, row[schema.ORIG_CHANNELS] if accepted else None)
        total = expected.setdefault(key, [0, 0, 0, 0])
        total[0] += 1
        total[1] += row[schema.SIZE]
        total[2] += row[schema.PIXEL_SUMS[0]] if accepted else 0
        total[3] += row[schema.HASH_PART_LO] if accepted else 0
    names = ("files", "bytes", schema.PIXEL_SUMS[0], schema.HASH_PART_LO)
    got = {
        (r[schema.REASON], r[schema.LABEL], r[parts.SIZE_EDGE], r[schema.ORIG_CHANNELS]): [r[n] for n in names]
        for r in rows
    }
    assert got == expected and got[(None, "b", 64, 1)][0] == 1 and got[(None, "a", 32, 1)][0] == 3
    summary = fold_summary(rows, params.spec)
    assert summary["sizes"] == {"<=32": 4, "<=64": 1} and summary["groups"][f"{images.NOT_IMAGE}|b"][0] == 1


def test_hash_buckets_are_the_digests_first_32_bits_modulo_the_buckets():
    digests = pa.array([hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)])
    for array in (digests, digests.slice(3, 500)):  # an Arrow slice starts inside the buffers
        expected = [int(digest[:8], 16) % 7 for digest in array.to_pylist()]
        assert parts._bucket_of(array, 7).tolist() == expected
    assert sorted(set(parts._bucket_of(digests, 7).tolist())) == list(range(7))
