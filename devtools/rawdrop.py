"""Lay Fashion-MNIST out as a raw drop: ``<root>/raw/<dataset>/<version>/<label>/<split>-<n>.png``.

The dataset's own train/test membership stays visible to later stages in the file name
(``train-00042.png``, ``test-00007.png``). The PNG files are written to a local folder and laid
out with the users' drop command (``sparkvision.ingest.drop``): staged, closed by ``_SUCCESS``
and committed by rename, so a sensor never sees half a drop::

    python -m devtools.rawdrop --root file:///tmp/sv --version v1 --limit 100
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2

from devtools import fashion_mnist
from sparkvision.ingest.drop import drop_complete, drop_folder
from sparkvision.platform.layout import DatasetPaths, is_hdfs, uri_path
from sparkvision.platform.settings import storage_root

log = logging.getLogger(__name__)


def write_pngs(folder: Path, limit: int | None = None, source_dir: Path = fashion_mnist.DEFAULT_DIR) -> int:
    """Write the dataset's images as PNG files under ``folder/<label>/``; return how many."""
    count = 0
    for label in fashion_mnist.LABELS:
        (folder / label).mkdir(parents=True, exist_ok=True)
    for split in fashion_mnist.SOURCE_SPLITS:
        images, labels = fashion_mnist.load_split(split, source_dir, limit)
        for n, (image, label) in enumerate(zip(images, labels, strict=True)):
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise RuntimeError(f"could not encode {split} image {n}")
            (folder / fashion_mnist.LABELS[label] / f"{split}-{n:05d}.png").write_bytes(png.tobytes())
            count += 1
        log.info("wrote %d %s images", len(images), split)
    return count


def lay_out(
    root: str, dataset: str, version: str, limit: int | None = None, source_dir: Path = fashion_mnist.DEFAULT_DIR
) -> str:
    """Create the raw drop of one version unless it is already complete; return its URI."""
    paths = DatasetPaths(root, dataset, version)
    started = time.monotonic()
    if drop_complete(paths.raw):
        log.info("%s already holds a complete drop; leaving it as it is", paths.raw)
        return paths.raw
    # On a local root the PNG files are written next to the drop and hard-linked into it.
    scratch = None if is_hdfs(root) else Path(uri_path(paths.raw)).parent
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rawdrop-", dir=scratch) as local:
        count = write_pngs(Path(local) / "drop", limit, source_dir)
        drop_folder(Path(local) / "drop", paths.raw, labelled=True, link=True)
    log.info("raw drop of %d images ready at %s (%.1fs)", count, paths.raw, time.monotonic() - started)
    return paths.raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=storage_root(), help="storage root URI (default: SPARKVISION_ROOT)")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--version", required=True)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each split")
    parser.add_argument("--source-dir", type=Path, default=fashion_mnist.DEFAULT_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(lay_out(args.root, args.dataset, args.version, args.limit, args.source_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
