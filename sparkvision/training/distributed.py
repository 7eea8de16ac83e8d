"""Synchronous data-parallel training on the executors: a Spark barrier stage of TensorFlow workers.

The driver (``train_on_executors``) only coordinates: it decides how many workers to start
(``resolve_workers``), has Spark read the tensor shards from the root (file:// or hdfs://; no
libhdfs or tensorflow-io anywhere) and split them into exactly one part per worker
(``worker_parts``), and runs one barrier stage of that many tasks, all started together. Each
task (``barrier_task``, in a Spark Python worker on an executor):

1. starts ``python -m sparkvision.training.worker`` (``WorkerProcess``), a process of its own, so
   that each attempt gets a fresh TensorFlow runtime (a Python worker reused by Spark keeps the
   collective runtime of an earlier cluster spec) and its memory is returned when it ends; it
   sees only the GPUs Spark gave the task (``CUDA_VISIBLE_DEVICES``, as pyspark's
   TorchDistributor sets it), or none on CPU-only executors;
2. meanwhile spools its part to the executor's local disk as Parquet (memory stays bounded by
   one Arrow batch, whatever the size of the data);
3. exchanges the worker's ``host:port`` (a free port the worker bound itself) and its part's size
   with the other tasks through ``BarrierTaskContext.allGather``, and hands the worker the
   TensorFlow cluster spec (``TF_CONFIG``) and the steps of an epoch, agreed before any training
   starts.

The workers send the epoch checkpoints and the final model to the driver
(``sparkvision.training.channel``), which commits them to the run directory. A task that fails
(an executor lost) fails the whole barrier stage; Spark runs it again (``spark.task.maxFailures``
attempts), and the new workers resume from the last committed checkpoint. With more workers
asked for than the cluster has task slots, training stops with an error: it never falls back to
fewer workers silently.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sparkvision.platform import schema
from sparkvision.training.channel import Coordinator, Handler
from sparkvision.training.schedule import steps_per_epoch

log = logging.getLogger(__name__)

#: The column telling a worker's rows apart: 0 train, 1 validation.
PART_SPLIT = "_split"
_WORKER_KEY = "_worker"
SPLIT_CODES = {"train": 0, "validation": 1}
#: Rows per row group of a worker's spooled part (the unit its reader shuffles).
SPOOL_ROW_GROUP = 4096
#: How long the driver waits for executors to offer the task slots training needs.
SLOTS_WAIT_SECONDS = 90.0
#: With ``workers=0`` on a cluster: the slots count once no executor joined for this long.
SLOTS_SETTLE_SECONDS = 3.0


# -- pure helpers (unit-tested) ------------------------------------------------------------------


def visible_devices(task_gpus: Sequence[str], inherited: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a task given the GPU addresses Spark assigned to it.

    As pyspark's TorchDistributor: addresses are indices; when the executor itself sees only
    some GPUs (``CUDA_VISIBLE_DEVICES`` already set) they index into that list. No GPU assigned:
    an empty value, so that TensorFlow's CUDA build does not grab a GPU another task owns (and
    nothing changes on a CPU-only machine).
    """
    if not task_gpus:
        return ""
    if any(not re.fullmatch(r"0|[1-9][0-9]*", address) for address in task_gpus):
        raise ValueError(f"GPU addresses {list(task_gpus)} are not CUDA device indices")
    if inherited:
        visible = inherited.split(",")
        return ",".join(visible[int(address)] for address in task_gpus)
    return ",".join(task_gpus)


