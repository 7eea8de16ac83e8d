"""One worker of a synchronous data-parallel training: the TensorFlow process of one barrier task.

    python -m sparkvision.training.worker <spec.json>   (started by a barrier task, see
                                                        sparkvision.training.distributed.WorkerProcess)

Every worker holds a replica of the model and trains on its own part of the data (a Parquet file
on the executor's local disk); ``tf.distribute.MultiWorkerMirroredStrategy`` all-reduces the
gradients of each step, so the replicas stay identical. The step is written out
(``strategy.run`` of a ``GradientTape`` step that ends in ``optimizer.apply_gradients``) because
Keras 3's ``model.fit`` fails under that strategy ("Attempt to convert a value (PerReplica...)",
keras-team/keras issue 20585): see docs/training.md. One worker alone runs the same step without
a strategy.

After each epoch the workers all-reduce their losses, counts and timings, average their batch
normalisation statistics (each worker's moving statistics follow its own batches), and act on
what the chief (worker 0) decided from them (``sparkvision.training.schedule.decide``: early
stopping, the weights to keep, the budgeted plan); the chief sends the epoch's checkpoint to the
driver (``sparkvision.training.channel``), which commits it to the run directory. At the end the
chief sends the model with the kept weights. The process writes what it did (steps, weights
digest, step timings, the module it ran from) to the spec's ``result_file``, then waits for its
standard input to close: the barrier task closes it once every worker wrote its result.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import os
import socket
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sparkvision.config.params import TrainParams
from sparkvision.platform.layout import CHECKPOINT_STATE, MODEL_FILE, RUN_BEST_WEIGHTS, RUN_EXPORT
from sparkvision.training import channel, tfdata
from sparkvision.training.schedule import WARMUP_STEPS, decide, steady_epoch_seconds

log = logging.getLogger("sparkvision.training.worker")

#: Steps of the first epoch timed in two halves (gradients; all-reduce and update) for the record.
TIMED_STEPS = 20
VALIDATION_BATCH = 512


def state_bytes(model, optimizer) -> bytes:
    """The model's weights and the optimizer's variables (its step counter too) as one .npz."""
    arrays = {f"model/{i}": np.asarray(v) for i, v in enumerate(model.weights)}
    arrays |= {f"optimizer/{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def restore_state(model, optimizer, data: bytes) -> None:
    with np.load(io.BytesIO(data)) as arrays:
        for prefix, variables in (("model", model.weights), ("optimizer", optimizer.variables)):
            names = [name for name in arrays.files if name.startswith(f"{prefix}/")]
            if len(names) != len(variables):
                raise ValueError(f"the checkpoint holds {len(names)} {prefix} variables, this one has {len(variables)}")
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}/{i}"])


def weights_digest(model) -> str:
    return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:16]


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


class Replica:
    """This worker's copy of the model under the strategy, with its compiled steps.

    ``train_step`` is the whole step; ``gradient_step`` and ``apply_step`` are its two halves
    (computing the gradients; all-reducing and applying them), run on a few steps to time them.
    Every function is traced without AutoGraph: their control flow is plain Python, and code run
    from the shipped zip has no source for AutoGraph to read.
    """

    def __init__(self, strategy, params: TrainParams, spec: dict[str, Any], horizon) -> None:
        import keras
        import tensorflow as tf

        from sparkvision.training.model import build_model, make_optimizer

        self.strategy = strategy
        with strategy.scope():
            self.model = build_model(
                params, tuple(spec["shape"]), spec["num_classes"], mean=spec["mean"], std=spec["std"]
            )
            self.optimizer = make_optimizer(params, horizon)
            self.optimizer.build(self.model.trainable_variables)
        model, optimizer = self.model, self.optimizer
        global_batch = spec["batch"] * spec["workers"]
        # Each worker's batch normalisation statistics follow its own batches: averaged every epoch.
        statistics = [v for v in model.non_trainable_weights if "float" in str(v.dtype)]
        self.statistics = statistics
        self.sums = sums = tf.Variable(tf.zeros(2, tf.float64), trainable=False)  # loss sum, correct images

        def local(value):
            return strategy.experimental_local_results(value)[0]

        def tally(y, probabilities):
            per_image = keras.losses.sparse_categorical_crossentropy(y, probabilities)
            correct = tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y)
            return per_image, tf.stack(
                [tf.reduce_sum(tf.cast(per_image, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.float64))]
            )

        def gradients(x, y):
            with tf.GradientTape() as tape:
                probabilities = model(x, training=True)
                per_image, counts = tally(y, probabilities)
                loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            return tape.gradient(loss, model.trainable_variables), counts

        def apply(grads):
            # Keras' optimizer all-reduces (sums) the gradients over the workers first.
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        def replica_step(x, y):
            grads, counts = gradients(x, y)
            apply(grads)
            return counts

        def apply_handed_over(grads):
            # Tensors handed into a replica function have no device, which an all-reduce needs:
            # the identity places them on the replica's (the same below).
            apply([tf.identity(g) for g in grads])

        @tf.function(autograph=False)
        def train_step(x, y):
            sums.assign_add(local(strategy.run(replica_step, args=(x, y))))

        @tf.function(autograph=False)
        def gradient_step(x, y):
            grads, counts = strategy.run(gradients, args=(x, y))
            sums.assign_add(local(counts))
            return grads

        @tf.function(autograph=False)
        def apply_step(grads):
            strategy.run(apply_handed_over, args=(grads,))

        @tf.function(autograph=False)
        def all_reduce(vector):
            def replica(v):
                return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(v))

            return local(strategy.run(replica, args=(vector,)))

        @tf.function(autograph=False)
        def average_statistics():
            def replica():
                values = [tf.identity(v.value) for v in statistics]
                return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, values)

            for variable, value in zip(statistics, strategy.run(replica), strict=True):
                variable.assign(local(value))

        @tf.function(autograph=False)
        def evaluate_batch(x, y):
            _, counts = tally(y, model(x, training=False))
            return tf.concat([counts, tf.cast(tf.reshape(tf.size(y), [1]), tf.float64)], axis=0)

        self.train_step, self._gradient_step, self._apply_step = train_step, gradient_step, apply_step
        self._all_reduce, self._average_statistics, self._evaluate_batch = (
            all_reduce,
            average_statistics,
            evaluate_batch,
        )

    def timed_step(self, x, y) -> tuple[float, float]:
        """One step in its two halves; the seconds of each."""
        started = time.monotonic()
        grads = self._gradient_step(x, y)
        self.sums.numpy()  # waits for the gradients
        computed = time.monotonic()
        self._apply_step(grads)
        self.optimizer.iterations.numpy()  # waits for the update
        return computed - started, time.monotonic() - computed

    def take_sums(self) -> np.ndarray:
        """This worker's loss sum and correct images since the last call (waits for the steps)."""
        values = self.sums.numpy()
        self.sums.assign(np.zeros(2))
        return values

    def all_reduce(self, vector) -> np.ndarray:
        """The sum of ``vector`` over every worker (a collective: every worker must call it)."""
        import tensorflow as tf

        return self._all_reduce(tf.constant(np.asarray(vector, dtype=np.float64))).numpy()

    def average_statistics(self) -> None:
        if self.statistics and self.strategy.num_replicas_in_sync > 1:
            self._average_statistics()

    def evaluate(self, path: str | None, shape: tuple[int, int, int]) -> np.ndarray:
        """Loss sum, correct images and images over a local Parquet file (no collective)."""
        totals = np.zeros(3)
        if path:
            chunks = tfdata.iter_chunks([Path(path)], shape, seed=None)
            for x, y in tfdata.iter_batches(chunks, VALIDATION_BATCH, 0, seed=0):
                totals += self._evaluate_batch(x, y).numpy()
        return totals


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train this worker's replica; return what it did (see the module docstring)."""
    threads = int(spec["threads"])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    import keras

    params = TrainParams(**spec["params"])
    rank, workers, steps, batch = spec["rank"], spec["workers"], spec["steps"], spec["batch"]
    chief, shape = rank == 0, tuple(spec["shape"])
    address, token = tuple(spec["coordinator"]), spec["token"]
    # TF_CONFIG (set by the barrier task) names every worker: the strategy connects them.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if workers > 1 else tf.distribute.get_strategy()
    resume, resume_files = channel.request(address, token, "hello", {"rank": rank, "task": spec["task_attempt"]})
    rows: list[dict] = resume["rows"]
    start, planned = len(rows), int(resume["planned"] or params.epochs)
    budget = {
        "max_epochs": params.epochs,
        "budget_seconds": params.max_train_minutes * 60,
        "patience": params.early_stopping_patience,
    }

    keras.utils.set_random_seed(params.seed)  # the same initial weights on every worker
    horizon = tf.Variable(planned * steps, dtype=tf.int64, trainable=False)  # set from the chief's plan
    replica = Replica(strategy, params, spec, horizon)
    if CHECKPOINT_STATE in resume_files:
        restore_state(replica.model, replica.optimizer, resume_files[CHECKPOINT_STATE])
    work = Path(spec["work_dir"])
    best_path = work / RUN_BEST_WEIGHTS
    if RUN_BEST_WEIGHTS in resume_files:
        best_path.write_bytes(resume_files[RUN_BEST_WEIGHTS])

    epoch_counter = {"n": start}

    def batches():
        seed = int(np.random.SeedSequence([params.seed, epoch_counter["n"], rank]).generate_state(1)[0] >> 1)
        yield from tfdata.fixed_batches(
            [Path(spec["train_file"])], shape, batch, steps, shuffle_buffer=params.shuffle_buffer, seed=seed
        )

    signature = (tf.TensorSpec((batch, *shape), tf.uint8), tf.TensorSpec((batch,), tf.int32))
    train_data = tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(4)

    log.info(
        "worker %d of %d: %d steps an epoch of %d images (global batch %d), %d threads, devices %s%s",
        rank,
        workers,
        steps,
        batch,
        batch * workers,
        threads,
        [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or "CPU",
        f"; resuming at epoch {start + 1}" if start else "",
    )
    timing: dict[str, list[float]] = {"compute_ms": [], "all_reduce_ms": []}
    rates: list[float] = []
    # A run killed after its last epoch (or its early stop) only exports again.
    stop = bool(rows) and decide(rows, planned=planned, epoch_seconds=float(rows[-1]["seconds"]), **budget).stop
    clock = None  # where the next epoch's time starts: the end of the previous one (its checkpoint included)
    epoch = start
    uploader, upload = concurrent.futures.ThreadPoolExecutor(max_workers=1), None
    while not stop and epoch < min(planned, params.epochs):
        epoch_counter["n"] = epoch
        first = clock is None  # the first epoch of this attempt: traces the step, times it in halves
        epoch_started = time.monotonic() if first else clock
        train_started, warmup_seconds = time.monotonic(), 0.0
        for step, (x, y) in enumerate(train_data):
            if first and WARMUP_STEPS < step <= WARMUP_STEPS + TIMED_STEPS:
                compute, apply = replica.timed_step(x, y)
                if step > WARMUP_STEPS + 1:  # the first timed step traces both halves
                    timing["compute_ms"].append(compute * 1000)
                    timing["all_reduce_ms"].append(apply * 1000)
            else:
                replica.train_step(x, y)
            if first and step + 1 == WARMUP_STEPS:
                replica.sums.numpy()
                warmup_seconds = time.monotonic() - train_started
        loss_sum, correct = replica.take_sums()
        train_seconds = time.monotonic() - train_started
        replica.average_statistics()
        images = steps * batch
        # Summed over the workers: [loss sum, correct, images] of training, the same of validation,
        # then each worker's training seconds and images/s in slots of its own (zeros elsewhere).
        own = np.zeros(2 * workers)
        own[rank], own[workers + rank] = train_seconds, images / train_seconds
        totals = replica.all_reduce(
            np.concatenate([[loss_sum, correct, images], replica.evaluate(spec["validation_file"], shape), own])
        )
        seconds = time.monotonic() - epoch_started
        rates.append(images / train_seconds)
        decision = np.zeros(3)
        if chief:
            row = epoch_row(epoch, totals, workers, seconds, float(replica.optimizer.learning_rate.numpy()))
            expected = (
                steady_epoch_seconds(seconds, warmup_seconds, train_seconds, steps, WARMUP_STEPS) if first else seconds
            )
            verdict = decide([*rows, row], planned=planned, epoch_seconds=expected, **budget)
            row["planned_epochs"] = verdict.planned
            rows.append(row)
            decision[:] = (verdict.stop, verdict.planned, verdict.keep_weights)
        # Every worker acts on the chief's decision (the others contribute zeros).
        decision = replica.all_reduce(decision)
        stop, planned, keep = bool(decision[0]), int(decision[1]), bool(decision[2])
        horizon.assign(planned * steps)
        clock = epoch_started + seconds
        if chief:
            files = {CHECKPOINT_STATE: state_bytes(replica.model, replica.optimizer)}
            if keep:
                replica.model.save_weights(best_path)
                files[RUN_BEST_WEIGHTS] = best_path.read_bytes()
            header = {
                "row": row,
                "planned": planned,
                "worker_images_per_s": [round(float(r), 1) for r in totals[6 + workers :]],
                "notes": verdict.notes,
                "timing": {key: round(float(np.median(v)), 2) for key, v in timing.items() if v and first},
            }
            # The driver commits it while the next epoch trains; one upload at a time, in order.
            if upload is not None:
                upload.result()
            upload = uploader.submit(channel.request, address, token, "epoch", header, files)
        epoch += 1
    if upload is not None:
        upload.result()
    uploader.shutdown()
    if chief:
        files = export_model(params, spec, replica.model, best_path, work)
        channel.request(address, token, "final", {"parameters": replica.model.count_params()}, files)
    return {
        "rank": rank,
        "workers": workers,
        "host": spec["host"],
        "module": sys.modules["sparkvision"].__file__,
        "steps_per_epoch": steps,
        "batch": batch,
        "train_images": spec["train_images"],
        "epochs_run": epoch - start,
        "weights_digest": weights_digest(replica.model),
        "images_per_s": round(float(np.mean(rates)), 1) if rates else None,
        "step_compute_ms": _median(timing["compute_ms"]),
        "step_all_reduce_ms": _median(timing["all_reduce_ms"]),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def epoch_row(epoch: int, totals: np.ndarray, workers: int, seconds: float, learning_rate: float) -> dict:
    """history.csv's row of an epoch from the all-reduced totals (their layout: ``train_worker``)."""
    images = totals[2]
    row = {
        "epoch": epoch,
        "loss": round(totals[0] / images, 6),
        "accuracy": round(totals[1] / images, 6),
        "seconds": round(seconds, 2),
        # All workers' images over the slowest worker's training time: the pace of the whole.
        "images_per_s": round(float(images / max(totals[6 : 6 + workers])), 1),
        "workers": workers,
        "learning_rate": learning_rate,
    }
    if totals[5]:
        row |= {"val_loss": round(totals[3] / totals[5], 6), "val_accuracy": round(totals[4] / totals[5], 6)}
    return row


def export_model(params: TrainParams, spec: dict[str, Any], model, best_path: Path, work: Path) -> dict[str, bytes]:
    """model.keras and the SavedModel (as a tar) of the weights to keep: the latest near-best epoch's.

    Built outside the strategy: a plain model, as evaluation and serving load it.
    """
    from sparkvision.training.model import build_model

    final = build_model(params, tuple(spec["shape"]), spec["num_classes"], mean=spec["mean"], std=spec["std"])
    final.set_weights(model.get_weights())
    if best_path.exists():
        final.load_weights(best_path)
    with tempfile.TemporaryDirectory(dir=work) as out:
        final.save(Path(out) / MODEL_FILE)
        final.export(str(Path(out) / RUN_EXPORT), format="tf_saved_model", verbose=False)
        return {MODEL_FILE: (Path(out) / MODEL_FILE).read_bytes(), RUN_EXPORT: _tar(Path(out) / RUN_EXPORT)}


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 2) if values else None


def main(argv: list[str]) -> int:
    """The worker's side of ``sparkvision.training.distributed.WorkerProcess``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # one line per collective otherwise
    spec = json.loads(Path(argv[0]).read_text())
    import tensorflow  # noqa: F401  (seconds: while the barrier task spools this worker's part)

    with socket.socket() as probe:
        probe.bind((spec["host"], 0))
        _write_atomic(Path(spec["port_file"]), str(probe.getsockname()[1]))
        line = sys.stdin.readline()
        if not line:
            return 1  # the barrier task gave up
    # The port is free again just now: the strategy's server binds it first thing.
    cluster = json.loads(line)
    os.environ["TF_CONFIG"] = cluster.pop("tf_config")
    result = train_worker({**spec, **cluster})
    _write_atomic(Path(spec["result_file"]), json.dumps(result))
    # Stay up until the barrier task says every worker is done: a peer still finishing its last
    # all-reduce reads from this process's collective server.
    sys.stdin.read()
    return 0


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # TensorFlow's collective runtime can take long to tear down; the result is written
