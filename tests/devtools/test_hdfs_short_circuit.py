"""The project's HDFS lets local clients read blocks from the DataNodes' disks (short-circuit reads)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from devtools.hdfs_cluster import CLIENT_SHORT_CIRCUIT, HdfsCluster


def _read(spark, uri: str, path: str, settings: dict[str, str]) -> tuple[bytes, int, int]:
    """(content, bytes read short-circuit, bytes read) of one file, by a client with ``settings``."""
    jvm = spark._jvm
    conf = jvm.org.apache.hadoop.conf.Configuration(spark._jsc.hadoopConfiguration())
    # a client context of its own: one made by an earlier client of the JVM keeps that one's settings
    conf.set("dfs.client.context", f"sparkvision-test-{sorted(settings.items())}")
    for key, value in settings.items():
        conf.set(key, value)
    fs = jvm.org.apache.hadoop.fs.FileSystem.newInstance(jvm.java.net.URI(uri), conf)
    try:
        stream = fs.open(jvm.org.apache.hadoop.fs.Path(path))
        try:
            content = bytes(stream.readAllBytes())
            stats = stream.getReadStatistics()
            return content, stats.getTotalShortCircuitBytesRead(), stats.getTotalBytesRead()
        finally:
            stream.close()
    finally:
        fs.close()


def test_a_local_client_reads_the_blocks_from_disk_and_gets_the_same_bytes(spark, hadoop_fs, hdfs):
    path = f"{hdfs.uri}/t/short-circuit/blob.bin"
    data = os.urandom(300_000)
    hadoop_fs.write_bytes(path, data)

    content, local_bytes, total = _read(spark, hdfs.uri, path, CLIENT_SHORT_CIRCUIT)
    assert content == data
    assert local_bytes == total == len(data)

    content, local_bytes, total = _read(spark, hdfs.uri, path, {"dfs.client.read.shortcircuit": "false"})
    assert content == data
    assert (local_bytes, total) == (0, len(data))


def _properties(path) -> dict[str, str]:
    return {p.findtext("name"): p.findtext("value") for p in ET.parse(path).getroot().iter("property")}


def test_the_configuration_turns_short_circuit_reads_on_and_off(tmp_path):
    on = HdfsCluster(str(tmp_path / "on"), datanodes=2, replication=1)
    on.write_config()
    client = _properties(on.client_conf_dir / "hdfs-site.xml")
    assert {key: client[key] for key in CLIENT_SHORT_CIRCUIT} == CLIENT_SHORT_CIRCUIT
    for daemon in ("datanode-0", "datanode-1"):
        assert _properties(on.conf_dir / daemon / "hdfs-site.xml")["dfs.block.local-path-access.user"]

    off = HdfsCluster(str(tmp_path / "off"), datanodes=1, replication=1, short_circuit=False)
    off.write_config()
    assert not set(CLIENT_SHORT_CIRCUIT) & set(_properties(off.client_conf_dir / "hdfs-site.xml"))
    assert "dfs.block.local-path-access.user" not in _properties(off.conf_dir / "datanode-0" / "hdfs-site.xml")
