"""The SparkSession of a job and session-scoped settings: Spark plumbing in one place."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Set on every session of the jobs (and the tests' session). Kryo for cached blocks: Java
#: serialization keeps every object of a block read back (up to 100) alive, and the ingest's
#: cached partitions are made of batches of megabytes of pixels (OutOfMemoryError at 512m).
SESSION_CONF = {"spark.serializer": "org.apache.spark.serializer.KryoSerializer"}


def spark_session(app_name: str) -> Any:
    """The job's SparkSession; master and resources come from spark-submit."""
    from sparkvision.platform.pyspark_path import prefer_installed_pyspark

    prefer_installed_pyspark()  # done at start-up already in the project's venv (its .pth)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).config(map=SESSION_CONF).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    ship_package(spark)
    return spark


def package_archive(package_dir: Path, out_dir: Path) -> Path:
    """A zip of the ``sparkvision`` package at ``package_dir`` (its .py files), named by its content.

    The content-addressed name lets a session add it once (Spark refuses a second file of the
    same name with other bytes) and tells in an executor's log which code it ran.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package_dir.rglob("*.py")):
            info = zipfile.ZipInfo(str(path.relative_to(package_dir.parent)), date_time=(2020, 1, 1, 0, 0, 0))
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    target = out_dir / f"sparkvision-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    if not target.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def ship_package(spark: Any) -> str:
    """Send the ``sparkvision`` code this driver runs to the executors, as ``--py-files`` does.

    The executors' Python workers put it first on their path, so the tasks run the driver's own
    code whatever the executors have installed (on a real cluster: nothing of this project).
    Code the driver imported from an archive (``--py-files sparkvision.zip``) is shipped as it
    is; code from a folder (an installed package, a checkout) is zipped first. Returns the path.
    """
    import sparkvision

    package_dir = Path(sparkvision.__file__).parent
    if not package_dir.is_dir():  # imported from an archive: the archive is the path's first file
        archive = next(parent for parent in package_dir.parents if parent.is_file())
    else:
        archive = package_archive(package_dir, Path(tempfile.gettempdir()) / f"sparkvision-packages-{os.getuid()}")
    _forget_zip_importers()
    spark.sparkContext.addPyFile(str(archive))
    log.info("shipping %s to the executors", archive.name)
    return str(archive)


def _forget_zip_importers() -> None:
    """Drop the cached importers of zip archives (spark-submit imports pyspark from pyspark.zip).

    ``addPyFile`` calls ``importlib.invalidate_caches``, on which Python 3.11 has every cached
    zip importer read its archive's whole directory again: one per package folder imported
    from pyspark.zip (18 here), 0.46 s of every job's start. An importer made later reuses
    zipimport's directory cache instead.
    """
    import sys
    import zipimport

    for path, finder in list(sys.path_importer_cache.items()):
        if isinstance(finder, zipimport.zipimporter):
            del sys.path_importer_cache[path]


@contextmanager
def session_conf(spark: Any, conf: dict[str, str]) -> Iterator[None]:
    """Set SQL confs for the block and restore them after (the session may be shared)."""
    old = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
