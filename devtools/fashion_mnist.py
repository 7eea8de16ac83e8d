"""Fashion-MNIST as shipped by the Debian package ``dataset-fashion-mnist`` (IDX files)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(os.environ.get("SPARKVISION_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))

#: The ten classes, in the dataset's label order, as safe folder names.
LABELS = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
#: The IDX file prefix of each of the dataset's own splits.
SOURCE_SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a uint8 array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape} values, found {array.size}")
    return array.reshape(shape)


def load_split(split: str, source_dir: Path = DEFAULT_DIR, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of the dataset's ``train`` or ``test`` split."""
    prefix = SOURCE_SPLITS[split]
    images = _find(source_dir, f"{prefix}-images-idx3-ubyte")
    labels = _find(source_dir, f"{prefix}-labels-idx1-ubyte")
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise ValueError(f"{split}: {len(x)} images but {len(y)} labels")
    return (x[:limit], y[:limit]) if limit else (x, y)


def _find(source_dir: Path, stem: str) -> Path:
    for candidate in (source_dir / f"{stem}.gz", source_dir / stem):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{stem}(.gz) not found in {source_dir}; install the Debian package dataset-fashion-mnist "
        "(make setup does) or set SPARKVISION_FASHION_MNIST_DIR"
    )
