"""The Hadoop reader on HDFS: the files of a batch are opened with the block locations of a folder
listing (a NameNode call per 1,000 files, not one per file), with the same bytes; a file gone
since the drop's listing is still an error of its own."""

from __future__ import annotations

import re

from sparkvision.ingest import hadoop


def _namenode_calls(cluster, folder: str) -> dict[str, int]:
    """Audit-logged NameNode calls on paths under ``folder``, by command (``open``, ``listStatus``)."""
    text = cluster.log_file("namenode").read_text(errors="replace")
    calls: dict[str, int] = {}
    for command in re.findall(rf"cmd=(\w+)\tsrc={re.escape(folder)}[/\t]", text):
        calls[command] = calls.get(command, 0) + 1
    return calls


def test_a_batch_is_opened_with_a_folder_listing_not_a_namenode_call_per_file(spark, hadoop_fs, hdfs, tmp_path):
    local = tmp_path / "drop"
    contents = {}
    for label in ("coat", "shirt"):
        (local / label).mkdir(parents=True)
        for i in range(150):
            data = f"{label}-{i};".encode() * (i + 1)
            (local / label / f"{i:04d}.png").write_bytes(data)
            contents[f"{label}/{i:04d}.png"] = data
    folder = f"/t/{tmp_path.name}/drop"
    uri = f"{hdfs.uri}{folder}"
    hadoop_fs.copy_from_local(str(local), uri)
    listing = hadoop.list_files(spark, uri).cache()
    assert listing.count() == 300
    hadoop_fs.delete(f"{uri}/shirt/0007.png")  # gone between the listing and the reads
    before = _namenode_calls(hdfs, folder)

    read = {}
    for row in hadoop.read_files(spark, uri, listing, 2, 1 << 20).collect():
        for path, content, error in zip(row.paths, row.files.content, row.files.error, strict=True):
            read[path] = (content, error)
    calls = _namenode_calls(hdfs, folder)
    listing.unpersist()

    assert set(read) == set(contents)
    for path, data in contents.items():
        if path == "shirt/0007.png":
            assert read[path][0] is None and read[path][1].startswith("FileNotFoundException"), read[path]
        else:
            assert bytes(read[path][0]) == data and read[path][1] is None, path
    opens = calls.get("open", 0) - before.get("open", 0)
    listings = calls.get("listStatus", 0) - before.get("listStatus", 0)
    # no file opened by name (the gone one was asked for, and failed: the audit log has no line for that)
    assert opens == 0, calls
    assert 1 <= listings <= 8, calls
