"""The training workers' line to the spark-submit driver: a small TCP server in the driver.

The workers run in Python processes on the executors, which have no Hadoop client of their own
(no libhdfs, no py4j gateway): what they must put on the storage root (the per-epoch checkpoint,
the history, the final model) they hand to the driver, whose ``HadoopFS`` commits it to the run
directory on ``file://`` or ``hdfs://`` alike. The same channel gives a retried or resumed
worker the last checkpoint. It is the pattern of pyspark's TorchDistributor, whose driver runs a
server its barrier tasks stream their logs to.

A message is a 4-byte length, a JSON header, then the bytes of the files the header lists; one
request and one reply per connection. Every request carries the run's token (a random secret
the driver hands the tasks with the job), so nothing else on the network can write to the run.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Files = dict[str, bytes]
Handler = Callable[[dict[str, Any], Files], tuple[dict[str, Any], Files]]
_LENGTH = struct.Struct(">I")


def send(sock: socket.socket, header: Mapping[str, Any], files: Mapping[str, bytes] | None = None) -> None:
    files = files or {}
    head = json.dumps({**header, "files": {name: len(data) for name, data in files.items()}}).encode()
    sock.sendall(_LENGTH.pack(len(head)) + head)
    for data in files.values():
        sock.sendall(data)


def receive(sock: socket.socket) -> tuple[dict[str, Any], Files]:
    (length,) = _LENGTH.unpack(_read(sock, _LENGTH.size))
    header = json.loads(_read(sock, length))
    files = {name: _read(sock, size) for name, size in header.pop("files", {}).items()}
    return header, files


def _read(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection closed {left} bytes before the end of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def request(
    address: tuple[str, int],
    token: str,
    kind: str,
    header: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    timeout: float = 600.0,
) -> tuple[dict[str, Any], Files]:
    """Send one request to the driver and return its reply; the driver's error is raised here."""
    with socket.create_connection(address, timeout=timeout) as sock:
        send(sock, {**(header or {}), "kind": kind, "token": token}, files)
        reply, reply_files = receive(sock)
    if "error" in reply:
        raise RuntimeError(f"the driver could not handle {kind!r}: {reply['error']}")
    return reply, reply_files


class Coordinator:
    """The driver's side: serves the workers' requests, one handler per kind, one at a time.

    Use as a context manager; ``address`` and ``token`` go to the tasks with the job.
    """

    def __init__(self, host: str, handlers: Mapping[str, Handler]) -> None:
        self.token = secrets.token_hex(16)
        self._handlers = dict(handlers)
        self._lock = threading.Lock()
        coordinator = self

        class _Request(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                coordinator._serve(self.request)

        self._server = socketserver.ThreadingTCPServer((host, 0), _Request, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, name="sparkvision-coordinator", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def __enter__(self) -> Coordinator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _serve(self, sock: socket.socket) -> None:
        try:
            header, files = receive(sock)
        except (ConnectionError, ValueError) as exc:
            log.warning("dropped a malformed request: %s", exc)
            return
        if not hmac.compare_digest(str(header.pop("token", "")), self.token):
            log.warning("refused a request without this run's token from %s", sock.getpeername())
            send(sock, {"error": "wrong token"})
            return
        kind = header.pop("kind", None)
        handler = self._handlers.get(kind)
        try:
            if handler is None:
                raise ValueError(f"unknown request {kind!r}")
            with self._lock:
                reply, reply_files = handler(header, files)
        except Exception as exc:
            log.exception("request %r failed", kind)
            send(sock, {"error": f"{type(exc).__name__}: {exc}"})
            return
        send(sock, reply, reply_files)
