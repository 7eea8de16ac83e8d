from __future__ import annotations

import gzip
import struct

import cv2
import numpy as np
import pytest

from devtools import fashion_mnist
from devtools.rawdrop import lay_out


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_source(tmp_path):
    """A miniature Fashion-MNIST in IDX form: 6 train and 4 test images with known pixels."""
    source = tmp_path / "source"
    source.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(source / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(source / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return source


def test_read_idx_round_trips_and_checks_its_header(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "a.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01x")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        fashion_mnist.read_idx(tmp_path / "bad")


def test_the_debian_dataset_has_the_documented_sizes():
    if not (fashion_mnist.DEFAULT_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    x, y = fashion_mnist.load_split("test")
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
    assert set(np.unique(y)) == set(range(10))


def test_lay_out_writes_labelled_pngs_with_the_source_split_and_closes_with_success(tmp_path, tiny_source):
    root = (tmp_path / "root").as_uri()
    raw = lay_out(root, "fashion_mnist", "v1", limit=3, source_dir=tiny_source)
    folder = tmp_path / "root" / "raw" / "fashion_mnist" / "v1"
    assert raw == folder.as_uri()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert files == sorted(
        [
            "t-shirt_top/train-00000.png",
            "trouser/train-00001.png",
            "pullover/train-00002.png",
            "t-shirt_top/test-00000.png",
            "trouser/test-00001.png",
            "pullover/test-00002.png",
        ]
    )
    assert (folder / "_SUCCESS").exists()
    expected, _ = fashion_mnist.load_split("train", tiny_source)
    decoded = cv2.imread(str(folder / "trouser" / "train-00001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, expected[1])  # PNG is lossless
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_lay_out_leaves_a_complete_drop_alone(tmp_path, tiny_source):
    root = (tmp_path / "root").as_uri()
    lay_out(root, "fashion_mnist", "v1", limit=2, source_dir=tiny_source)
    marker = tmp_path / "root" / "raw" / "fashion_mnist" / "v1" / "trouser" / "train-00001.png"
    stamp = marker.stat().st_mtime_ns
    lay_out(root, "fashion_mnist", "v1", limit=2, source_dir=tiny_source)
    assert marker.stat().st_mtime_ns == stamp


def test_lay_out_refuses_unsafe_versions_before_writing(tmp_path, tiny_source):
    with pytest.raises(ValueError, match="invalid version"):
        lay_out((tmp_path / "root").as_uri(), "fashion_mnist", "../x", source_dir=tiny_source)
    assert not (tmp_path / "root").exists()
