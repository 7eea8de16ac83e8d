"""Ingest on real Spark, on file:// and on a real HDFS, with every kind of bad file in the drop."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from sparkvision.config.params import IngestParams
from sparkvision.ingest import images
from sparkvision.ingest.decode import hash_part
from sparkvision.ingest.run import TooManyRejectsError, ingest_conf, ingest_listed, list_drop, run_ingest
from sparkvision.ingest.summary import dataset_hash, size_bucket
from sparkvision.platform.layout import DatasetPaths
from sparkvision.platform.spark import session_conf

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(7)


def png(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def grey(h: int = 28, w: int = 28) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def colour(h: int, w: int, c: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


def write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / "_SUCCESS").touch()


def bomb_png() -> bytes:
    """A PNG header that claims 100000 x 100000 pixels (the bytes after it do not matter)."""
    ihdr = b"\x00\x00\x00\rIHDR" + (100_000).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + ihdr + bytes(64)


def mixed_corpus() -> tuple[dict[str, bytes], dict]:
    """Good images of every kind mixed with one of every kind of bad file; the expected counts."""
    shirt = png(grey())
    good = {
        "shirt/train-00001.png": shirt,
        "shirt/train-00002.png": png(grey()),
        "shirt/test-00001.png": png(grey(40, 20)),
        "shirt/my file#1.png": png(grey()),  # space and '#' in the name
        "shirt/copy-of-1.png": shirt,  # duplicate content: flagged, kept
        "bag/a.jpg": png(colour(50, 40), ".jpg"),
        "bag/b.bmp": png(colour(30, 60), ".bmp"),
        "bag/c.webp": png(colour(64, 64), ".webp"),
        "bag/alpha.png": png(colour(28, 28, 4)),
        "bag/deep16.png": png(grey().astype(np.uint16) * 257),
        "bag/sub/deeper/nested.png": png(grey()),  # nested below the label
    }
    truncated = png(colour(40, 40))
    bad = {
        "shirt/empty.png": (b"", images.EMPTY),
        "bag/truncated.png": (truncated[: len(truncated) // 2], images.TRUNCATED),
        "bag/corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(200), images.TRUNCATED),
        "shirt/notes.txt": (b"not an image at all\n", images.NOT_IMAGE),
        "shirt/float.tiff": (png(colour(20, 20).astype(np.float32), ".tiff"), images.UNSUPPORTED),
        "bag/bomb.png": (bomb_png(), images.TOO_LARGE),
        "bag/big.bmp": (png(colour(300, 300), ".bmp"), images.FILE_TOO_LARGE),  # 270 kB > max_file_bytes
        "orphan.png": (png(grey()), images.NO_LABEL),
        "bad label/x.png": (png(grey()), images.BAD_LABEL),
        "shirt/vanishes.png": (png(grey()), images.UNREADABLE),  # removed after the listing
    }
    files = {**good, **{rel: data for rel, (data, _) in bad.items()}}
    reasons: dict[str, int] = {}
    for _, reason in bad.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    expected = {
        "files_found": len(files),
        "accepted": len(good),
        "rejected": len(bad),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "per_label": {"bag": 6, "shirt": 5},
        "reject_paths": {rel: reason for rel, (_, reason) in bad.items()},
    }
    return files, expected


def lay_out(hadoop_fs, root: str, tmp_path: Path, files: dict[str, bytes], dataset: str, version: str) -> DatasetPaths:
    """Write ``files`` as the raw drop of ``dataset/version`` under ``root`` (file:// or hdfs://)."""
    paths = DatasetPaths(root, dataset, version)
    if root.startswith("file:"):
        write(Path(paths.raw[len("file://") :]), files)
    else:
        local = tmp_path / f"drop-{dataset}-{version}"
        write(local, files)
        hadoop_fs.copy_from_local(str(local), paths.raw)
    return paths


def read_table(spark, uri: str) -> list[dict]:
    return [row.asDict() for row in spark.read.parquet(uri).orderBy("path").collect()]


def test_mixed_corpus_exact_counts_and_reasons(spark, hadoop_fs, root, tmp_path):
    files, expected = mixed_corpus()
    paths = lay_out(hadoop_fs, root, tmp_path, files, "mixed", "v1")
    params = IngestParams(max_rejected_share=1.0, max_file_bytes=100_000)
    with session_conf(spark, ingest_conf(spark)):
        listing, found = list_drop(spark, paths)
        hadoop_fs.delete(f"{paths.raw}/shirt/vanishes.png")  # gone between listing and reading
        manifest = ingest_listed(spark, listing, found, paths, params)

    for key in ("files_found", "accepted", "rejected", "rejected_by_reason", "per_label"):
        assert manifest[key] == expected[key], key
    assert manifest["accepted"] + manifest["rejected"] == manifest["files_found"]
    assert manifest["duplicates"] == {"groups": 1, "files": 1}
    rejects = read_table(spark, f"{paths.curated}/rejects.parquet")
    assert {r["path"]: r["reason"] for r in rejects} == expected["reject_paths"]
    assert all(r["detail"] for r in rejects)

    curated = read_table(spark, f"{paths.curated}/images.parquet")
    assert len(curated) == expected["accepted"]
    assert all(len(r["pixels"]) == 28 * 28 for r in curated)
    by_path = {r["path"]: r for r in curated}
    # the first path in sort order is the original, the others point to it
    assert by_path["shirt/train-00001.png"]["duplicate_of"] == "shirt/copy-of-1.png"
    assert by_path["shirt/copy-of-1.png"]["duplicate_of"] is None
    assert (by_path["bag/a.jpg"]["orig_height"], by_path["bag/a.jpg"]["orig_width"]) == (50, 40)
    assert by_path["bag/alpha.png"]["orig_channels"] == 4
    assert by_path["bag/sub/deeper/nested.png"]["label"] == "bag"
    assert by_path["shirt/train-00001.png"]["source_split"] == "train"
    labels = hadoop_fs.read_json(f"{paths.curated}/labels.json")
    assert labels == {"bag": 0, "shirt": 1}
    assert {r["label_index"] for r in curated if r["label"] == "bag"} == {0}
    assert hadoop_fs.exists(f"{paths.curated}/_SUCCESS")
    assert manifest["orig_size_histogram"] == {"<=32": 7, "<=64": 4}


def test_local_walk_gives_the_same_counts_and_reasons(spark, hadoop_fs, tmp_path):
    """run_ingest on file:// lists in tasks and reads in Python workers: same accounting as above."""
    files, expected = mixed_corpus()
    paths = lay_out(hadoop_fs, (tmp_path / "root").as_uri(), tmp_path, files, "mixed", "v1")
    drop = Path(paths.raw[len("file://") :])
    (drop / "shirt/vanishes.png").unlink()
    (drop / "shirt/vanishes.png").symlink_to(drop / "shirt/gone-for-good.png")  # listed, not readable
    for skipped in (".hidden.png", "shirt/.DS_Store", "shirt/_tmp.png", "bag/part.png._COPYING_", "_logs/x.png"):
        (drop / skipped).parent.mkdir(parents=True, exist_ok=True)
        (drop / skipped).write_bytes(png(grey()))  # not part of a drop: not found, not rejected
    os.mkfifo(drop / "shirt" / "pipe.png")  # a reader that opened it blocking would hang here
    expected["reject_paths"]["shirt/pipe.png"] = images.UNREADABLE
    expected["rejected_by_reason"][images.UNREADABLE] += 1
    expected["files_found"] += 1
    expected["rejected"] += 1
    params = IngestParams(max_rejected_share=1.0, max_file_bytes=100_000)
    manifest = run_ingest(spark, paths, params)

    for key in ("files_found", "accepted", "rejected", "rejected_by_reason", "per_label"):
        assert manifest[key] == expected[key], key
    rejects = {r["path"]: r for r in read_table(spark, f"{paths.curated}/rejects.parquet")}
    assert {path: r["reason"] for path, r in rejects.items()} == expected["reject_paths"]
    assert "FileNotFoundError" in rejects["shirt/vanishes.png"]["detail"]
    assert "not a regular file" in rejects["shirt/pipe.png"]["detail"]
    assert rejects["bag/big.bmp"]["size"] > 100_000 and rejects["bag/big.bmp"]["content_hash"] is None  # never read
    curated = read_table(spark, f"{paths.curated}/images.parquet")
    assert [r["path"] for r in curated] == sorted(rel for rel in files if rel not in expected["reject_paths"])
    # the listing's runs and the decode tasks' working files are gone with the staging folder
    published = sorted(os.listdir(paths.curated[len("file://") :]))
    assert published == ["_SUCCESS", "images.parquet", "labels.json", "manifest.json", "rejects.parquet"]


def test_colour_dataset_of_varied_sizes_and_formats_is_deterministic(spark, hadoop_fs, tmp_path):
    files = {
        "cat/a.png": png(colour(120, 80)),
        "cat/b.jpg": png(colour(33, 301), ".jpg"),
        "cat/c.bmp": png(grey(64, 64), ".bmp"),
        "dog/d.webp": png(colour(17, 17), ".webp"),
        "dog/e.tiff": png(colour(200, 90, 4), ".tiff"),
        "dog/f.png": png(colour(64, 64).astype(np.uint16) * 257),
        "dog/g.gif": png(colour(50, 70), ".gif"),
    }
    root = (tmp_path / "root").as_uri()
    paths = lay_out(hadoop_fs, root, tmp_path, files, "pets", "v1")
    params = IngestParams(image_shape="32x48x3", max_rejected_share=0.0, resize_policy="pad")
    first = run_ingest(spark, paths, params)
    rows = read_table(spark, f"{paths.curated}/images.parquet")
    assert first["accepted"] == len(files) and first["rejected"] == 0
    assert all(len(r["pixels"]) == 32 * 48 * 3 for r in rows)
    assert first["image_shape"] == [32, 48, 3]
    assert len(first["channel_mean"]) == 3 and all(0 < m < 255 for m in first["channel_mean"])
    assert first["orig_channels_histogram"] == {"1": 1, "3": 5, "4": 1}
    # the statistics come from one Spark SQL aggregation: they match their Python definitions
    buckets = Counter(size_bucket(r["orig_height"], r["orig_width"]) for r in rows)
    assert first["orig_size_histogram"] == dict(buckets) and buckets["<=64"] == 2  # 64x64 stays <=64
    hash_sum = sum(hash_part(r["path"], r["content_hash"]) for r in rows)
    assert first["content_hash"] == dataset_hash(hash_sum, params, first["label_index"])
    pixels = np.frombuffer(b"".join(r["pixels"] for r in rows), np.uint8).reshape(-1, 3)
    assert first["channel_mean"] == pytest.approx(pixels.mean(axis=0), abs=1e-3)
    assert first["channel_std"] == pytest.approx(pixels.std(axis=0), abs=1e-3)

    second = run_ingest(spark, paths, params)  # a re-run: same content, one output
    assert second["content_hash"] == first["content_hash"]
    assert read_table(spark, f"{paths.curated}/images.parquet") == rows
    siblings = os.listdir(tmp_path / "root" / "curated" / "pets")
    assert siblings == ["v1"]
    assert len([n for n in os.listdir(tmp_path / "root/curated/pets/v1/images.parquet") if n.endswith(".parquet")]) == 1


def test_rejected_share_threshold_fails_after_writing_rejects(spark, hadoop_fs, tmp_path):
    files = {f"a/{n}.png": png(grey()) for n in range(18)}
    files |= {"a/bad1.png": b"junk", "a/bad2.png": b""}  # 2 of 20 = 10% > 5%
    paths = lay_out(hadoop_fs, (tmp_path / "root").as_uri(), tmp_path, files, "share", "v1")
    with pytest.raises(TooManyRejectsError, match=r"2 of 20 files rejected \(10.0% > max_rejected_share 5.0%\)"):
        run_ingest(spark, paths, IngestParams(max_rejected_share=0.05))
    assert not hadoop_fs.exists(f"{paths.curated}/_SUCCESS")
    assert not hadoop_fs.exists(f"{paths.curated}/images.parquet")
    assert len(read_table(spark, f"{paths.curated}/rejects.parquet")) == 2
    assert hadoop_fs.read_json(f"{paths.curated}/manifest.json")["status"].startswith("failed")


def test_labels_append_and_drift_is_reported_against_the_previous_version(spark, hadoop_fs, tmp_path, caplog):
    root = (tmp_path / "root").as_uri()
    v1 = {f"b/{n}.png": png(grey()) for n in range(6)} | {f"c/{n}.png": png(grey()) for n in range(6)}
    run_ingest(spark, lay_out(hadoop_fs, root, tmp_path, v1, "drift", "v1"), IngestParams())
    same = png(grey())
    v2 = {f"a/{n}.png": png(grey()) for n in range(4)} | {f"b/{n}.png": png(grey()) for n in range(2)}
    v2 |= {"c/0.png": same, "c/1.png": same}
    paths = lay_out(hadoop_fs, root, tmp_path, v2, "drift", "v2")
    with caplog.at_level(logging.WARNING, logger="sparkvision.ingest"):
        manifest = run_ingest(spark, paths, IngestParams(max_rejected_share=0.2, drop_duplicates=True))
    assert hadoop_fs.read_json(f"{paths.curated}/labels.json") == {"b": 0, "c": 1, "a": 2}
    assert manifest["rejected_by_reason"] == {images.DUPLICATE: 1}
    assert manifest["per_label"] == {"a": 4, "b": 2, "c": 1}
    drift = manifest["label_drift"]
    assert manifest["previous_version"] == "v1" and drift["exceeded"] and drift["new_labels"] == ["a"]
    assert drift["value"] == pytest.approx(0.5 * (4 / 7 + abs(0.5 - 2 / 7) + abs(0.5 - 1 / 7)), abs=1e-5)
    assert "label distribution drift against v1" in caplog.text
    rejects = read_table(spark, f"{paths.curated}/rejects.parquet")
    assert [(r["path"], r["detail"]) for r in rejects] == [("c/1.png", "same content as c/0.png")]


def _submit(project_dir: Path, root: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = ["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    command += [str(project_dir / "spark_jobs" / "ingest.py"), "--root", root, "dataset=fashion_mnist"]
    return subprocess.Popen(
        [*command, "version=v1", *extra],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches the JVM and Python workers
    )


def test_job_killed_mid_write_leaves_nothing_visible_and_rerun_gives_one_output(project_dir, tmp_path):
    root = (tmp_path / "root").as_uri()
    subprocess.run(
        [sys.executable, "-m", "devtools.rawdrop", "--root", root, "--version", "v1", "--limit", "300"],
        check=True,
        cwd=project_dir,
        capture_output=True,
    )
    parent = tmp_path / "root" / "curated" / "fashion_mnist"
    job = _submit(project_dir, root)
    deadline = time.monotonic() + 120
    staging: list[Path] = []
    while time.monotonic() < deadline and job.poll() is None:
        staging = [p for p in parent.glob(".v1.*.tmp") if (p / "images.parquet").exists()] if parent.exists() else []
        if staging:
            break
        time.sleep(0.02)
    assert staging, f"the job never started writing: {job.communicate()[0][-2000:]}"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not (parent / "v1").exists(), "a killed job left visible output"

    rerun = _submit(project_dir, root, "max_rejected_share=0")
    out, _ = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, out[-3000:]
    assert os.listdir(parent) == ["v1"], "leftover staging folders"
    manifest = json.loads((parent / "v1" / "manifest.json").read_text())
    assert (manifest["files_found"], manifest["accepted"], manifest["rejected"]) == (600, 600, 0)
    assert len(list((parent / "v1").glob("images.parquet/*.parquet"))) == 1
    assert (parent / "v1" / "_SUCCESS").exists()

    failing = _submit(project_dir, root, "max_pixels=100")  # every 28x28 image is over the limit
    out, _ = failing.communicate(timeout=180)
    assert failing.returncode == 1
    assert "ingest failed: 600 of 600 files rejected" in out


def test_local_and_hadoop_readers_give_the_same_output(spark, hadoop_fs, hdfs, tmp_path):
    """The file:// reader (Python workers, pyarrow writes) and the Hadoop reader (JVM reads, Spark
    writes) on the same drop: the same accounting, rows, rejects and content hash."""
    files, _ = mixed_corpus()
    files.pop("shirt/vanishes.png")
    files |= {f"coat/{n:03d}.png": png(grey()) for n in range(40)}
    skipped = {".hidden.png", "shirt/.DS_Store", "shirt/_tmp.png", "bag/part.png._COPYING_", "_logs/x.png"}
    files |= {name: png(grey()) for name in skipped}  # not part of a drop on either filesystem
    params = IngestParams(image_shape="16x20x3", resize_policy="crop", max_rejected_share=1.0, max_file_bytes=100_000)
    outputs = []
    for root in ((tmp_path / "root").as_uri(), f"{hdfs.uri}/t/{tmp_path.name}"):
        paths = lay_out(hadoop_fs, root, tmp_path, files, "same", "v1")
        manifest = run_ingest(spark, paths, params)
        images_rows = read_table(spark, f"{paths.curated}/images.parquet")
        rejects_rows = read_table(spark, f"{paths.curated}/rejects.parquet")
        outputs.append((manifest, images_rows, rejects_rows))
    (local, local_images, local_rejects), (remote, remote_images, remote_rejects) = outputs
    for key in ("files_found", "accepted", "rejected_by_reason", "per_label", "duplicates", "content_hash"):
        assert local[key] == remote[key], key
    assert local["files_found"] == len(files) - len(skipped)
    assert local["channel_mean"] == remote["channel_mean"] and local["channel_std"] == remote["channel_std"]
    assert local_images == remote_images
    assert [(r["path"], r["reason"], r["size"]) for r in local_rejects] == [
        (r["path"], r["reason"], r["size"]) for r in remote_rejects
    ]
