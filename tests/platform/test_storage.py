"""The Hadoop filesystem wrapper and the HDFS launcher, against the real services."""

from __future__ import annotations

import ctypes
import errno
import subprocess
import sys
import textwrap

import pytest

from devtools.rawdrop import lay_out
from sparkvision.platform.layout import DatasetPaths

pytestmark = pytest.mark.integration


def test_hdfs_fixture_serves_webhdfs_and_rpc(hdfs, hadoop_fs):
    hdfs.webhdfs_put("/probe/a.txt", b"through webhdfs")
    assert hadoop_fs.read_bytes(f"{hdfs.uri}/probe/a.txt") == b"through webhdfs"  # read back over RPC
    hadoop_fs.write_bytes(f"{hdfs.uri}/probe/b.txt", b"through rpc")
    assert hdfs.webhdfs_get("/probe/b.txt") == b"through rpc"
    assert hdfs.running() and set(hdfs.pids()) == {"namenode", "datanode-0"}


def test_files_json_and_listing(root, hadoop_fs):
    hadoop_fs.write_json(f"{root}/a/x.json", {"k": [1, 2]})
    hadoop_fs.touch(f"{root}/a/_SUCCESS")
    assert hadoop_fs.read_json(f"{root}/a/x.json") == {"k": [1, 2]}
    assert hadoop_fs.list(f"{root}/a") == ["_SUCCESS", "x.json"]  # no .crc or temp siblings
    assert hadoop_fs.list(f"{root}/missing") == []


def test_rename_never_moves_into_an_existing_directory(root, hadoop_fs):
    hadoop_fs.write_bytes(f"{root}/src/f", b"1")
    hadoop_fs.write_bytes(f"{root}/dst/g", b"2")
    with pytest.raises(FileExistsError):
        hadoop_fs.rename(f"{root}/src", f"{root}/dst")
    assert hadoop_fs.list(f"{root}/dst") == ["g"]
    hadoop_fs.rename(f"{root}/src", f"{root}/new")
    assert hadoop_fs.read_bytes(f"{root}/new/f") == b"1" and not hadoop_fs.exists(f"{root}/src")


def test_local_renames_check_and_rename_in_one_step(tmp_path, monkeypatch):
    """Where rename(2) would replace (a file, an empty folder), the local rename refuses: the
    check is part of the rename, not a step before it that a racing writer can slip past."""
    from sparkvision.platform import storage

    def race(src_is_dir: bool, dst_is_dir: bool) -> None:
        src, dst = tmp_path / "src", tmp_path / "dst"
        for path, is_dir in ((src, src_is_dir), (dst, dst_is_dir)):
            path.mkdir() if is_dir else path.write_text(path.name)
        with pytest.raises(FileExistsError):
            storage._rename_noreplace(str(src), str(dst))
        assert src.exists() and (dst.is_dir() if dst_is_dir else dst.read_text() == "dst")
        for path in (src, dst):
            path.rmdir() if path.is_dir() else path.unlink()
        (src.mkdir() if src_is_dir else src.write_text("src"))
        storage._rename_noreplace(str(src), str(dst))  # a free name: renamed
        assert not src.exists() and dst.exists()
        dst.rmdir() if dst.is_dir() else dst.unlink()

    race(False, False)
    race(True, True)

    class NoRenameat2:  # a filesystem without RENAME_NOREPLACE: the link / mkdir fallback
        @staticmethod
        def renameat2(*args):
            ctypes.set_errno(errno.EINVAL)
            return -1

    monkeypatch.setattr(storage, "_libc", lambda: NoRenameat2)
    race(False, False)
    race(True, True)


