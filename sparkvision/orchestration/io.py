"""Small reads and writes on the storage root from an Airflow task: WebHDFS on HDFS, else local.

The Spark jobs use Spark's own Hadoop client (``sparkvision.platform.storage``); a task of the
DAG has no JVM, so it goes through the WebHDFS connection the sensors use.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from sparkvision.platform import settings
from sparkvision.platform.layout import is_hdfs, uri_path


def _webhdfs():
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    return WebHDFSHook(settings.webhdfs_conn_id()).get_conn()


def read_text(uri: str) -> str:
    """Read a small text file from the root."""
    if is_hdfs(uri):
        with _webhdfs().read(uri_path(uri)) as reader:
            return reader.read().decode("utf-8")
    with open(uri_path(uri)) as handle:
        return handle.read()


def exists(uri: str) -> bool:
    """Whether a file or folder exists on the root."""
    if is_hdfs(uri):
        return _webhdfs().status(uri_path(uri), strict=False) is not None
    return os.path.exists(uri_path(uri))


def list_names(uri: str) -> list[str]:
    """The names in a folder of the root, sorted; [] when it is missing."""
    if is_hdfs(uri):
        client = _webhdfs()
        if client.status(uri_path(uri), strict=False) is None:
            return []
        return sorted(client.list(uri_path(uri)))
    path = uri_path(uri)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def read_json(uri: str) -> Any:
    """Read a small JSON file from the root (see read_text)."""
    return json.loads(read_text(uri))


def commit_new(uri: str, text: str) -> str:
    """Write an immutable, content-addressed file once: staged, then renamed into place."""
    path = uri_path(uri)
    parent, name = path.rsplit("/", 1)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
    if is_hdfs(uri):
        client = _webhdfs()
        if client.status(path, strict=False) is not None:
            return uri
        client.makedirs(parent)
        client.write(tmp, data=text.encode("utf-8"), overwrite=True)
        try:
            client.rename(tmp, path)
        except Exception:  # the hdfs library's HdfsError: another writer committed the same bytes first
            client.delete(tmp)
            if client.status(path, strict=False) is None:
                raise
        return uri
    if os.path.exists(path):
        return uri
    os.makedirs(parent, exist_ok=True)
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return uri


def read_bytes(uri: str) -> bytes:
    """Read a small file (a plot, a report) from the root."""
    if is_hdfs(uri):
        with _webhdfs().read(uri_path(uri)) as reader:
            return reader.read()
    with open(uri_path(uri), "rb") as handle:
        return handle.read()


def write_atomic(uri: str, data: bytes) -> None:
    """Replace a small file in one step: staged beside it, then renamed over it."""
    path = uri_path(uri)
    parent, name = path.rsplit("/", 1)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
    if is_hdfs(uri):
        client = _webhdfs()
        client.write(tmp, data=data, overwrite=True)
        try:
            client._rename(tmp, destination=path, renameoptions="OVERWRITE")  # the NameNode's rename2
        except Exception:
            client.delete(tmp)
            raise
        return
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class RootFS:
    """The storage root seen from an Airflow process (a task, the api-server), without a JVM.

    The part of ``sparkvision.platform.storage.HadoopFS``'s interface that reading the published
    models and moving LATEST need, so ``sparkvision.platform.catalog`` and
    ``sparkvision.registry.publish.rollback`` work on it unchanged.
    """

    def exists(self, uri: str) -> bool:
        return exists(uri)

    def list(self, uri: str) -> list[str]:
        return list_names(uri)

    def read_text(self, uri: str) -> str:
        return read_text(uri)

    def read_json(self, uri: str) -> Any:
        return read_json(uri)

    def read_bytes(self, uri: str) -> bytes:
        return read_bytes(uri)

    def write_atomic(self, uri: str, data: bytes) -> None:
        write_atomic(uri, data)
