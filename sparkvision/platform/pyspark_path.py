"""Import pyspark from its installed folder, not from the pyspark.zip inside it.

spark-submit puts ``<pyspark>/python/lib/pyspark.zip`` first on the path of the driver and of
every Python worker daemon it starts. Python caches no bytecode for modules imported from a zip,
so each of those processes compiled pyspark's modules again: 0.6 s of each driver's start and
0.45 s of each worker daemon's, plus what each forked worker imports next (the first Python task
of a local spark-submit 3.1-3.2 s -> 1.9-2.1 s, two runs each way). Where the zip sits inside
an installed pyspark package (the pip wheel: the same release, with cached bytecode) whose
folder is on the path too, the zip leaves the path; a Spark distribution's zip (no package
around it) stays.

``scripts/setup.sh`` has the venv's interpreter run this file at every start (a ``.pth`` file:
the driver, the daemon and its workers alike), by path and not as part of the package: a worker
must import ``sparkvision`` from the archive its driver ships, not from the checkout.
``spark_session`` runs it too, for an interpreter without that file. Standard library only.
"""

from __future__ import annotations

import os
import sys

_ZIP = os.path.join("pyspark", "python", "lib", "pyspark.zip")


def prefer_installed_pyspark() -> None:
    """Drop from ``sys.path`` every pyspark.zip of an installed pyspark whose folder is on it too."""
    for entry in list(sys.path):
        if not entry.endswith(os.sep + _ZIP):
            continue
        package = os.path.dirname(os.path.dirname(os.path.dirname(entry)))  # <site-packages>/pyspark
        if os.path.isfile(os.path.join(package, "__init__.py")) and os.path.dirname(package) in sys.path:
            sys.path.remove(entry)
            sys.path_importer_cache.pop(entry, None)


if __name__ == "__pth__":  # run by the venv's .pth file at every interpreter start (scripts/setup.sh)
    prefer_installed_pyspark()
