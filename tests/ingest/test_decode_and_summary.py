"""Unit tests of the ingest's pure functions: reading, decoding, statistics, manifest (no Spark)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pyarrow as pa
import pytest

from sparkvision.config.params import ImageSpec, IngestParams
from sparkvision.ingest import decode, images
from sparkvision.ingest.decode import decode_files, decode_local, decode_record, hash_part
from sparkvision.ingest.files import label_of, relative_path, source_split, uri_to_path, walk_batches
from sparkvision.ingest.run import decode_partitions
from sparkvision.ingest.summary import (
    AccountingError,
    assign_label_indices,
    build_manifest,
    dataset_hash,
    fold_summary,
    label_drift,
    output_partitions,
    size_bucket,
)
from sparkvision.platform import schema
from sparkvision.platform.layout import DatasetPaths


def png(h: int = 28, w: int = 28) -> bytes:
    return cv2.imencode(".png", np.full((h, w), 7, np.uint8))[1].tobytes()


def test_params_defaults_and_validation():
    params = IngestParams(image_shape="64x64x3", max_rejected_share=0.1)
    assert (params.spec, params.max_rejected_share, params.max_pixels) == (ImageSpec(64, 64, 3), 0.1, 50_000_000)
    assert params.resize_policy == "stretch" and not params.drop_duplicates
    for bad in ({"max_rejected_share": 1.5}, {"resize_policy": "zoom"}, {"alpha_background": 300}):
        with pytest.raises(ValueError):
            IngestParams(**bad)


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
    assert uri_to_path(uri) == path


def test_relative_path_label_and_source_split():
    assert relative_path("file:/d/raw/bag/x/train-1.png", "/d/raw") == "bag/x/train-1.png"
    with pytest.raises(ValueError):
        relative_path("file:/elsewhere/x.png", "/d/raw")
    assert label_of("bag/sub/x.png") == "bag"
    bad = (("x.png", images.NO_LABEL), ("bad label/x.png", images.BAD_LABEL), (".hid/x", images.BAD_LABEL))
    for rel, reason in bad:
        with pytest.raises(images.Rejected) as info:
            label_of(rel)
        assert info.value.reason == reason
    assert source_split("bag/train-00001.png") == "train"
    assert source_split("bag/test-7.jpg") == "test"
    assert source_split("bag/trainer.png") is None


def test_decode_record_reason_precedence():
    params = IngestParams()
    names = schema.DECODED_SCHEMA.names
    row = dict(zip(names, decode_record("orphan.txt", b"", params), strict=True))
    assert row[schema.REASON] == images.NO_LABEL  # the label rule comes before the bytes
    row = dict(zip(names, decode_record("bag/x.png", None, params, 10), strict=True))
    assert (row[schema.REASON], row[schema.SIZE], row[schema.LABEL]) == (images.UNREADABLE, 10, "bag")
    row = dict(zip(names, decode_record("bag/x.png", png(), params), strict=True))
    assert row[schema.REASON] is None and len(row[schema.PIXELS]) == 784 and row[schema.CONTENT_HASH]


def test_decode_local_reads_files_and_rejects_only_the_unusable_ones(tmp_path):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "ok.png").write_bytes(png())
    (tmp_path / "bag" / "big.png").write_bytes(png(40, 40))
    (tmp_path / "bag" / "link").symlink_to(tmp_path / "bag")  # a folder behind a link
    os.mkfifo(tmp_path / "bag" / "pipe")  # would block a plain open()
    rels = ["bag/ok.png", "bag/gone.png", "bag/big.png", "bag/link", "bag/pipe"]
    batch = pa.RecordBatch.from_pydict({schema.PATH: rels})
    params = IngestParams(max_file_bytes=len(png()))
    (out,) = decode_local([batch], str(tmp_path), params)
    assert out.schema == schema.DECODED_SCHEMA
    rows = out.to_pylist()
    assert [r[schema.REASON] for r in rows] == [
        None,
        *[images.UNREADABLE],
        images.FILE_TOO_LARGE,
        *[images.UNREADABLE] * 2,
    ]
    assert "FileNotFoundError" in rows[1][schema.DETAIL]
    assert rows[2][schema.SIZE] == len(png(40, 40)) and rows[2][schema.CONTENT_HASH] is None  # never read
    assert "not a regular file" in rows[3][schema.DETAIL] and "not a regular file" in rows[4][schema.DETAIL]
    assert rows[0][schema.SIZE] == len(png()) and len(rows[0][schema.PIXELS]) == 784
    assert (rows[0]["pixel_sum_0"], rows[0]["pixel_sumsq_0"], rows[0]["pixel_sum_1"]) == (7 * 784, 49 * 784, None)
    assert rows[1][schema.PIXELS] is None and rows[1]["pixel_sum_0"] is None


def test_decoded_batches_are_bounded_by_pixel_bytes(monkeypatch):
    monkeypatch.setattr(decode, "DECODED_BATCH_BYTES", 3 * 784)
    records = [(f"bag/{n}.png", png(), None, None) for n in range(7)] + [("bag/bad.png", b"junk", None, None)]
    batches = list(decode_files(records, IngestParams()))
    assert [b.num_rows for b in batches] == [3, 3, 2]
    assert sum(b.column(schema.REASON).null_count for b in batches) == 7


def test_walk_lists_relative_paths_without_skipped_names(tmp_path):
    for rel in ("bag/a.png", "bag/sub/b.png", "bag/_tmp.png", "bag/.x", "bag/c.png._COPYING_", "loose.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    entries = pa.RecordBatch.from_pydict({"entry": ["bag", "loose.png"]})
    listed = [p for b in walk_batches([entries], str(tmp_path)) for p in b.column(schema.PATH).to_pylist()]
    assert sorted(listed) == ["bag/a.png", "bag/sub/b.png", "loose.png"]


def test_decode_partitions_are_sized_by_bytes_and_cores():
    params = IngestParams()
    assert decode_partitions(600, params, 2) == 1  # a small drop: one task, one file
    assert decode_partitions(70_000, params, 2) == 4  # every core busy twice
    assert decode_partitions(700_000, params, 2) == 6  # files of at most 128 MB
    assert decode_partitions(10_000_000, params, 100) == 200


def test_summary_folds_groups_into_counts_histograms_and_channel_statistics():
    spec = ImageSpec(2, 2, 1)
    base = {"bytes": 100, "files": 1, "hash_part_hi": 0, "hash_part_lo": 0, "pixel_sum_0": 0, "pixel_sumsq_0": 0}
    accepted = {"reason": None, "label": "bag"}
    rejected = {"size_edge": None, "orig_channels": None, "hash_part_hi": None, "hash_part_lo": None}
    rows = [
        base
        | accepted
        | {"size_edge": 32, "orig_channels": 1, "files": 2, "hash_part_hi": 1, "hash_part_lo": 5}
        | {"pixel_sum_0": 8 * 10, "pixel_sumsq_0": 8 * 100},  # 2 images of 4 pixels, all 10
        base
        | accepted
        | {"size_edge": 64, "orig_channels": 3, "hash_part_lo": 7}
        | {"pixel_sum_0": 4 * 20, "pixel_sumsq_0": 4 * 400},  # 1 image, all 20
        base | rejected | {"reason": images.NOT_IMAGE, "label": "bag"},
        base | rejected | {"reason": images.NO_LABEL, "label": None, "bytes": None},
    ]
    summary = fold_summary(rows, spec)
    assert summary["groups"] == {"|bag": [3, 200], f"{images.NOT_IMAGE}|bag": [1, 100], f"{images.NO_LABEL}|": [1, 0]}
    assert summary["sizes"] == {"<=32": 2, "<=64": 1} and summary["in_channels"] == {"1": 2, "3": 1}
    assert summary["hash_sum"] == (1 << 32) + 12
    mean = (8 * 10 + 4 * 20) / 12
    assert summary["channel_mean"] == [round(mean, 4)]
    assert summary["channel_std"] == [round(((8 * 100 + 4 * 400) / 12 - mean**2) ** 0.5, 4)]
    assert fold_summary([], spec)["channel_mean"] == [None]
    assert size_bucket(1, 1) == "<=1" and size_bucket(28, 20) == "<=32" and size_bucket(32, 3) == "<=32"


def test_decoder_splits_each_hash_part_into_summable_halves():
    params = IngestParams()
    row = dict(zip(schema.DECODED_SCHEMA.names, decode_record("bag/x.png", png(), params), strict=True))
    part = hash_part("bag/x.png", row[schema.CONTENT_HASH])
    assert (row[schema.HASH_PART_HI] << 32) + row[schema.HASH_PART_LO] == part
    assert 0 <= row[schema.HASH_PART_LO] < 1 << 32 and 0 <= row[schema.HASH_PART_HI] < 1 << 32


def test_manifest_checks_the_invariant():
    paths = DatasetPaths("file:///r", "d", "v1")
    summary = fold_summary([], ImageSpec()) | {"groups": {"|a": [3, 30], "empty_file|a": [1, 0]}}
    manifest = build_manifest(summary, 4, None, paths, IngestParams())
    assert (manifest["accepted"], manifest["rejected"], manifest["rejected_share"]) == (3, 1, 0.25)
    assert manifest["rejected_by_reason"] == {"empty_file": 1} and manifest["per_label"] == {"a": 3}
    with pytest.raises(AccountingError):
        build_manifest(summary, 5, None, paths, IngestParams())


def test_label_indices_are_stable_and_new_labels_append():
    first = assign_label_indices(["b", "a"], None)
    assert first == {"a": 0, "b": 1}
    assert assign_label_indices(["c", "a", "aa"], first) == {"a": 0, "b": 1, "aa": 2, "c": 3}


def test_label_drift_is_total_variation():
    assert label_drift(None, {"a": 1}, 0.1) is None
    same = label_drift({"a": 5, "b": 5}, {"a": 50, "b": 50}, 0.1)
    assert same["value"] == 0 and not same["exceeded"]
    moved = label_drift({"a": 5, "b": 5}, {"a": 9, "c": 1}, 0.1)
    assert moved["value"] == pytest.approx(0.5 * (0.4 + 0.5 + 0.1))
    assert moved["exceeded"] and moved["new_labels"] == ["c"] and moved["missing_labels"] == ["b"]


def test_output_is_sized_by_bytes_not_files():
    assert output_partitions(70_000, 984, 128) == 1
    assert output_partitions(10_000_000, 984, 128) == 74
    assert output_partitions(0, 984, 128) == 1


def test_dataset_hash_depends_on_content_and_conversion():
    params = IngestParams()
    base = dataset_hash(123, params, {"a": 0})
    assert base == dataset_hash(123, params, {"a": 0})
    assert base != dataset_hash(124, params, {"a": 0})
    assert base != dataset_hash(123, IngestParams(resize_policy="pad"), {"a": 0})
