"""Lay a local image folder out as a drop: a dataset version to train on, or a batch to score.

    python -m sparkvision.ingest.drop FOLDER --dataset fashion_mnist --version v2   # raw/<dataset>/<version>/
    python -m sparkvision.ingest.drop FOLDER --batch 20261129                      # incoming/<batch>/
    options: --root URI (default SPARKVISION_ROOT), --replace, --link, --threads N

A **training drop** (``--dataset``/``--version``) is ``FOLDER/<label>/<files>`` (deeper folders
allowed): every top-level entry must be a folder whose name is a safe label. A **batch drop**
(``--batch``) is any tree of images, no labels needed. Both land on the root as they are in
FOLDER (relative paths kept, so predictions join back to the files).

- **Validated first**: the dataset, version and batch names (and a training drop's labels) are
  checked before anything is written. Names starting with ``.`` or ``_`` and ``*._COPYING_`` are
  not part of a drop (the pipeline's listing skips them too): they are counted and left out.
- **Atomic**: files go to a hidden staging folder next to the target; ``_SUCCESS`` is written
  last, then one rename makes the whole drop appear. A sensor never sees half a drop. A complete
  drop is left alone unless ``--replace`` (then the old one is swapped out in one commit).
- **file:// or hdfs://**: a local root is written with plain file copies (``--link``: hard links,
  when FOLDER is on the same filesystem, for large folders); HDFS through the Hadoop client with
  ``--threads`` parallel copies.
- **Progress**: a line every few seconds with files, bytes and rate.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sparkvision.ingest.files import skipped_name
from sparkvision.platform.layout import SUCCESS, DatasetPaths, incoming_batch, is_hdfs, is_safe_name, uri_path
from sparkvision.platform.settings import storage_root

log = logging.getLogger(__name__)

#: Files copied at once into HDFS (small files: the NameNode round trips, not bytes, dominate).
COPY_THREADS = 64
#: Seconds between progress lines.
PROGRESS_SECONDS = 5.0


class DropError(ValueError):
    """A folder that cannot be laid out as the drop asked for (the message says why)."""


@dataclass(frozen=True)
class DropPlan:
    """The files of a local folder that make the drop, validated."""

    folder: Path
    #: Paths relative to ``folder``, sorted.
    files: tuple[str, ...]
    #: Top-level entries that hold them (what is copied to HDFS).
    entries: tuple[str, ...]
    bytes: int
    #: Names left out (``.x``, ``_x``, ``x._COPYING_``).
    skipped: int
    #: The paths of those left out inside the entries (an HDFS copy of an entry removes them).
    left_out: tuple[str, ...] = ()


def plan(folder: Path, labelled: bool) -> DropPlan:
    """Walk ``folder`` and validate it as a training drop (``labelled``) or a batch drop."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DropError(f"{folder} is not a folder")
    files: list[str] = []
    entries: list[str] = []
    left_out: list[str] = []
    total = skipped = 0
    for entry in sorted(os.listdir(folder)):
        top = folder / entry
        if skipped_name(entry):
            skipped += 1
            continue
        if labelled and not (top.is_dir() and is_safe_name(entry)):
            what = "a file outside any <label>/ folder" if not top.is_dir() else "a label folder with an unsafe name"
            raise DropError(
                f"{top} is {what}: a training drop is <label>/<files>, labels of 1-64 letters, digits, "
                "'.', '_' or '-' starting with a letter or digit (use --batch for unlabelled images)"
            )
        entries.append(entry)
        if not top.is_dir():
            files.append(entry)
            total += top.stat().st_size
            continue
        for directory, folders, names in os.walk(top):
            kept = [name for name in folders if not skipped_name(name)]
            left_out += [Path(directory, name).relative_to(folder).as_posix() for name in folders if name not in kept]
            folders[:] = sorted(kept)
            for name in sorted(names):
                if skipped_name(name):
                    left_out.append(Path(directory, name).relative_to(folder).as_posix())
                    continue
                path = Path(directory, name)
                files.append(path.relative_to(folder).as_posix())
                total += path.stat().st_size
    if not files:
        raise DropError(f"{folder} holds no files to drop")
    return DropPlan(folder, tuple(files), tuple(entries), total, skipped + len(left_out), tuple(left_out))


