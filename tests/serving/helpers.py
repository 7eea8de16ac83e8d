"""Helpers of the serving and batch_inference tests: the published model on a root, batches with bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def published_root(hadoop_fs, published_model, root: str) -> str:
    """``root`` with the published model copied in (the model stays the same; the roots differ)."""
    if root != published_model.root:
        hadoop_fs.copy(published_model.model_paths.published, f"{root}/models/fashion_cnn")
    return root


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def write_bad_batch(folder: Path) -> dict[str, str | None]:
    """A batch of good images (nested and loose, grey and colour, other sizes) and bad files.

    Returns each file's expected reason (None: scored); hidden and ``_`` names are not part of it.
    """
    rng = np.random.default_rng(3)
    files = {
        "loose.png": (png(rng.integers(0, 256, (28, 28), dtype=np.uint8)), None),
        "a/b/c/deep.png": (png(rng.integers(0, 256, (28, 28), dtype=np.uint8)), None),
        "a/colour-64x40.png": (png(rng.integers(0, 256, (64, 40, 3), dtype=np.uint8)), None),
        "a/photo.jpg": (cv2.imencode(".jpg", rng.integers(0, 256, (50, 50, 3), dtype=np.uint8))[1].tobytes(), None),
        "a/empty.png": (b"", "empty_file"),
        "notes.txt": (b"not an image at all", "not_an_image"),
        "a/b/cut.png": (png(rng.integers(0, 256, (28, 28), dtype=np.uint8))[:60], "truncated_or_corrupt"),
    }
    for rel, (data, _) in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / ".hidden.png").write_bytes(files["loose.png"][0])
    (folder / "a" / "_ignored.png").write_bytes(files["loose.png"][0])
    return {rel: reason for rel, (_, reason) in files.items()}
