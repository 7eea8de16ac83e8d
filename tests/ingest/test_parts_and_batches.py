"""Unit tests of the file:// write pass and the Hadoop reader's batching (no Spark)."""

from __future__ import annotations

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