class _Progress:
    """Logs files and bytes done every PROGRESS_SECONDS."""

    def __init__(self, total_files: int, total_bytes: int) -> None:
        self.total_files, self.total_bytes = total_files, total_bytes
        self.started = self.last = time.monotonic()

    def update(self, files: int, nbytes: int | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        rate = files / max(now - self.started, 1e-9)
        size = f", {nbytes / 2**20:,.1f} of {self.total_bytes / 2**20:,.1f} MiB" if nbytes is not None else ""
        log.info("dropped %s of %s files%s (%s files/s)", f"{files:,}", f"{self.total_files:,}", size, f"{rate:,.0f}")


def target_uri(root: str, dataset: str | None, version: str | None, batch: str | None) -> tuple[str, bool]:
    """(the drop's URI, labelled) for a training drop (dataset and version) or a batch drop."""
    if batch is not None:
        if dataset is not None or version is not None:
            raise DropError("give either --batch, or --dataset and --version")
        return incoming_batch(root, batch), False
    if dataset is None or version is None:
        raise DropError("a training drop needs --dataset and --version (or give --batch)")
    return DatasetPaths(root, dataset, version).raw, True


def drop_complete(uri: str) -> bool:
    """True when ``uri`` holds a complete drop (its ``_SUCCESS``)."""
    if not is_hdfs(uri):
        return (Path(uri_path(uri)) / SUCCESS).exists()
    from sparkvision.platform.storage import HadoopFS

    with _spark() as spark:
        return HadoopFS(spark).exists(f"{uri}/{SUCCESS}")


def drop_folder(
    folder: str | Path,
    uri: str,
    labelled: bool,
    replace: bool = False,
    link: bool = False,
    threads: int = COPY_THREADS,
) -> dict:
    """Lay ``folder`` out at ``uri`` atomically, ``_SUCCESS`` last; return what was done.

    A complete drop at ``uri`` is left as it is (``"created": False``) unless ``replace``.
    """
    started = time.monotonic()
    drop = plan(Path(folder), labelled)
    log.info(
        "dropping %s files (%.1f MiB) from %s to %s; %d names skipped",
        f"{len(drop.files):,}",
        drop.bytes / 2**20,
        drop.folder,
        uri,
        drop.skipped,
    )
    write = _drop_hdfs if is_hdfs(uri) else _drop_local
    created = write(drop, uri, replace, link, threads)
    summary = {
        "uri": uri,
        "created": created,
        "files": len(drop.files),
        "bytes": drop.bytes,
        "skipped": drop.skipped,
        "seconds": round(time.monotonic() - started, 2),
    }
    if created:
        log.info("drop complete: %s (%s files in %.1fs)", uri, f"{len(drop.files):,}", summary["seconds"])
    return summary


def _drop_local(drop: DropPlan, uri: str, replace: bool, link: bool, threads: int) -> bool:
    final = Path(uri_path(uri))
    if (final / SUCCESS).exists() and not replace:
        log.info("%s already holds a complete drop; leaving it as it is (--replace replaces it)", final)
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    previous = final.parent / f".{final.name}.previous-{uuid.uuid4().hex}"
    progress = _Progress(len(drop.files), drop.bytes)
    try:
        done_bytes = 0
        for n, rel in enumerate(drop.files, 1):
            source, target = drop.folder / rel, staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            done_bytes += _place(source, target, link)
            progress.update(n, done_bytes)
        progress.update(len(drop.files), done_bytes, force=True)
        (staging / SUCCESS).touch()
        if final.exists():  # a complete drop (with --replace) or an incomplete one: swapped out
            os.rename(final, previous)
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    return True


def _place(source: Path, target: Path, link: bool) -> int:
    """Hard-link (when asked and possible) or copy one file; its size."""
    if link:
        try:
            os.link(source, target)
            return target.stat().st_size
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    shutil.copyfile(source, target)
    return target.stat().st_size


def _drop_hdfs(drop: DropPlan, uri: str, replace: bool, link: bool, threads: int) -> bool:
    from sparkvision.platform.storage import HadoopFS

    with _spark() as spark:
        fs = HadoopFS(spark)
        if fs.exists(f"{uri}/{SUCCESS}") and not replace:
            log.info("%s already holds a complete drop; leaving it as it is (--replace replaces it)", uri)
            return False
        fs.mkdirs(uri.rsplit("/", 1)[0])
        progress = _Progress(len(drop.files), drop.bytes)
        with fs.staged_dir(uri) as tmp:
            failure: list[BaseException] = []

            def put() -> None:
                try:
                    fs.put_into([str(drop.folder / entry) for entry in drop.entries], tmp, max(1, threads))
                except BaseException as exc:  # re-raised below, in the caller's thread
                    failure.append(exc)

            copier = threading.Thread(target=put, name="drop-put")
            copier.start()
            while copier.is_alive():
                copier.join(PROGRESS_SECONDS)
                if copier.is_alive():
                    progress.update(fs.file_count(tmp), force=True)
            if failure:
                raise failure[0]
            for rel in drop.left_out:  # copied with their folder, but not part of the drop
                fs.delete(f"{tmp}/{rel}")
            progress.update(len(drop.files), drop.bytes, force=True)
            fs.touch(f"{tmp}/{SUCCESS}")
    return True


class _spark:
    """The active SparkSession (left running), or a small local one for the copy (stopped after)."""

    def __enter__(self):
        from pyspark.sql import SparkSession

        self.existing = SparkSession.getActiveSession()
        self.session = self.existing or (
            SparkSession.builder.master("local[1]")
            .appName("sparkvision-drop")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
        return self.session

    def __exit__(self, *exc) -> None:
        if self.existing is None:
            self.session.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the local folder to drop")
    parser.add_argument("--root", default=None, help="storage root URI (default: SPARKVISION_ROOT)")
    parser.add_argument("--dataset", help="training drop: the dataset name")
    parser.add_argument("--version", help="training drop: the dataset version")
    parser.add_argument("--batch", help="batch drop: the batch name (what the batch_inference DAG scores)")
    parser.add_argument("--replace", action="store_true", help="replace a complete drop of the same name")
    parser.add_argument("--link", action="store_true", help="file:// roots: hard-link instead of copying")
    parser.add_argument("--threads", type=int, default=COPY_THREADS, help="HDFS: files copied at once")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        uri, labelled = target_uri(args.root or storage_root(), args.dataset, args.version, args.batch)
        summary = drop_folder(args.folder, uri, labelled, args.replace, args.link, args.threads)
    except ValueError as exc:  # DropError and invalid names
        parser.error(str(exc))
    print(summary["uri"] if summary["created"] else f"{summary['uri']} (already complete; unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
