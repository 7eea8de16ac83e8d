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
