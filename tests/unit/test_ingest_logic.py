"""Unit tests of the pure functions of sparkvision/ingest.py (no Spark)."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pytest

from sparkvision import images, ingest, schema
from sparkvision.layout import DatasetPaths
from sparkvision.schema import ImageSpec


def png(h: int = 28, w: int = 28) -> bytes:
    return cv2.imencode(".png", np.full((h, w), 7, np.uint8))[1].tobytes()


def test_params_keep_their_positional_order_and_validate():
    params = ingest.IngestParams(ImageSpec(64, 64, 3), 0.1)  # how runconfig.py builds them
    assert (params.spec, params.max_rejected_share, params.max_pixels) == (ImageSpec(64, 64, 3), 0.1, 50_000_000)
    assert params.resize_policy == "stretch" and not params.drop_duplicates
    for bad in ({"max_rejected_share": 1.5}, {"resize_policy": "zoom"}, {"alpha_background": 300}):
        with pytest.raises(ValueError):
            ingest.IngestParams(**bad)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:/data/raw/a/b.png", "/data/raw/a/b.png"),
        ("file:///data/raw/a/b.png", "/data/raw/a/b.png"),
        ("hdfs://127.0.0.1:8020/data/raw/a/b.png", "/data/raw/a/b.png"),
        ("file:/data/raw/a/my file#1%.png", "/data/raw/a/my file#1%.png"),  # Hadoop prints names unencoded
    ],
)
def test_uri_to_path(uri, path):
    assert ingest.uri_to_path(uri) == path


def test_relative_path_label_and_source_split():
    assert ingest.relative_path("file:/d/raw/bag/x/train-1.png", "/d/raw") == "bag/x/train-1.png"
    with pytest.raises(ValueError):
        ingest.relative_path("file:/elsewhere/x.png", "/d/raw")
    assert ingest.label_of("bag/sub/x.png") == "bag"
    bad = (("x.png", images.NO_LABEL), ("bad label/x.png", images.BAD_LABEL), (".hid/x", images.BAD_LABEL))
    for rel, reason in bad:
        with pytest.raises(images.Rejected) as info:
            ingest.label_of(rel)
        assert info.value.reason == reason
    assert ingest.source_split("bag/train-00001.png") == "train"
    assert ingest.source_split("bag/test-7.jpg") == "test"
    assert ingest.source_split("bag/trainer.png") is None


def test_decode_record_reason_precedence():
    params = ingest.IngestParams()
    names = schema.DECODED_SCHEMA.names
    row = dict(zip(names, ingest.decode_record("orphan.txt", b"", params), strict=True))
    assert row[schema.REASON] == images.NO_LABEL  # the label rule comes before the bytes
    row = dict(zip(names, ingest.decode_record("bag/x.png", None, params, 10), strict=True))
    assert (row[schema.REASON], row[schema.SIZE], row[schema.LABEL]) == (images.UNREADABLE, 10, "bag")
    row = dict(zip(names, ingest.decode_record("bag/x.png", png(), params), strict=True))
    assert row[schema.REASON] is None and len(row[schema.PIXELS]) == 784 and row[schema.CONTENT_HASH]


def test_decode_batches_reads_local_files_and_rejects_only_the_unreadable_one(tmp_path):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "ok.png").write_bytes(png())
    uris = [f"file:{tmp_path}/bag/ok.png", f"file:{tmp_path}/bag/gone.png"]
    batch = pa.RecordBatch.from_pydict({"path": uris, "length": [1, 1]})
    (out,) = ingest.decode_batches([batch], str(tmp_path), ingest.IngestParams(), local_read=True)
    assert out.schema == schema.DECODED_SCHEMA
    assert out.column(schema.REASON).to_pylist() == [None, images.UNREADABLE]
    assert "FileNotFoundError" in out.column(schema.DETAIL).to_pylist()[1]


def _curated_batch(rows: list[tuple]) -> pa.RecordBatch:
    batch = ingest.rows_to_batch(rows)
    return batch.append_column(ingest.DUPLICATE_OF, pa.array([None] * batch.num_rows, pa.string()))


def _summary(rows: list[tuple]) -> str:
    (batch,) = ingest.summarize_batches([_curated_batch(rows)], 1)
    return batch.column("summary")[0].as_py()


def test_summaries_add_up_across_partitions():
    params = ingest.IngestParams()
    rows = [ingest.decode_record(f"bag/{n}.png", png(10 + n, 20), params) for n in range(3)]
    rows.append(ingest.decode_record("bag/bad.png", b"junk", params))
    one = [_summary(rows)]
    split = [_summary(rows[:2]), _summary(rows[2:])]
    whole, merged = ingest.merge_summaries(one, 1), ingest.merge_summaries(split, 1)
    assert whole == merged
    assert whole["groups"]["|bag"][0] == 3 and whole["groups"][f"{images.NOT_IMAGE}|bag"][0] == 1
    assert whole["channel_mean"] == [7.0] and whole["channel_std"] == [0.0]
    assert whole["sizes"] == {"<=32": 3}


def test_manifest_checks_the_invariant():
    paths = DatasetPaths("file:///r", "d", "v1")
    summary = ingest.merge_summaries([], 1) | {"groups": {"|a": [3, 30], "empty_file|a": [1, 0]}}
    manifest = ingest.build_manifest(summary, 4, None, paths, ingest.IngestParams())
    assert (manifest["accepted"], manifest["rejected"], manifest["rejected_share"]) == (3, 1, 0.25)
    assert manifest["rejected_by_reason"] == {"empty_file": 1} and manifest["per_label"] == {"a": 3}
    with pytest.raises(ingest.AccountingError):
        ingest.build_manifest(summary, 5, None, paths, ingest.IngestParams())


def test_label_indices_are_stable_and_new_labels_append():
    first = ingest.assign_label_indices(["b", "a"], None)
    assert first == {"a": 0, "b": 1}
    assert ingest.assign_label_indices(["c", "a", "aa"], first) == {"a": 0, "b": 1, "aa": 2, "c": 3}


def test_label_drift_is_total_variation():
    assert ingest.label_drift(None, {"a": 1}, 0.1) is None
    same = ingest.label_drift({"a": 5, "b": 5}, {"a": 50, "b": 50}, 0.1)
    assert same["value"] == 0 and not same["exceeded"]
    moved = ingest.label_drift({"a": 5, "b": 5}, {"a": 9, "c": 1}, 0.1)
    assert moved["value"] == pytest.approx(0.5 * (0.4 + 0.5 + 0.1))
    assert moved["exceeded"] and moved["new_labels"] == ["c"] and moved["missing_labels"] == ["b"]


def test_output_is_sized_by_bytes_not_files():
    assert ingest.output_partitions(70_000, 984, 128) == 1
    assert ingest.output_partitions(10_000_000, 984, 128) == 74
    assert ingest.output_partitions(0, 984, 128) == 1


def test_dataset_hash_depends_on_content_and_conversion():
    params = ingest.IngestParams()
    base = ingest.dataset_hash(123, params, {"a": 0})
    assert base == ingest.dataset_hash(123, params, {"a": 0})
    assert base != ingest.dataset_hash(124, params, {"a": 0})
    assert base != ingest.dataset_hash(123, ingest.IngestParams(resize_policy="pad"), {"a": 0})
