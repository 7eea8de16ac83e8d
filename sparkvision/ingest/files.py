"""Finding and reading the files of a drop: pure functions, the bodies of the listing tasks.

Names starting with ``.`` or ``_`` (such as ``_SUCCESS``) and ``*._COPYING_`` are not part of a
drop (Spark's listing rule). A label is the drop's first-level folder; a file's source split
(``train-00042.png``) is read from its name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlparse

import pyarrow as pa

from sparkvision.ingest import images
from sparkvision.platform import schema
from sparkvision.platform.layout import is_safe_name

#: Source-given split, read from the file name: ``train-00042.png`` / ``test-7.jpg``.
SOURCE_SPLIT_PREFIXES = ("train", "test")
#: file:// roots: paths per Arrow batch emitted by the listing tasks.
LISTING_BATCH = 10_000


def uri_to_path(uri: str) -> str:
    """The path of a Hadoop path string (``file:/a/b``, ``file:///a/b``, ``hdfs://nn:8020/a/b``).

    Hadoop prints paths unencoded, so a name may hold ``#``, ``%`` or spaces: no URL parsing.
    """
    if "://" in uri:
        rest = uri.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    if uri.startswith("file:"):
        return uri[len("file:") :]
    return uri


def drop_dir(raw_uri: str) -> str:
    """The filesystem path of a drop's root URI (as given on the command line)."""
    return unquote(urlparse(raw_uri).path).rstrip("/")


def relative_path(file_uri: str, drop_path: str) -> str:
    """The path of a listed file inside the drop (``<label>/.../<file>``)."""
    path = uri_to_path(file_uri)
    prefix = drop_path.rstrip("/") + "/"
    if not path.startswith(prefix):
        raise ValueError(f"{file_uri} is not under {drop_path}")
    return path[len(prefix) :]


def label_of(rel_path: str) -> str:
    """The label folder of a file, or raise Rejected when there is none or it is unsafe."""
    parts = rel_path.split("/")
    if len(parts) < 2:
        raise images.Rejected(images.NO_LABEL, "the file is not inside a <label>/ folder")
    if not is_safe_name(parts[0]):
        raise images.Rejected(images.BAD_LABEL, f"label folder {parts[0]!r} breaks the safe naming rule")
    return parts[0]


def source_split(rel_path: str) -> str | None:
    name = rel_path.rsplit("/", 1)[-1]
    prefix = name.split("-", 1)[0]
    return prefix if prefix in SOURCE_SPLIT_PREFIXES and "-" in name else None


def read_file(
    path: str, max_file_bytes: int, dir_fd: int | None = None
) -> tuple[bytes | None, int | None, tuple[str, str] | None]:
    """A local file's (bytes, size, None), or (None, size or None, reason) when it cannot be used.

    Four system calls per file (open, fstat, read, close): the size comes from the open file, so
    the listing needs no stat of its own and a file over ``max_file_bytes`` is never read. A pipe,
    a device or a folder reached through a link is refused (opened non-blocking: no hang).
    ``dir_fd``: an open folder that a relative ``path`` starts from (the kernel walks less).
    """
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return None, None, _read_error(exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, None, (images.UNREADABLE, "not a regular file (a folder behind a link, a pipe or a device)")
        if info.st_size > max_file_bytes:
            return None, info.st_size, (images.FILE_TOO_LARGE, f"{info.st_size} bytes is over {max_file_bytes=}")
        parts, remaining = [], info.st_size
        while remaining > 0:  # one read for all but huge files; a file cut short ends early
            part = os.read(fd, remaining)
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data, len(data), None
    except OSError as exc:
        return None, None, _read_error(exc)
    finally:
        os.close(fd)


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _read_error(exc: OSError) -> tuple[str, str]:
    return images.UNREADABLE, f"listed, but could not be read: {type(exc).__name__}: {exc.strerror or exc}"


def skipped_name(name: str) -> bool:
    """Names that are not part of a drop (Spark's listing skips them too): ``.x``, ``_x``, ``x._COPYING_``."""
    return name.startswith((".", "_")) or name.endswith("._COPYING_")


def walk_files(drop_path: str, entry: str) -> Iterator[str]:
    """The path (relative to the drop) of ``entry`` if it is a file, else of every file below it.

    No stat per file: folders are told from files by the directory entry's type, without
    following links to folders (no cycles); a link is listed as a file, and the reader refuses
    it when it leads nowhere or to a folder.
    """
    top = os.path.join(drop_path, entry)
    try:
        is_dir = os.path.isdir(top) and not os.path.islink(top)
    except OSError:
        is_dir = False
    if not is_dir:
        yield entry
        return
    stack = [(top, entry)]
    while stack:
        folder, rel = stack.pop()
        prefix = f"{rel}/"
        with os.scandir(folder) as entries:
            for item in entries:
                name = item.name
                if skipped_name(name):
                    continue
                if item.is_dir(follow_symlinks=False):
                    stack.append((item.path, prefix + name))
                else:
                    yield prefix + name


def _listable(path: str) -> str:
    """A path as an Arrow string: names that are not UTF-8 keep a readable, replaced spelling."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", errors="replace")
    return path


def path_array(rel_paths: list[str]) -> pa.Array:
    """Paths as an Arrow string array (a name that is not UTF-8 gets a readable, replaced spelling)."""
    try:
        return pa.array(rel_paths, pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return pa.array([_listable(path) for path in rel_paths], pa.string())


def _path_batch(rel_paths: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([path_array(rel_paths)], names=[schema.PATH])


def walk_batches(batches: Iterable[pa.RecordBatch], drop_path: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: top-level entries of a drop (``entry``) -> ``path`` of every file in them.

    Batches of at most ``LISTING_BATCH`` files: a folder of millions of files streams through.
    """
    for batch in batches:
        for entry in batch.column("entry").to_pylist():
            rel_paths: list[str] = []
            for rel_path in walk_files(drop_path, entry):
                rel_paths.append(rel_path)
                if len(rel_paths) >= LISTING_BATCH:
                    yield _path_batch(rel_paths)
                    rel_paths = []
            if rel_paths:
                yield _path_batch(rel_paths)


def listing_paths(batches: Iterable[pa.RecordBatch], drop_path: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: percent-encoded listing URIs (``value``) -> (uri, relative path)."""
    for batch in batches:
        uris = batch.column("value").to_pylist()
        rel = [relative_path(unquote(uri), drop_path) for uri in uris]
        yield pa.RecordBatch.from_pydict({"uri": uris, schema.PATH: rel})
