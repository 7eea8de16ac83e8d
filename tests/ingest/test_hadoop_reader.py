"""The Hadoop reader on HDFS: the files of a batch are opened with the block locations of a folder
listing (a NameNode call per listing page, not one per file nor one per batch), with the same
bytes; a file gone since the drop's listing is still an error of its own. With short-circuit
reads, a local block is read from the DataNode's disk with a DataNode call per storage folder,
not one per file, and a replica whose bytes do not match its checksums is not taken."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

from devtools.hdfs_cluster import CLIENT_SHORT_CIRCUIT
from sparkvision.ingest import hadoop


def _namenode_calls(cluster, folder: str) -> dict[str, int]:
    """Audit-logged NameNode calls on paths under ``folder``, by command (``open``, ``listStatus``)."""
    text = cluster.log_file("namenode").read_text(errors="replace")
    calls: dict[str, int] = {}
    for command in re.findall(rf"cmd=(\w+)\tsrc={re.escape(folder)}[/\t]", text):
        calls[command] = calls.get(command, 0) + 1
    return calls


def _drop(hadoop_fs, hdfs, tmp_path, per_label: int = 150) -> tuple[str, str, dict[str, bytes]]:
    """(folder, its URI, content by relative path) of files copied to the test HDFS."""
    local = tmp_path / "drop"
    contents = {}
    for label in ("coat", "shirt"):
        (local / label).mkdir(parents=True)
        for i in range(per_label):
            data = f"{tmp_path.name}/{label}-{i};".encode() * (i + 1)  # unique in the test HDFS
            (local / label / f"{i:04d}.png").write_bytes(data)
            contents[f"{label}/{i:04d}.png"] = data
    folder = f"/t/{tmp_path.name}/drop"
    uri = f"{hdfs.uri}{folder}"
    hadoop_fs.copy_from_local(str(local), uri)
    return folder, uri, contents


def _read_all(spark, uri: str, listing, tasks: int = 2, files: int = hadoop.READ_BATCH_FILES) -> dict[str, tuple]:
    """(content, error) by relative path, as ``hadoop.read_files`` reads them (``tasks`` tasks,
    batches of ``files`` files)."""
    read = {}
    for row in hadoop.read_files(spark, uri, listing, tasks, 1 << 20, files).collect():
        for path, content, error in zip(row.paths, row.files.content, row.files.error, strict=True):
            read[path] = (None if content is None else bytes(content), error)
    return read


@contextmanager
def _short_circuit(spark):
    """The session's reads ask for local (short-circuit) reads, as the project's HDFS clients do
    (a session's SQL settings are part of the Hadoop configuration its jobs read with)."""
    for key, value in CLIENT_SHORT_CIRCUIT.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in CLIENT_SHORT_CIRCUIT:
            spark.conf.unset(key)


def test_a_batch_is_opened_with_a_folder_listing_not_a_namenode_call_per_file(spark, hadoop_fs, hdfs, tmp_path):
    folder, uri, contents = _drop(hadoop_fs, hdfs, tmp_path)
    listing = hadoop.list_files(spark, uri).cache()
    assert listing.count() == 300
    hadoop_fs.delete(f"{uri}/shirt/0007.png")  # gone between the listing and the reads
    before = _namenode_calls(hdfs, folder)

    read = _read_all(spark, uri, listing)
    calls = _namenode_calls(hdfs, folder)
    listing.unpersist()

    assert set(read) == set(contents)
    for path, data in contents.items():
        if path == "shirt/0007.png":
            assert read[path][0] is None and read[path][1].startswith("FileNotFoundException"), read[path]
        else:
            assert read[path] == (data, None), path
    opens = calls.get("open", 0) - before.get("open", 0)
    listings = calls.get("listStatus", 0) - before.get("listStatus", 0)
    # no file opened by name (the gone one was asked for, and failed: the audit log has no line for that)
    assert opens == 0, calls
    assert 1 <= listings <= 8, calls


def test_a_listing_page_is_listed_once_not_once_per_batch(spark, hadoop_fs, hdfs, tmp_path):
    # one task reads two folders of 350 files in batches of 50: 14 batches. A listing page with
    # locations holds up to 1,000 locations (334 files at 3 replicas), so each folder takes two
    # pages: 4 listings in all, where a listing per batch was 14
    folder, uri, contents = _drop(hadoop_fs, hdfs, tmp_path, per_label=350)
    listing = hadoop.list_files(spark, uri).cache()
    assert listing.count() == 700
    before = _namenode_calls(hdfs, folder)

    read = _read_all(spark, uri, listing, tasks=1, files=50)
    calls = _namenode_calls(hdfs, folder)
    listing.unpersist()

    assert read == {path: (data, None) for path, data in contents.items()}
    assert calls.get("open", 0) == before.get("open", 0), calls
    assert 2 <= calls.get("listStatus", 0) - before.get("listStatus", 0) <= 4, (before, calls)


def test_short_circuit_reads_ask_the_datanode_once_per_storage_folder_not_per_file(spark, hadoop_fs, hdfs, tmp_path):
    _, uri, contents = _drop(hadoop_fs, hdfs, tmp_path)
    listing = hadoop.list_files(spark, uri).cache()
    assert listing.count() == 300
    time.sleep(1.5)  # the DataNode's counters are up to a metrics period (1 s) old
    before = hdfs.datanode_activity()
    with _short_circuit(spark):
        read = _read_all(spark, uri, listing)
    time.sleep(1.5)
    after = hdfs.datanode_activity()
    listing.unpersist()

    assert read == {path: (data, None) for path, data in contents.items()}
    # the legacy short-circuit reader asks for every block's files (300 calls); here the first
    # answer names the DataNode's one storage folder (up to one call per read in flight before it)
    lookups = after["BlocksGetLocalPathInfo"] - before["BlocksGetLocalPathInfo"]
    assert 1 <= lookups <= 2 * hadoop.READ_CONCURRENCY, lookups
    # and no block went through the DataNode's data transfer
    assert after["BlocksRead"] == before["BlocksRead"], (before["BlocksRead"], after["BlocksRead"])


def test_a_replica_that_does_not_match_its_checksums_is_not_taken(spark, hadoop_fs, hdfs, tmp_path):
    _, uri, contents = _drop(hadoop_fs, hdfs, tmp_path, per_label=20)
    victim = "coat/0019.png"
    # the DataNode's block file of one file (found by its bytes), one byte changed
    blocks = [p for p in hdfs.data_dir().rglob("blk_*") if not p.name.endswith(".meta")]
    (block,) = [p for p in blocks if p.read_bytes() == contents[victim]]
    damaged = bytearray(contents[victim])
    damaged[3] ^= 0xFF
    block.write_bytes(bytes(damaged))
    listing = hadoop.list_files(spark, uri).cache()
    with _short_circuit(spark):
        read = _read_all(spark, uri, listing)
    listing.unpersist()

    content, error = read.pop(victim)
    assert content is None and ("Checksum" in error or "BlockMissing" in error), (content, error)
    assert read == {path: (data, None) for path, data in contents.items() if path != victim}