def test_racing_renames_to_one_name_have_exactly_one_winner(root, hadoop_fs):
    """The claim a publish relies on: of writers renaming onto one free name, one wins, whole."""
    import threading

    def writer(tmp: str, target: str, barrier: threading.Barrier, winners: list) -> None:
        hadoop_fs.write_bytes(tmp, tmp.encode())
        barrier.wait()
        try:
            hadoop_fs.rename(tmp, target)
            winners.append(tmp)
        except FileExistsError:
            hadoop_fs.delete(tmp)

    rounds, writers = 12, 6
    for n in range(rounds):
        target, barrier, winners = f"{root}/race/{n}", threading.Barrier(writers), []
        threads = [
            threading.Thread(target=writer, args=(f"{root}/race/.{n}-{i}.tmp", target, barrier, winners))
            for i in range(writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(winners) == 1, f"round {n}: {winners} were all renamed onto {target}"
        assert hadoop_fs.read_bytes(target) == winners[0].encode()
    assert hadoop_fs.list(f"{root}/race") == sorted(str(n) for n in range(rounds))


def test_staged_dir_commits_whole_or_not_at_all(root, hadoop_fs):
    final = f"{root}/out/v1"
    hadoop_fs.mkdirs(f"{root}/out")
    with pytest.raises(RuntimeError), hadoop_fs.staged_dir(final) as tmp:
        hadoop_fs.write_bytes(f"{tmp}/part", b"half")
        raise RuntimeError("killed")
    assert not hadoop_fs.exists(final) and hadoop_fs.list(f"{root}/out") == []
    with hadoop_fs.staged_dir(final) as tmp:
        hadoop_fs.write_bytes(f"{tmp}/part", b"whole")
    assert hadoop_fs.read_bytes(f"{final}/part") == b"whole"
    assert hadoop_fs.list(f"{root}/out") == ["v1"]


#: A process that commits ``new`` over ``old`` and SIGKILLs itself (JVM included) right before
#: its Nth rename or delete of the commit: 1 = before the first rename, 2 = between the renames,
#: 3 = after both (before the old output is deleted); 0 = never.
COMMIT_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pyspark.sql import SparkSession
    from sparkvision.platform.storage import HadoopFS

    root, kill_at = sys.argv[1], int(sys.argv[2])
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    fs = HadoopFS(spark)
    final, staged = f"{root}/out/v1", f"{root}/out/.v1.staged.tmp"
    for name in ("a", "b"):
        fs.write_bytes(f"{staged}/{name}", b"new")
    steps = {"n": 0}

    def step(method):
        def wrapped(*args, **kwargs):
            steps["n"] += 1
            if steps["n"] == kill_at:
                os.killpg(0, signal.SIGKILL)
            return method(*args, **kwargs)
        return wrapped

    fs.rename, fs.delete = step(fs.rename), step(fs.delete)
    fs.commit(staged, final)
    print("committed")
    """
)


def _whole_output(hadoop_fs, final: str) -> bytes:
    """What a reader finds at ``final`` (through ``readable``): every part the same, none missing."""
    where = hadoop_fs.readable(final)
    parts = {name: hadoop_fs.read_bytes(f"{where}/{name}") for name in hadoop_fs.list(where)}
    assert sorted(parts) == ["a", "b"], (where, parts)
    assert len(set(parts.values())) == 1, parts  # never a mix
    return parts["a"]


@pytest.mark.parametrize("kill_at", [1, 2, 3, 0], ids=["before", "between", "after", "none"])
def test_a_commit_killed_at_any_step_leaves_the_old_or_the_new_output_whole(root, hadoop_fs, project_dir, kill_at):
    final = f"{root}/out/v1"
    for name in ("a", "b"):
        hadoop_fs.write_bytes(f"{final}/{name}", b"old")
    child = subprocess.run(
        [sys.executable, "-c", COMMIT_AND_DIE, root, str(kill_at)],
        cwd=project_dir,
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,  # its own process group: the kill takes its JVM too
    )
    if kill_at:
        assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    else:
        assert child.returncode == 0 and "committed" in child.stdout, child.stderr[-3000:]
    expected = {1: b"old", 2: b"old", 3: b"new", 0: b"new"}[kill_at]
    assert _whole_output(hadoop_fs, final) == expected
    # The next writer (or reader) finishes or undoes the interrupted commit; the output stays whole.
    hadoop_fs.recover(final)
    assert hadoop_fs.readable(final) == final and _whole_output(hadoop_fs, final) == expected
    assert [name for name in hadoop_fs.list(f"{root}/out") if name.endswith(".previous")] == []
    with hadoop_fs.staged_dir(final) as tmp:
        for name in ("a", "b"):
            hadoop_fs.write_bytes(f"{tmp}/{name}", b"next")
    assert _whole_output(hadoop_fs, final) == b"next" and hadoop_fs.list(f"{root}/out") == ["v1"]


def test_immutable_files_are_written_once_and_replaced_files_atomically(root, hadoop_fs):
    uri = f"{root}/configs/x.json"
    assert hadoop_fs.commit_new(uri, b"first") == uri
    assert hadoop_fs.commit_new(uri, b"first") == uri  # content-addressed: the same bytes again
    assert hadoop_fs.read_bytes(uri) == b"first" and hadoop_fs.list(f"{root}/configs") == ["x.json"]
    pointer = f"{root}/models/LATEST"
    for value in (b"1\n", b"2\n"):
        hadoop_fs.write_atomic(pointer, value)
        assert hadoop_fs.read_bytes(pointer) == value
    assert hadoop_fs.list(f"{root}/models") == ["LATEST"]  # no temporary sibling left


def test_copy_to_and_from_local(root, hadoop_fs, tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f.bin").write_bytes(b"\x00\x01")
    hadoop_fs.copy_from_local(str(tmp_path / "tree"), f"{root}/tree")
    hadoop_fs.copy(f"{root}/tree", f"{root}/tree2")
    hadoop_fs.copy_to_local(f"{root}/tree2", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f.bin").read_bytes() == b"\x00\x01"


def test_parallel_copy_from_local_copies_every_file_and_reports_failure(root, hadoop_fs, tmp_path):
    tree = tmp_path / "many"
    for n in range(40):
        (tree / f"d{n % 3}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{n % 3}" / f"f{n}.bin").write_bytes(bytes([n]) * (n + 1))
    hadoop_fs.copy_from_local(str(tree), f"{root}/many", threads=8)
    copied = {f"{d}/{f}" for d in hadoop_fs.list(f"{root}/many") for f in hadoop_fs.list(f"{root}/many/{d}")}
    assert copied == {f"d{n % 3}/f{n}.bin" for n in range(40)}
    assert hadoop_fs.read_bytes(f"{root}/many/d1/f7.bin") == bytes([7]) * 8
    with pytest.raises(OSError, match="hadoop fs -put exit status"):
        hadoop_fs.copy_from_local(str(tmp_path / "no-such-folder"), f"{root}/nothing", threads=8)


def test_raw_drop_on_hdfs(hdfs, hadoop_fs):
    root = f"{hdfs.uri}/rawdrop"
    lay_out(root, "fashion_mnist", "v1", limit=5)
    paths = DatasetPaths(root, "fashion_mnist", "v1")
    assert hadoop_fs.exists(f"{paths.raw}/_SUCCESS")
    files = [
        f for label in hadoop_fs.list(paths.raw) if label != "_SUCCESS" for f in hadoop_fs.list(f"{paths.raw}/{label}")
    ]
    assert len(files) == 10 and {f.split("-")[0] for f in files} == {"train", "test"}
    assert hdfs.webhdfs_status("/rawdrop/raw/fashion_mnist/v1/_SUCCESS")["type"] == "FILE"


def test_hdfs_command_starts_reports_and_stops_by_pid(tmp_path):
    """`python -m devtools.hdfs_cluster` (behind make hdfs-start/-status/-stop) end to end."""
    import subprocess
    import sys

    from devtools.daemons import alive
    from devtools.hdfs_cluster import HdfsCluster

    command = [sys.executable, "-m", "devtools.hdfs_cluster"]
    folder = str(tmp_path / "hdfs")
    started = subprocess.run(
        [*command, "start", "--dir", folder, "--free-ports", "--datanodes", "1"], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr[-3000:]
    assert "export SPARKVISION_ROOT=hdfs://127.0.0.1:" in started.stdout
    cluster = HdfsCluster.load(folder)
    pids = cluster.pids()
    assert set(pids) == {"namenode", "datanode-0"}
    assert f"export HADOOP_CONF_DIR={cluster.client_conf_dir}" in started.stdout
    assert subprocess.run([*command, "status", "--dir", folder]).returncode == 0
    assert cluster.webhdfs_status("/tmp/.sparkvision-probe")["type"] == "FILE"  # the readiness probe
    assert subprocess.run([*command, "stop", "--dir", folder], capture_output=True).returncode == 0
    assert not any(alive(pid) for pid in pids.values())
    assert subprocess.run([*command, "status", "--dir", folder], capture_output=True).returncode == 1
