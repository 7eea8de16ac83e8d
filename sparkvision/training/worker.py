"""One worker of a synchronous data-parallel training: the TensorFlow process of one barrier task.

    python -m sparkvision.training.worker <spec.json>   (started by sparkvision.training.distributed)

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


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Train this worker's replica; return what it did (see the module docstring)."""
    threads = int(spec["threads"])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    import keras

    from sparkvision.training.model import build_model, make_optimizer

    params = TrainParams(**spec["params"])
    rank, workers, steps, batch = spec["rank"], spec["workers"], spec["steps"], spec["batch"]
    global_batch, chief = batch * workers, spec["rank"] == 0
    shape = tuple(spec["shape"])
    address, token = tuple(spec["coordinator"]), spec["token"]
    # TF_CONFIG (set by the barrier task) names every worker: the strategy connects them.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if workers > 1 else tf.distribute.get_strategy()
    resume, resume_files = channel.request(address, token, "hello", {"rank": rank, "task": spec["task_attempt"]})
    rows: list[dict] = resume["rows"]
    start, planned = len(rows), int(resume["planned"] or params.epochs)

    keras.utils.set_random_seed(params.seed)  # the same initial weights on every worker
    horizon = tf.Variable(planned * steps, dtype=tf.int64, trainable=False)  # local: set from the chief's plan
    with strategy.scope():
        model = build_model(params, shape, spec["num_classes"], mean=spec["mean"], std=spec["std"])
        optimizer = make_optimizer(params, horizon)
        optimizer.build(model.trainable_variables)
    if CHECKPOINT_STATE in resume_files:
        restore_state(model, optimizer, resume_files[CHECKPOINT_STATE])
    work = Path(spec["work_dir"])
    best_path = work / RUN_BEST_WEIGHTS
    if RUN_BEST_WEIGHTS in resume_files:
        best_path.write_bytes(resume_files[RUN_BEST_WEIGHTS])

    statistics = [v for v in model.non_trainable_weights if "float" in str(v.dtype)]
    sums = tf.Variable(tf.zeros(2, tf.float64), trainable=False)  # this worker's loss sum, correct images

    def gradients(x, y):
        with tf.GradientTape() as tape:
            probabilities = model(x, training=True)
            per_image = keras.losses.sparse_categorical_crossentropy(y, probabilities)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        correct = tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y)
        tally = tf.stack([tf.reduce_sum(tf.cast(per_image, tf.float64)), tf.reduce_sum(tf.cast(correct, tf.float64))])
        return tape.gradient(loss, model.trainable_variables), tally

    def apply(grads):
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))  # all-reduces the gradients first

    def apply_handed_over(grads):
        # Tensors handed into a replica function have no device, which an all-reduce needs: the
        # identity places them on the replica's (the same below).
        apply([tf.identity(g) for g in grads])

    def replica_step(x, y):
        grads, tally = gradients(x, y)
        apply(grads)
        return tally

    def local(value):
        return strategy.experimental_local_results(value)[0]

    @tf.function(autograph=False)  # plain Python control flow; the zipped code has no source for AutoGraph
    def train_step(x, y):
        sums.assign_add(local(strategy.run(replica_step, args=(x, y))))

    @tf.function(autograph=False)
    def gradient_step(x, y):
        grads, tally = strategy.run(gradients, args=(x, y))
        sums.assign_add(local(tally))
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
            return tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in statistics]
            )

        for variable, value in zip(statistics, strategy.run(replica), strict=True):
            variable.assign(local(value))

    @tf.function(autograph=False)
    def evaluate_batch(x, y):
        probabilities = model(x, training=False)
        per_image = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        correct = tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y)
        return tf.stack(
            [
                tf.reduce_sum(tf.cast(per_image, tf.float64)),
                tf.reduce_sum(tf.cast(correct, tf.float64)),
                tf.cast(tf.size(y), tf.float64),
            ]
        )

    epoch_counter = {"n": start}

    def batches():
        seed = int(np.random.SeedSequence([params.seed, epoch_counter["n"], rank]).generate_state(1)[0] >> 1)
        yield from tfdata.fixed_batches(
            [Path(spec["train_file"])], shape, batch, steps, shuffle_buffer=params.shuffle_buffer, seed=seed
        )

    signature = (tf.TensorSpec((batch, *shape), tf.uint8), tf.TensorSpec((batch,), tf.int32))
    train_data = tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(4)

    def validate() -> np.ndarray:
        totals = np.zeros(3)
        if spec["validation_file"]:
            chunks = tfdata.iter_chunks([Path(spec["validation_file"])], shape, seed=None)
            for x, y in tfdata.iter_batches(chunks, VALIDATION_BATCH, 0, seed=0):
                totals += evaluate_batch(x, y).numpy()
        return totals

    if start:
        log.info("worker %d: resuming at epoch %d of at most %d", rank, start + 1, params.epochs)
    log.info(
        "worker %d of %d: %d steps an epoch of %d images (global batch %d), %d threads, devices %s",
        rank,
        workers,
        steps,
        batch,
        global_batch,
        threads,
        [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or "CPU",
    )
    timing = {"compute_ms": [], "all_reduce_ms": []}
    rates: list[float] = []
    stop = (
        bool(rows)
        and decide(
            rows,
            max_epochs=params.epochs,
            budget_seconds=params.max_train_minutes * 60,
            patience=params.early_stopping_patience,
            planned=planned,
            epoch_seconds=float(rows[-1].get("seconds") or 0),
        ).stop
    )
    clock = None
    epoch = start
    uploader, upload = concurrent.futures.ThreadPoolExecutor(max_workers=1), None
    while not stop and epoch < min(planned, params.epochs):
        epoch_counter["n"] = epoch
        first = clock is None  # the first epoch of this attempt: traces the step, times it in halves
        epoch_started = clock if clock is not None else time.monotonic()
        sums.assign(tf.zeros(2, tf.float64))
        train_started = time.monotonic()
        warmup_seconds = 0.0
        for step, (x, y) in enumerate(train_data):
            if first and WARMUP_STEPS < step <= WARMUP_STEPS + TIMED_STEPS:
                timed = time.monotonic()
                grads = gradient_step(x, y)
                sums.numpy()  # waits for the step
                computed = time.monotonic()
                apply_step(grads)
                int(optimizer.iterations.numpy())
                if step > WARMUP_STEPS + 1:  # the first timed step traces both functions
                    timing["compute_ms"].append((computed - timed) * 1000)
                    timing["all_reduce_ms"].append((time.monotonic() - computed) * 1000)
            else:
                train_step(x, y)
            if step + 1 == WARMUP_STEPS and first:
                sums.numpy()
                warmup_seconds = time.monotonic() - train_started
        loss_sum, correct = sums.numpy()
        train_seconds = time.monotonic() - train_started
        if workers > 1 and statistics:
            average_statistics()
        validation = validate()
        images = steps * batch
        own = np.zeros(2 * workers)
        own[rank], own[workers + rank] = train_seconds, images / train_seconds
        totals = all_reduce(tf.constant(np.concatenate([[loss_sum, correct, images], validation, own])))
        totals = totals.numpy()
        seconds = time.monotonic() - epoch_started
        rates.append(images / train_seconds)
        decision = np.zeros(3)
        if chief:
            row = {
                "epoch": epoch,
                "loss": round(totals[0] / totals[2], 6),
                "accuracy": round(totals[1] / totals[2], 6),
                "seconds": round(seconds, 2),
                "images_per_s": round(float(totals[2] / max(totals[6 : 6 + workers])), 1),
                "workers": workers,
                "learning_rate": float(optimizer.learning_rate.numpy()),
            }
            if totals[5]:
                row |= {"val_loss": round(totals[3] / totals[5], 6), "val_accuracy": round(totals[4] / totals[5], 6)}
            expected = (
                steady_epoch_seconds(seconds, warmup_seconds, train_seconds, steps, WARMUP_STEPS) if first else seconds
            )
            verdict = decide(
                [*rows, row],
                max_epochs=params.epochs,
                budget_seconds=params.max_train_minutes * 60,
                patience=params.early_stopping_patience,
                planned=planned,
                epoch_seconds=expected,
            )
            row["planned_epochs"] = verdict.planned
            rows.append(row)
            decision[:] = (verdict.stop, verdict.planned, verdict.keep_weights)
        # Every worker acts on the chief's decision (the others contribute zeros).
        decision = all_reduce(tf.constant(decision)).numpy()
        stop, planned, keep = bool(decision[0]), int(decision[1]), bool(decision[2])
        horizon.assign(planned * steps)
        clock = epoch_started + seconds
        if chief:
            files = {CHECKPOINT_STATE: state_bytes(model, optimizer)}
            if keep:
                model.save_weights(best_path)
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

    result = {
        "rank": rank,
        "workers": workers,
        "host": spec["host"],
        "attempt": resume["attempt"],
        "module": sys.modules["sparkvision"].__file__,
        "steps_per_epoch": steps,
        "batch": batch,
        "train_images": spec["train_images"],
        "epochs_run": epoch - start,
        "weights_digest": weights_digest(model),
        "images_per_s": round(float(np.mean(rates)), 1) if rates else None,
        "step_compute_ms": round(float(np.median(timing["compute_ms"])), 2) if timing["compute_ms"] else None,
        "step_all_reduce_ms": round(float(np.median(timing["all_reduce_ms"])), 2) if timing["all_reduce_ms"] else None,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }
    if chief:
        # The model to keep, outside the strategy: the latest near-best epoch's weights.
        final = build_model(params, shape, spec["num_classes"], mean=spec["mean"], std=spec["std"])
        final.set_weights(model.get_weights())
        if best_path.exists():
            final.load_weights(best_path)
        with tempfile.TemporaryDirectory(dir=work) as out:
            final.save(Path(out) / MODEL_FILE)
            final.export(str(Path(out) / RUN_EXPORT), format="tf_saved_model", verbose=False)
            files = {MODEL_FILE: (Path(out) / MODEL_FILE).read_bytes(), RUN_EXPORT: _tar(Path(out) / RUN_EXPORT)}
        channel.request(address, token, "final", {"parameters": final.count_params(), "name": final.name}, files)
    return result


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # one line per collective otherwise
    spec = json.loads(Path(argv[0]).read_text())
    result = train_worker(spec)
    partial = Path(spec["result_file"] + ".tmp")
    partial.write_text(json.dumps(result))
    partial.replace(spec["result_file"])
    # Stay up until the barrier task says every worker is done: a peer still finishing its last
    # all-reduce reads from this process's collective server.
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # TensorFlow's collective runtime can take long to tear down; the result is written
