"""The drop command: a local folder laid out as a training drop or a batch drop, on file:// and HDFS."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from sparkvision.ingest import drop
from sparkvision.ingest.drop import DropError, drop_folder, plan, target_uri
from sparkvision.platform.layout import SUCCESS


def make_folder(folder, files: dict[str, bytes]):
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


LABELLED = {"cat/a.png": b"1", "cat/deep/b.png": b"22", "dog/c.png": b"333", "dog/.DS_Store": b"x", "_notes": b"y"}


def test_a_plan_validates_names_and_leaves_out_hidden_files(tmp_path):
    folder = make_folder(tmp_path / "src", LABELLED)
    planned = plan(folder, labelled=True)
    assert planned.files == ("cat/a.png", "cat/deep/b.png", "dog/c.png")
    assert (planned.entries, planned.bytes, planned.skipped) == (("cat", "dog"), 6, 2)
    make_folder(folder, {"loose.png": b"4"})
    with pytest.raises(DropError, match="outside any <label>/ folder"):
        plan(folder, labelled=True)
    assert plan(folder, labelled=False).files[-1] == "loose.png"  # a batch needs no labels
    with pytest.raises(DropError, match="unsafe name"):
        plan(make_folder(tmp_path / "bad", {"bad label/x.png": b"1"}), labelled=True)
    with pytest.raises(DropError, match="no files"):
        plan(make_folder(tmp_path / "empty", {".hidden": b"1"}), labelled=False)


def test_targets_are_validated_before_anything_is_written(tmp_path):
    root = (tmp_path / "root").as_uri()
    assert target_uri(root, None, None, "b1") == (f"{root}/incoming/b1", False)
    assert target_uri(root, "ds", "v1", None) == (f"{root}/raw/ds/v1", True)
    refusals = [
        ((None, None, "../b"), "invalid batch"),
        (("ds", "v1\n", None), "invalid version"),
        (("ds", None, None), "needs --dataset and --version"),
        (("ds", "v1", "b1"), "either"),
    ]
    for args, message in refusals:
        with pytest.raises(ValueError, match=message):
            target_uri(root, *args)
    assert not (tmp_path / "root").exists()


def test_a_local_drop_is_atomic_closed_by_success_and_left_alone_when_complete(tmp_path, monkeypatch, caplog):
    folder = make_folder(tmp_path / "src", LABELLED)
    uri = (tmp_path / "root" / "raw" / "ds" / "v1").as_uri()
    monkeypatch.setattr(drop, "PROGRESS_SECONDS", 0.0)  # a progress line per file
    with caplog.at_level(logging.INFO, logger="sparkvision.ingest.drop"):
        summary = drop_folder(folder, uri, labelled=True, link=True)
    assert summary["created"] and (summary["files"], summary["bytes"], summary["skipped"]) == (3, 6, 2)
    target = tmp_path / "root" / "raw" / "ds" / "v1"
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        SUCCESS, "cat/a.png", "cat/deep/b.png", "dog/c.png"
    ]  # fmt: skip
    assert (target / "cat/deep/b.png").read_bytes() == b"22"
    assert "dropped 3 of 3 files" in caplog.text
    assert [p.name for p in target.parent.iterdir()] == ["v1"]  # no staging left

    make_folder(folder, {"cat/new.png": b"5"})
    assert drop_folder(folder, uri, labelled=True)["created"] is False
    assert not (target / "cat/new.png").exists()
    assert drop_folder(folder, uri, labelled=True, replace=True)["created"] is True
    assert (target / "cat/new.png").exists() and (target / SUCCESS).exists()
    assert [p.name for p in target.parent.iterdir()] == ["v1"]


def test_an_incomplete_drop_is_replaced(tmp_path):
    target = tmp_path / "root" / "incoming" / "b1"
    make_folder(target, {"half.png": b"1"})  # a copy that died before _SUCCESS
    drop_folder(make_folder(tmp_path / "src", {"x/a.png": b"1"}), target.as_uri(), labelled=False)
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == [SUCCESS, "a.png"]


@pytest.mark.integration
def test_a_batch_drop_on_hdfs_through_the_command(hdfs, hadoop_fs, tmp_path, project_dir):
    folder = make_folder(tmp_path / "src", {"a.png": b"1", "x/y/b.png": b"22", "x/.tmp": b"3"})
    root = f"{hdfs.uri}/drops"
    command = [sys.executable, "-m", "sparkvision.ingest.drop", str(folder), "--root", root]
    done = subprocess.run(
        [*command, "--batch", "b1", "--threads", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == f"{root}/incoming/b1"
    assert hdfs.webhdfs_status("/drops/incoming/b1/_SUCCESS")["type"] == "FILE"
    assert hadoop_fs.read_bytes(f"{root}/incoming/b1/x/y/b.png") == b"22"
    assert [name for name in hadoop_fs.list(f"{root}/incoming") if name.startswith(".")] == []
    refused = subprocess.run(
        [*command, "--batch", "../b"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project_dir,
    )
    assert refused.returncode == 2 and "invalid batch" in refused.stderr
    assert hadoop_fs.list(f"{root}/incoming/b1/x") == ["y"]  # x/.tmp is not part of the drop
