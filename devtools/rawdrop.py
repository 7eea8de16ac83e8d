"""Lay Fashion-MNIST out as a raw drop: ``<root>/raw/<dataset>/<version>/<label>/<split>-<n>.png``.

The dataset's own train/test membership stays visible to later stages in the file name
(``train-00042.png``, ``test-00007.png``). The drop is written to a hidden temporary folder,
closed by ``_SUCCESS`` and committed by rename, so a sensor never sees half a drop::

    python -m devtools.rawdrop --root file:///tmp/sv --version v1 --limit 100
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2

from devtools import fashion_mnist
from sparkvision.platform.layout import SUCCESS, DatasetPaths, is_hdfs, uri_path
from sparkvision.platform.settings import storage_root

log = logging.getLogger(__name__)

#: Files copied at once into HDFS (small files: the NameNode round trips, not bytes, dominate).
COPY_THREADS = 64


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
    (folder / SUCCESS).touch()
    return count


def lay_out(
    root: str, dataset: str, version: str, limit: int | None = None, source_dir: Path = fashion_mnist.DEFAULT_DIR
) -> str:
    """Create the raw drop of one version unless it is already complete; return its URI."""
    paths = DatasetPaths(root, dataset, version)
    started = time.monotonic()
    if is_hdfs(root):
        _lay_out_hdfs(paths, limit, source_dir)
    else:
        _lay_out_local(paths, limit, source_dir)
    log.info("raw drop ready at %s (%.1fs)", paths.raw, time.monotonic() - started)
    return paths.raw


def _lay_out_local(paths: DatasetPaths, limit: int | None, source_dir: Path) -> None:
    final = Path(uri_path(paths.raw))
    if (final / SUCCESS).exists():
        log.info("%s already holds a complete drop; leaving it as it is", final)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        count = write_pngs(tmp, limit, source_dir)
        if final.exists():  # an incomplete drop without _SUCCESS: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("laid out %d images", count)


def _lay_out_hdfs(paths: DatasetPaths, limit: int | None, source_dir: Path) -> None:
    from pyspark.sql import SparkSession

    from sparkvision.platform.storage import HadoopFS

    existing = SparkSession.getActiveSession()  # reuse (and leave running) a caller's session
    spark = existing or (
        SparkSession.builder.master("local[1]")
        .appName("sparkvision-rawdrop")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        fs = HadoopFS(spark)
        if fs.exists(f"{paths.raw}/{SUCCESS}"):
            log.info("%s already holds a complete drop; leaving it as it is", paths.raw)
            return
        with tempfile.TemporaryDirectory(prefix="sparkvision-rawdrop-") as local:
            count = write_pngs(Path(local) / "drop", limit, source_dir)
            fs.mkdirs(paths.raw.rsplit("/", 1)[0])
            with fs.staged_dir(paths.raw) as tmp:
                fs.delete(tmp)  # copy_from_local creates the folder itself
                fs.copy_from_local(f"{local}/drop", tmp, threads=COPY_THREADS)
        log.info("laid out %d images", count)
    finally:
        if existing is None:
            spark.stop()


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
