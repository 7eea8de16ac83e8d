"""Training-input benchmark: streamed Parquet vs in-memory numpy, and memory with 10x the data.

    python -m bench training_input          (make bench BENCH=training_input)

1. Steady-state training speed of the same model and batch size fed two ways, in one process,
   alternating epochs so that both sides see the same machine: ``model.fit`` on in-memory numpy
   arrays (shuffled by Keras) against ``tfdata.make_dataset`` streaming the Parquet tensor shards
   (shuffled through the numpy pool). A warm-up epoch per side is not counted. Target >= 0.95x.
2. Peak RSS of a training process (a subprocess, sampled with its children) streaming one epoch
   of the train split (1x) and of the same shards repeated 10 times (10x): it must stay flat.

The shards are written with pyarrow from Fashion-MNIST in the layout tensorize produces
(TENSOR_SCHEMA, 4,096-row row groups), so the benchmark needs neither Spark nor a prior run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import peak_rss_mb, record

NAME = "training_input"
WORK = Path(os.environ.get("SPARKVISION_BENCH_DIR", "/tmp/sparkvision-bench")) / NAME
SHAPE = (28, 28, 1)
ARCHITECTURE = "reference"  # the fastest model asks the most of its input
BATCH = 128
ROUNDS = 3
COPIES = 10


def write_shards(folder: Path, validation_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The train split as Parquet tensor shards under ``folder``; returns the same rows in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from devtools import fashion_mnist
    from sparkvision.platform import schema
    from sparkvision.training.tensorize import ROWS_PER_ROW_GROUP

    x, y = fashion_mnist.load_split("train")
    keep = np.random.default_rng(0).random(len(y)) >= validation_share  # about the tensorize split's size
    x, y = np.ascontiguousarray(x[keep][..., None]), y[keep].astype(np.int32)
    if not (folder / "part-00000.parquet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        flat = x.reshape(len(x), -1)
        table = pa.table(
            {
                schema.ID: [str(i) for i in range(len(y))],
                schema.LABEL_INDEX: pa.array(y, pa.int32()),
                schema.PIXELS: pa.array([row.tobytes() for row in flat], pa.binary()),
            },
            schema=schema.TENSOR_SCHEMA,
        )
        tmp = folder / ".part-00000.parquet.tmp"
        pq.write_table(table, tmp, row_group_size=ROWS_PER_ROW_GROUP)
        tmp.rename(folder / "part-00000.parquet")
    return x, y


def repeated(folder: Path, source: Path, copies: int) -> Path:
    """``copies`` hard links of the shard: the same bytes, ``copies`` times the rows to stream."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(copies):
        target = folder / f"part-{n:05d}.parquet"
        if not target.exists():
            os.link(source / "part-00000.parquet", target)
    return folder


def compiled(model):
    """The model compiled for ``fit`` (the input pipeline is what this benchmark compares)."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def speed(shards: Path, x: np.ndarray, y: np.ndarray) -> dict:
    """Images/s per epoch of both inputs, alternating, after one warm-up epoch each."""
    import keras

    from sparkvision.config.params import TrainParams
    from sparkvision.training import tfdata
    from sparkvision.training.model import build_model

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    keras.utils.set_random_seed(0)
    streamed = tfdata.make_dataset(shards, SHAPE, BATCH, shuffle_buffer=20_000, seed=0)
    models = {
        side: compiled(build_model(TrainParams(architecture=ARCHITECTURE), SHAPE, 10))
        for side in ("memory", "streamed")
    }
    fits = {
        "memory": lambda timer: models["memory"].fit(
            x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0, callbacks=[timer]
        ),
        "streamed": lambda timer: models["streamed"].fit(streamed, epochs=1, verbose=0, callbacks=[timer]),
    }
    rates: dict[str, list[float]] = {"memory": [], "streamed": []}
    for round_ in range(ROUNDS + 1):
        for side in ("memory", "streamed") if round_ % 2 == 0 else ("streamed", "memory"):
            timer = Timer()
            fits[side](timer)
            if round_:  # round 0 is the warm-up (graph tracing, first reads)
                rates[side].append(len(y) / timer.seconds)
            print(f"[bench] {side} epoch {round_}: {len(y) / timer.seconds:,.0f} images/s", flush=True)
    return rates


def child(shards: str) -> None:
    """The training process whose memory is measured: one streamed epoch over ``shards``."""
    import keras

    from sparkvision.config.params import TrainParams
    from sparkvision.training import tfdata
    from sparkvision.training.model import build_model

    keras.utils.set_random_seed(0)
    dataset = tfdata.make_dataset(Path(shards), SHAPE, BATCH, shuffle_buffer=20_000, seed=0)
    started = time.perf_counter()
    compiled(build_model(TrainParams(architecture=ARCHITECTURE), SHAPE, 10)).fit(dataset, epochs=1, verbose=0)
    rows = tfdata.count_rows(tfdata.shard_files(shards))
    print(f"{rows} images in {time.perf_counter() - started:.1f}s", flush=True)


def peak_memory(shards: Path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bench.training_input", "--child", str(shards)], env=env)
    sampler = peak_rss_mb(process.pid, interval=0.1)
    if process.wait() != 0:
        raise RuntimeError(f"the training subprocess over {shards} failed")
    return {**sampler.stop(), "seconds": round(time.perf_counter() - started, 1)}


def run(argv: list[str]) -> dict:
    one = WORK / "train-1x"
    x, y = write_shards(one)
    ten = repeated(WORK / f"train-{COPIES}x", one, COPIES)
    rates = speed(one, x, y)
    memory, streamed = statistics.median(rates["memory"]), statistics.median(rates["streamed"])
    ratio = streamed / memory
    mem_1x, mem_10x = peak_memory(one), peak_memory(ten)
    growth = mem_10x["peak_total_mb"] / mem_1x["peak_total_mb"]
    rows = [
        {
            "figure": f"in-memory numpy model.fit ({ARCHITECTURE} CNN, batch {BATCH})",
            "value": f"{memory:,.0f} images/s",
        },
        {
            "figure": "streamed Parquet -> tf.data (numpy shuffle pool 20,000)",
            "value": f"{streamed:,.0f} images/s",
            "ratio": f"{ratio:.2f}x in-memory; target >= 0.95x",
            "target_met": ratio >= 0.95,
        },
        {"figure": f"peak RSS of training, 1x data ({len(y):,} images)", "value": f"{mem_1x['peak_total_mb']:,.0f} MB"},
        {
            "figure": f"peak RSS of training, {COPIES}x data ({COPIES * len(y):,} images)",
            "value": f"{mem_10x['peak_total_mb']:,.0f} MB",
            "ratio": f"{growth:.2f}x the 1x peak; target: flat (<= 1.1x)",
            "target_met": growth <= 1.1,
        },
    ]
    notes = (
        f"Steady state: median of {ROUNDS} epochs per side after a warm-up epoch, the two sides alternating "
        f"in one process. Per-epoch images/s: memory {[round(r) for r in rates['memory']]}, "
        f"streamed {[round(r) for r in rates['streamed']]}. Memory: one epoch in a subprocess, RSS of it and "
        f"its children sampled every 0.1 s ({mem_1x['seconds']} s for 1x, {mem_10x['seconds']} s for {COPIES}x)."
    )
    return record(
        NAME,
        rows,
        "python -m bench training_input",
        details={"rates": rates, "memory_1x": mem_1x, "memory_10x": mem_10x, "images": len(y)},
        notes=notes,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
    else:
        run(sys.argv[1:])
