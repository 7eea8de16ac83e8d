"""The package the jobs ship to the executors: every module, named by content, importable from the zip."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import sparkvision
from sparkvision.platform.spark import package_archive


def test_the_archive_holds_the_package_and_is_named_by_its_content(tmp_path):
    package = Path(sparkvision.__file__).parent
    archive = package_archive(package, tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert "sparkvision/__init__.py" in names and "sparkvision/training/worker.py" in names
    assert len(names) == len(list(package.rglob("*.py")))
    assert package_archive(package, tmp_path) == archive  # same code, same file
    probe = "import sparkvision.training.schedule as s, sparkvision; print(sparkvision.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(archive)!r}); {probe}"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"{archive}/sparkvision/__init__.py"


def test_zip_importers_are_forgotten_and_made_again_from_the_directory_cache(tmp_path):
    # A subprocess: the test's own interpreter keeps its importers.
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pkg/__init__.py", "")
        zipped.writestr("pkg/a.py", "A = 1\n")
        zipped.writestr("pkg/sub/__init__.py", "")
        zipped.writestr("pkg/sub/b.py", "B = 2\n")
    probe = (
        f"import sys, zipimport, importlib; sys.path.insert(0, {str(archive)!r}); "
        "import pkg.a; "
        "from sparkvision.platform.spark import _forget_zip_importers; _forget_zip_importers(); "
        "left = [p for p, f in sys.path_importer_cache.items() if isinstance(f, zipimport.zipimporter)]; "
        "importlib.invalidate_caches(); import pkg.sub.b; print(len(left), pkg.a.A + pkg.sub.b.B)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "3"]


def test_driver_imports_pyspark_from_the_installed_package_not_its_zip(tmp_path):
    import pyspark

    package = Path(pyspark.__file__).parent
    zipped = package / "python" / "lib" / "pyspark.zip"
    assert zipped.is_file()
    distribution = tmp_path / "spark" / "python" / "lib" / "pyspark.zip"  # a Spark distribution's zip
    distribution.parent.mkdir(parents=True)
    zipfile.ZipFile(distribution, "w").close()
    probe = (
        f"import sys; sys.path[:0] = [{str(zipped)!r}, {str(distribution)!r}]; "
        "from sparkvision.platform.pyspark_path import prefer_installed_pyspark; prefer_installed_pyspark(); "
        "import pyspark.sql; print(pyspark.__file__); print(sys.path[0])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(package / "__init__.py"), str(distribution)]


def test_the_venvs_interpreters_drop_the_zip_that_spark_submit_puts_first():
    """scripts/setup.sh's .pth: a driver or Python worker started as Spark starts them."""
    import pyspark

    package = Path(pyspark.__file__).parent
    zipped = package / "python" / "lib" / "pyspark.zip"
    probe = "import sys, pyspark; print(pyspark.__file__); print(any(p.endswith('pyspark.zip') for p in sys.path))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(zipped)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(package / "__init__.py"), "False"], out.stderr
