"""Training-step speed of the CNNs on this machine's CPU: where a step's time goes.

    python -m bench train_step          (make bench BENCH=train_step)

Images/s of one training step (forward, gradients, Adam update; batch 128, in-memory random
uint8 images, so no input pipeline) for ``stronger`` as the package builds it (each block
conv -> pool -> BN -> ReLU), the same network in the textbook order conv -> BN -> ReLU -> pool
(the default before pooling moved first; built here), and ``reference``. The variants take
turns for ``ROUNDS`` rounds of ``STEPS`` steps each, so a slow phase of the machine hits all of
them; the medians are compared. About a minute.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from bench.common import record

NAME = "train_step"
COMMAND = "make bench BENCH=train_step"
SHAPE = (28, 28, 1)
BATCH = 128
ROUNDS = 3
STEPS = 80


def textbook_stronger(params, mean: list[float], std: list[float]):
    """``stronger`` with each block in the order conv -> BN -> ReLU -> pool (the ablation)."""
    import keras
    from keras import layers

    from sparkvision.training.model import classifier_head, preprocessing

    inputs = keras.Input(shape=SHAPE, dtype="uint8", name="image")
    x = preprocessing(inputs, SHAPE[-1], mean, std, params.augment, params.seed)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, classifier_head(x, 10), name="stronger_textbook_order")


def step_function(model):
    """A compiled training step of ``model`` (the trainer's shape: GradientTape + Adam)."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    return step


def run(argv: list[str]) -> dict:
    import tensorflow as tf

    from sparkvision.config.params import TrainParams
    from sparkvision.training.model import build_model

    threads = os.cpu_count() or 1
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    params = TrainParams()
    mean, std = [72.9], [90.0]
    models = {
        "stronger (conv-pool-BN-ReLU, the package's)": build_model(params, SHAPE, 10, mean=mean, std=std),
        "stronger in the order conv-BN-ReLU-pool": textbook_stronger(params, mean, std),
        "reference": build_model(TrainParams(architecture="reference"), SHAPE, 10, mean=mean, std=std),
    }
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (BATCH, *SHAPE), dtype=np.uint8))
    y = tf.constant(rng.integers(0, 10, BATCH), dtype=tf.int32)
    steps = {name: step_function(model) for name, model in models.items()}
    for step in steps.values():  # trace and warm up
        for _ in range(5):
            step(x, y).numpy()
    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(ROUNDS):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(STEPS):
                loss = step(x, y)
            loss.numpy()
            rates[name].append(STEPS * BATCH / (time.perf_counter() - started))
            print(f"[bench] round {round_ + 1}: {name}: {rates[name][-1]:,.0f} images/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    package, textbook = list(models)[:2]
    rows = [
        {
            "figure": f"training step, {name} ({models[name].count_params():,} parameters)",
            "value": f"{rate:,.0f} images/s",
        }
        for name, rate in medians.items()
    ]
    rows[0]["ratio"] = f"{medians[package] / medians[textbook]:.2f}x the conv-BN-ReLU-pool order"
    notes = (
        f"Batch {BATCH}, {threads} threads, random uint8 28x28x1 images held in memory (no input pipeline), "
        f"{ROUNDS} rounds of {STEPS} steps per model taking turns; medians. Pooling before batch norm and "
        "ReLU leaves the convolutions as they are and runs the element-wise passes on a quarter of the values."
    )
    details = {"rates": rates, "batch": BATCH, "threads": threads}
    return record(NAME, rows, COMMAND, details=details, notes=notes)