def threads_per_worker(cpus: int, hosts: Sequence[str], host: str, task_cpus: int | None = None) -> int:
    """TensorFlow threads of one worker: the host's CPUs shared by the workers on that host.

    On a cluster (``task_cpus``: ``spark.task.cpus``) no more than the cores Spark gave the task,
    so that a worker does not take the cores of other tasks on its executor; on a ``local``
    master the machine is the executor and its workers share it all.
    """
    share = max(1, cpus // max(1, sum(1 for h in hosts if h == host)))
    return min(share, task_cpus) if task_cpus else share


def tf_config(addresses: Sequence[str], rank: int) -> str:
    """``TF_CONFIG`` of worker ``rank`` in a cluster of ``addresses`` (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": rank}})


# -- driver side --------------------------------------------------------------------------------


def task_slots(spark) -> int:
    """The tasks the cluster can run at once now (executors registered so far)."""
    jsc = spark.sparkContext._jsc.sc()
    return int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))


def resolve_workers(spark, requested: int, wait_seconds: float = SLOTS_WAIT_SECONDS) -> int:
    """How many workers to start: ``requested``, or with 0 every slot (1 on a ``local`` master).

    Waits up to ``wait_seconds`` for executors to register (a cluster's executors join after the
    driver starts); raises ValueError when the cluster cannot run ``requested`` tasks at once,
    rather than training with fewer.
    """
    local = spark.sparkContext.master.startswith("local")
    if requested == 0 and local:
        return 1  # one TensorFlow process already uses every core of the machine
    deadline = time.monotonic() + (0 if local else wait_seconds)  # a local master has its slots at once
    slots, changed = task_slots(spark), time.monotonic()
    while True:
        if requested and slots >= requested:
            return requested
        if not requested and slots and time.monotonic() - changed >= SLOTS_SETTLE_SECONDS:
            return slots
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
        if (now := task_slots(spark)) != slots:
            slots, changed = now, time.monotonic()
    if not requested and slots:
        return slots
    waited = "" if local else f" after {wait_seconds:.0f} s"
    raise ValueError(
        f"training asks for {requested or 'every'} worker(s) but the cluster offers {slots} task slot(s){waited}; "
        "a barrier stage needs a slot for each worker at once: add executors or cores, or ask for fewer workers"
    )


def _partition_keys(spark, workers: int) -> list[int]:
    """For each worker p, a long key that Spark's hash partitioning over ``workers`` sends to p."""
    from pyspark.sql import functions as F

    found: dict[int, int] = {}
    for row in spark.range(0, 64 * workers).select("id", F.expr(f"pmod(hash(id), {workers})").alias("p")).collect():
        found.setdefault(row.p, row.id)
    if len(found) < workers:
        raise RuntimeError(f"no partition key found for every one of {workers} workers")
    return [found[p] for p in range(workers)]


def worker_parts(spark, tensors_uri: str, workers: int, splits: Sequence[str] = ("train", "validation")):
    """The tensor splits as a DataFrame of exactly ``workers`` partitions, one per worker.

    Rows are dealt out round-robin in a global order (per-partition counts give each input
    partition its offset), so the parts of a split differ by at most one row; a part's rows are
    sorted by id, so that the same data gives every worker the same part in every attempt.
    Columns: ``PART_SPLIT`` (``SPLIT_CODES``), ``id``, ``label_index``, ``pixels``.
    """
    from pyspark.sql import functions as F

    keys = _partition_keys(spark, workers)
    key_of = F.array(*[F.lit(k).cast("long") for k in keys])
    tagged = []
    for split in splits:
        frame = spark.read.parquet(f"{tensors_uri}/{split}").select(
            F.lit(SPLIT_CODES[split]).cast("byte").alias(PART_SPLIT), schema.ID, schema.LABEL_INDEX, schema.PIXELS
        )
        sizes = dict(frame.groupBy(F.spark_partition_id().alias("p")).count().collect())
        offsets, total = [], 0
        for p in range(frame.rdd.getNumPartitions()):
            offsets.append(total)
            total += sizes.get(p, 0)
        position = F.element_at(F.array(*[F.lit(o).cast("long") for o in offsets]), F.spark_partition_id() + 1)
        position = position + F.monotonically_increasing_id().bitwiseAND(F.lit((1 << 33) - 1))  # row within partition
        tagged.append(frame.withColumn(_WORKER_KEY, F.element_at(key_of, F.pmod(position, workers).cast("int") + 1)))
    parts = functools.reduce(lambda a, b: a.unionByName(b), tagged)
    return parts.repartition(workers, _WORKER_KEY).sortWithinPartitions(PART_SPLIT, schema.ID).drop(_WORKER_KEY)


def train_on_executors(spark, parts, job: Mapping[str, Any], handlers: Mapping[str, Handler]) -> list[dict[str, Any]]:
    """Run the barrier stage of ``job["workers"]`` workers over ``parts``; return their results, by rank.

    ``parts``: a DataFrame of one partition per worker (``worker_parts``). ``handlers`` serve the
    workers' requests (``hello``, ``epoch``, ``final``) in the driver while the stage runs.
    """
    host = spark.conf.get("spark.driver.host")
    driver_gpus = []
    if spark.sparkContext.master.startswith("local") and "gpu" in spark.sparkContext.resources:
        driver_gpus = list(spark.sparkContext.resources["gpu"].addresses)
    with Coordinator(host, handlers) as coordinator:
        full = {
            **job,
            "coordinator": list(coordinator.address),
            "token": coordinator.token,
            "driver_gpus": driver_gpus,
            "local": spark.sparkContext.master.startswith("local"),
        }
        spark.sparkContext.setJobDescription(f"train: {job['workers']} worker(s) in a barrier stage")
        stage = parts.mapInArrow(functools.partial(barrier_task, full), "result string", barrier=True)
        # Spark runs a failed barrier stage again only when it is a shuffle-map stage (a failed
        # barrier result stage aborts the job): the shuffle makes the training stage one.
        rows = stage.repartition(1).collect()
    return sorted((json.loads(row.result) for row in rows), key=lambda result: result["rank"])


# -- task side ----------------------------------------------------------------------------------


def barrier_task(job: Mapping[str, Any], batches: Iterator) -> Iterator:
    """One barrier task: start the worker process, spool the part, agree the cluster and the steps."""
    import pyarrow as pa
    from pyspark import BarrierTaskContext

    context = BarrierTaskContext.get()
    rank, infos = context.partitionId(), context.getTaskInfos()
    if len(infos) != job["workers"]:
        raise RuntimeError(f"the barrier stage has {len(infos)} tasks, not the {job['workers']} workers asked for")
    local_dirs = [d for d in os.environ.get("SPARK_LOCAL_DIRS", "").split(",") if d]
    work = Path(tempfile.mkdtemp(prefix="sparkvision-worker-", dir=local_dirs[0] if local_dirs else None))
    host = infos[rank].address.rsplit(":", 1)[0]
    task_gpus = context.resources()["gpu"].addresses if "gpu" in context.resources() else []
    if not task_gpus and job["driver_gpus"]:
        task_gpus = [job["driver_gpus"][rank % len(job["driver_gpus"])]]
    files = {split: work / f"{split}.parquet" for split in SPLIT_CODES}
    spec = {
        **job,
        "rank": rank,
        "host": host,
        "task_attempt": context.taskAttemptId(),
        "train_file": str(files["train"]),
        "work_dir": str(work),
        "result_file": str(work / "result.json"),
        "port_file": str(work / "port"),
    }
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": visible_devices(task_gpus, os.environ.get("CUDA_VISIBLE_DEVICES")),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # the shipped package first, as here
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    (work / "spec.json").write_text(json.dumps(spec))
    try:
        # TensorFlow imports (seconds) while this task spools its part.
        with WorkerProcess(work / "spec.json", env, f"worker {rank}") as worker:
            counts = _spool(batches, files)
            # The worker bound a free port itself and holds it until TensorFlow takes it over.
            address = f"{host}:{worker.port(Path(spec['port_file']))}"
            peers = [json.loads(m) for m in context.allGather(json.dumps({"address": address, **counts}))]
            hosts = [peer["address"].rsplit(":", 1)[0] for peer in peers]
            # Every task computes the same from the same gathered sizes: the same steps, or the same error.
            cluster = {
                "tf_config": tf_config([peer["address"] for peer in peers], rank),
                "steps": steps_per_epoch([peer["train"] for peer in peers], job["batch"]),
                "train_images": counts["train"],
                "validation_file": str(files["validation"]) if counts["validation"] else None,
                "threads": threads_per_worker(
                    len(os.sched_getaffinity(0)), hosts, host, None if job["local"] else context.cpus()
                ),
            }
            worker.send(cluster)
            result = worker.result(Path(spec["result_file"]), context.barrier)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    yield pa.RecordBatch.from_pydict({"result": [result]})


def _spool(batches: Iterator, files: Mapping[str, Path]) -> dict[str, int]:
    """Write the task's rows to ``files[split]`` (Parquet), one Arrow batch at a time; the counts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts = dict.fromkeys(SPLIT_CODES, 0)
    writers: dict[str, Any] = {}
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            for split, code in SPLIT_CODES.items():
                rows = table.filter(pc.equal(table[PART_SPLIT], code)).select([schema.LABEL_INDEX, schema.PIXELS])
                if not rows.num_rows:
                    continue
                if split not in writers:
                    writers[split] = pq.ParquetWriter(files[split], rows.schema)
                writers[split].write_table(rows, row_group_size=SPOOL_ROW_GROUP)
                counts[split] += rows.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return counts


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the Python worker dies (Spark killed the task)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class WorkerProcess:
    """``python -m sparkvision.training.worker`` as the barrier task talks to it.

    The conversation (``sparkvision.training.worker.main`` is the other side): the worker imports
    TensorFlow, binds a free port on the task's host and writes it to the spec's ``port_file``
    (``port``); it reads one line, the cluster (``send``), releases the port and lets TensorFlow's
    server bind it at once (no window for another process to take it, unlike a port probed here
    and handed over seconds later); it trains, writes its result and waits for its stdin to close
    (``result``), which happens once ``barrier()`` saw every task's worker there, so that no worker
    exits while a peer still reads its last all-reduce from it. Its log goes to the task's stderr;
    a worker that fails raises with its log's tail; leaving the block kills a worker still running.
    """

    def __init__(self, spec_path: Path, env: dict[str, str], name: str) -> None:
        self.name = name
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sparkvision.training.worker", str(spec_path)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.reader = threading.Thread(target=self._forward, daemon=True)
        self.reader.start()

    def _forward(self) -> None:
        for line in self.proc.stdout:
            self.tail.append(line)
            sys.stderr.write(line)
        sys.stderr.flush()

    def _wait_for(self, path: Path) -> None:
        while not path.exists():
            if self.proc.poll() is not None:
                self._fail()
            time.sleep(0.1)

    def _fail(self) -> None:
        code = self.proc.wait()
        self.reader.join(timeout=5)
        raise RuntimeError(f"training {self.name} exited with status {code}:\n{''.join(self.tail)}")

    def port(self, port_file: Path) -> int:
        self._wait_for(port_file)
        return int(port_file.read_text())

    def send(self, message: Mapping[str, Any]) -> None:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def result(self, result_file: Path, barrier) -> str:
        self._wait_for(result_file)
        barrier()
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            self._fail()
        self.reader.join()
        return result_file.read_text()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
