"""A real HDFS (a NameNode and one or more DataNodes, Hadoop 3.5.0 jars) on loopback.

The jars come from Maven Central (``hadoop/pom.xml``, fetched by ``scripts/setup.sh`` into
``.cache/hadoop/lib``). ``make hdfs-start`` / ``make hdfs-stop`` and the pytest session fixtures
use this same code; the fixtures pick free ports and a temporary data dir::

    python -m devtools.hdfs_cluster start --dir .cache/hdfs   # RPC 8020, WebHDFS 9870, 3 DataNodes, 2 replicas
    python -m devtools.hdfs_cluster start --datanodes 1 --replication 1   # a light single-node one
    python -m devtools.hdfs_cluster status --dir .cache/hdfs
    python -m devtools.hdfs_cluster stop --dir .cache/hdfs

Every daemon is a JVM of its own (its own configuration folder, data folder and ports), started
in its own process group and stopped by PID. ``client_conf_dir`` holds the client side of the
configuration (``fs.defaultFS``, ``dfs.replication``): a Hadoop client, Spark's included, writes
with the replication its own configuration asks for, so ``HADOOP_CONF_DIR`` must point there.

Short-circuit local reads are on (``short_circuit``): every client of this cluster runs on its
machine, so a client reads a block's file from the DataNode's disk instead of streaming it through
the DataNode. Without ``libhadoop`` (the Maven jars have none) that is Hadoop's legacy
short-circuit reader: the DataNodes name the local user in ``dfs.block.local-path-access.user``
and the client configuration asks for it (``CLIENT_SHORT_CIRCUIT``). Small files gain most (an
HDFS ingest reads 70,000 of them: docs/ingest.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.daemons import STATE_FILE, LocalDaemons, free_port, stop_or_status
from sparkvision.platform.settings import PROJECT_DIR

log = logging.getLogger(__name__)

HADOOP_LIB = Path(os.environ.get("SPARKVISION_HADOOP_LIB", PROJECT_DIR / ".cache" / "hadoop" / "lib"))
NAMENODE = "org.apache.hadoop.hdfs.server.namenode.NameNode"
#: What a client sets to read a local DataNode's blocks from its disk (the legacy short-circuit
#: reader: no native library needed). A DataNode that does not allow the user is read as usual.
CLIENT_SHORT_CIRCUIT = {
    "dfs.client.read.shortcircuit": "true",
    "dfs.client.use.legacy.blockreader.local": "true",
}
DATANODE = "org.apache.hadoop.hdfs.server.datanode.DataNode"


@dataclass
class HdfsCluster(LocalDaemons):
    """A started (or startable) HDFS whose files live under ``base_dir``."""

    what = "HDFS"

    base_dir: str
    rpc_port: int = 8020
    http_port: int = 9870
    datanodes: int = 1
    replication: int = 1
    #: [data transfer, HTTP, IPC] ports of each DataNode (the standard ones for the first, free
    #: loopback ports for the others when not given).
    datanode_ports: list[list[int]] = field(default_factory=list)
    host: str = "127.0.0.1"
    #: Local clients read blocks from the DataNodes' disks (see the module docstring).
    short_circuit: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.replication <= self.datanodes:
            raise ValueError(f"replication {self.replication} needs 1 to {self.datanodes} DataNodes")
        standard = [9866, 9864, 9867]
        while len(self.datanode_ports) < self.datanodes:
            self.datanode_ports.append(standard if not self.datanode_ports else [free_port() for _ in range(3)])

    @property
    def uri(self) -> str:
        """The filesystem URI, e.g. ``hdfs://127.0.0.1:8020``."""
        return f"hdfs://{self.host}:{self.rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/webhdfs/v1"

    @property
    def airflow_connection(self) -> str:
        """The ``AIRFLOW_CONN_WEBHDFS_DEFAULT`` value that points Airflow's WebHDFS hook here."""
        return json.dumps(
            {"conn_type": "webhdfs", "host": self.host, "port": self.http_port, "login": getpass.getuser()}
        )

    @property
    def daemons(self) -> dict[str, str]:
        """Daemon name -> main class: ``namenode``, then ``datanode-0`` ... ``datanode-<n-1>``."""
        return {"namenode": NAMENODE, **{f"datanode-{i}": DATANODE for i in range(self.datanodes)}}

    # -- files -------------------------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self._base / "conf"

    @property
    def client_conf_dir(self) -> Path:
        """``HADOOP_CONF_DIR`` for clients of this cluster (Spark jobs): its URI and replication."""
        return self._base / "client-conf"

    def _daemon_conf_dir(self, daemon: str) -> Path:
        return self.conf_dir / daemon

    def write_config(self) -> None:
        """Write core-site.xml, hdfs-site.xml and log4j.properties for every daemon and the clients."""
        base = self._base.resolve()
        core = {
            "fs.defaultFS": self.uri,
            "hadoop.tmp.dir": str(base / "tmp"),
        }
        hdfs = {
            "dfs.namenode.name.dir": (base / "name").as_uri(),
            "dfs.replication": str(self.replication),
            "dfs.permissions.enabled": "false",
            "dfs.webhdfs.enabled": "true",
            "dfs.namenode.rpc-address": f"{self.host}:{self.rpc_port}",
            "dfs.namenode.http-address": f"{self.host}:{self.http_port}",
            "dfs.namenode.secondary.http-address": f"{self.host}:0",
            "dfs.datanode.hostname": self.host,
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.namenode.safemode.extension": "0",
            "dfs.namenode.safemode.min.datanodes": "1",
            "dfs.heartbeat.interval": "1",
            # A DataNode silent for 2 rechecks + 10 heartbeats (20 s) is dead: its blocks are
            # copied again from the other replicas and new blocks avoid it.
            "dfs.namenode.heartbeat.recheck-interval": "5000",
        }
        for i in range(self.datanodes):
            data, http, ipc = self.datanode_ports[i]
            own = {
                "dfs.datanode.data.dir": self.data_dir(i).resolve().as_uri(),
                "dfs.datanode.address": f"{self.host}:{data}",
                "dfs.datanode.http.address": f"{self.host}:{http}",
                "dfs.datanode.ipc.address": f"{self.host}:{ipc}",
            }
            if self.short_circuit:
                own["dfs.block.local-path-access.user"] = getpass.getuser()
            self._write_conf(self._daemon_conf_dir(f"datanode-{i}"), core, {**hdfs, **own})
        self._write_conf(self._daemon_conf_dir("namenode"), core, hdfs)
        client = {"dfs.replication": str(self.replication), **(CLIENT_SHORT_CIRCUIT if self.short_circuit else {})}
        self._write_conf(self.client_conf_dir, {"fs.defaultFS": self.uri}, client, daemon=False)

    def _write_conf(self, folder: Path, core: dict[str, str], hdfs: dict[str, str], daemon: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "core-site.xml").write_text(_site_xml(core))
        (folder / "hdfs-site.xml").write_text(_site_xml(hdfs))
        if not daemon:
            return
        (folder / "log4j.properties").write_text(
            "log4j.rootLogger=INFO,console\n"
            "log4j.appender.console=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n"
        )
        # JMX answers from a cache refreshed every metrics period (10 s by default): 1 s, so that
        # tests read counters soon after the work (datanode_activity)
        (folder / "hadoop-metrics2.properties").write_text("*.period=1\n")
        # The Maven jars lack the web UI resources; the HTTP server (and WebHDFS) only needs
        # the webapps folders to exist on the classpath.
        for app in ("hdfs", "datanode", "static"):
            (folder / "webapps" / app).mkdir(parents=True, exist_ok=True)
            (folder / "webapps" / app / "index.html").write_text("sparkvision HDFS\n")

    def command(self, daemon: str, *args: str) -> list[str]:
        """The daemon's JVM: the Hadoop jars, its own configuration folder first on the classpath."""
        if not HADOOP_LIB.is_dir() or not any(HADOOP_LIB.glob("hadoop-hdfs-*.jar")):
            raise FileNotFoundError(f"Hadoop jars not found in {HADOOP_LIB}; run `make setup` first")
        java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
        return [
            java,
            "-Xmx512m",
            "-XX:+UseSerialGC",
            f"-Dhadoop.log.dir={self._base.resolve() / 'logs'}",
            "-Dhadoop.root.logger=INFO,console",
            "-cp",
            f"{self._daemon_conf_dir(daemon).resolve()}:{HADOOP_LIB.resolve()}/*",
            self.daemons[daemon],
            *args,
        ]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> HdfsCluster:
        """Format (first time only), start every daemon and wait until WebHDFS round-trips a file
        and every DataNode has registered."""
        if self.running():
            log.info("HDFS already running at %s", self.uri)
            self.wait_ready(timeout)
            return self
        self.write_config()
        self.save()
        if not (self._base / "name" / "current" / "VERSION").exists():
            log.info("formatting the NameNode in %s", self._base / "name")
            with open(self.log_file("format"), "w") as out:
                subprocess.run(
                    self.command("namenode", "-format", "-nonInteractive", "-force"),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
        for daemon in self.daemons:
            self.start_daemon(daemon)
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        log.info("HDFS up: %s (WebHDFS %s, %d DataNodes)", self.uri, self.webhdfs_url, self.datanodes)
        return self

    def live_datanodes(self) -> int:
        """How many DataNodes the NameNode counts as live (its JMX)."""
        url = f"http://{self.host}:{self.http_port}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
        with urllib.request.urlopen(url, timeout=10) as response:
            beans = json.load(response)["beans"]
        return int(beans[0]["NumLiveDataNodes"]) if beans else 0

    def datanode_activity(self, index: int = 0) -> dict[str, int]:
        """Counters of DataNode ``index`` since it started (its JMX ``DataNodeActivity`` bean), such as
        ``BlocksGetLocalPathInfo`` (short-circuit path lookups) and ``BlocksRead``; up to one metrics
        period (1 s) old."""
        http = self.datanode_ports[index][1]
        url = f"http://{self.host}:{http}/jmx?qry=Hadoop:service=DataNode,name=DataNodeActivity-*"
        with urllib.request.urlopen(url, timeout=10) as response:
            beans = json.load(response)["beans"]
        return {key: value for key, value in beans[0].items() if isinstance(value, int)}

    def data_dir(self, index: int = 0) -> Path:
        """Where DataNode ``index`` keeps its block files."""
        return self._base / f"data-{index}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every DataNode registered and a probe file written through WebHDFS reads
        back, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        payload = f"sparkvision probe {time.time()}".encode()
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.live_datanodes() >= self.datanodes:
                    self.webhdfs_put("/tmp/.sparkvision-probe", payload)
                    if self.webhdfs_get("/tmp/.sparkvision-probe") == payload:
                        return
            except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
                last_error = exc
            time.sleep(0.5)
        raise TimeoutError(f"HDFS at {self.uri} not ready after {timeout:.0f}s: {last_error}")

    # -- WebHDFS (probe and small test helpers) -----------------------------------------------
    def _url(self, path: str, op: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"op": op, "user.name": getpass.getuser(), **params}.items())
        return f"{self.webhdfs_url}{path}?{query}"

    def webhdfs_put(self, path: str, data: bytes) -> None:
        request = urllib.request.Request(self._url(path, "CREATE", overwrite="true"), method="PUT")
        try:
            urllib.request.urlopen(request, timeout=10)
            raise OSError("WebHDFS CREATE did not redirect to a DataNode")
        except urllib.error.HTTPError as redirect:
            if redirect.code != 307:
                raise
            location = redirect.headers["Location"]
        with urllib.request.urlopen(urllib.request.Request(location, data=data, method="PUT"), timeout=10):
            pass

    def webhdfs_get(self, path: str) -> bytes:
        with urllib.request.urlopen(self._url(path, "OPEN"), timeout=10) as response:
            return response.read()

    def webhdfs_status(self, path: str) -> dict | None:
        """The FileStatus of ``path``, or None when it does not exist."""
        try:
            with urllib.request.urlopen(self._url(path, "GETFILESTATUS"), timeout=10) as response:
                return json.load(response)["FileStatus"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def with_free_ports(base_dir: str, datanodes: int = 1, replication: int = 1, short_circuit: bool = True) -> HdfsCluster:
    """A cluster description on free loopback ports (for tests and side-by-side clusters)."""
    return HdfsCluster(
        base_dir,
        rpc_port=free_port(),
        http_port=free_port(),
        datanodes=datanodes,
        replication=replication,
        datanode_ports=[[free_port() for _ in range(3)] for _ in range(datanodes)],
        short_circuit=short_circuit,
    )


def _site_xml(props: dict[str, str]) -> str:
    body = "".join(f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=str(PROJECT_DIR / ".cache" / "hdfs"), help="data, config, logs, PIDs")
    parser.add_argument("--rpc-port", type=int, default=8020)
    parser.add_argument("--http-port", type=int, default=9870)
    parser.add_argument("--datanodes", type=int, default=3, help="DataNodes, each a JVM of its own (default 3)")
    parser.add_argument(
        "--replication", type=int, default=None, help="replicas of a block (default: 2, at most --datanodes)"
    )
    parser.add_argument(
        "--no-short-circuit", action="store_true", help="clients read every block through a DataNode (no local reads)"
    )
    parser.add_argument("--free-ports", action="store_true", help="pick free loopback ports for every daemon")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "start":
        replication = args.replication or min(2, args.datanodes)
        cluster = HdfsCluster.load(args.dir) if (Path(args.dir) / STATE_FILE).exists() else None
        if cluster is None or not cluster.running():
            cluster = (
                with_free_ports(args.dir, args.datanodes, replication, short_circuit=not args.no_short_circuit)
                if args.free_ports
                else HdfsCluster(
                    args.dir,
                    args.rpc_port,
                    args.http_port,
                    datanodes=args.datanodes,
                    replication=replication,
                    short_circuit=not args.no_short_circuit,
                )
            )
        cluster.start()
        print(
            f"HDFS running: {cluster.uri}  WebHDFS: http://{cluster.host}:{cluster.http_port}  "
            f"{cluster.datanodes} DataNode(s), replication {cluster.replication}"
        )
        print(f"export SPARKVISION_ROOT={cluster.uri}/sparkvision")
        print(f"export AIRFLOW_CONN_WEBHDFS_DEFAULT='{cluster.airflow_connection}'")
        print(f"export HADOOP_CONF_DIR={cluster.client_conf_dir.resolve()}")
        return 0
    return stop_or_status(HdfsCluster, args.command, args.dir)


if __name__ == "__main__":
    sys.exit(main())
