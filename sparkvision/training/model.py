"""Keras model builders.

Every model takes raw uint8 images and normalises inside itself (with the train split's
per-channel mean and standard deviation from ``stats.json``), so the exported SavedModel serves
raw pixels. Augmentation layers, when asked for, are active only while training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from sparkvision.config.params import TrainParams
from sparkvision.training.schedule import ALPHA


def preprocessing(
    inputs,
    channels: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    augment: bool,
    seed: int | None,
):
    """uint8 pixels -> standardised floats (per channel), then optional training-only augmentation."""
    if mean is not None and std is not None:
        variance = [max(float(s), 1e-3) ** 2 for s in std]
        x = layers.Normalization(axis=-1, mean=list(mean), variance=variance, name="standardise")(
            layers.Rescaling(1.0, name="to_float")(inputs)
        )
    else:
        x = layers.Rescaling(1.0 / 255, name="standardise")(inputs)
    if augment:
        # Keras preprocessing layers are the identity at inference: the export is unaffected.
        x = layers.RandomFlip("horizontal", seed=seed, name="augment_flip")(x)
        x = layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed, name="augment_shift")(x)
    return x


def build_reference_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    augment: bool,
    seed: int | None,
) -> keras.Model:
    """The original design's CNN: 2 conv + 2 dense (421,642 parameters on 28x28x1, 10 classes)."""
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = preprocessing(inputs, input_shape[-1], mean, std, augment, seed)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="reference_cnn")


def _conv_pool_bn_relu(x, filters: int):
    """Conv, then 2x2 max-pool, then batch norm and ReLU on the pooled map.

    Pooling first is the same block as conv-BN-ReLU-pool wherever BN's scale is positive (max
    commutes with a rising per-channel function), but normalisation and activation run on a
    quarter of the values: on CPU those element-wise passes, not the convolutions, were most of
    a step at 28x28 (measured: 1.4x the images/s of the other order, the same parameters).
    """
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def build_stronger_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    augment: bool,
    seed: int | None,
) -> keras.Model:
    """The default: a VGG-style CNN with batch normalisation and dropout.

    One conv per resolution (32 filters at 28x28, 64 at 14x14, 128 at 7x7), each block pooled
    before it is normalised (``_conv_pool_bn_relu``): a second conv at full resolution doubles
    the CPU cost for little gain. Sized so that the default 24 epochs of 54,000 images fit in 10
    minutes on 2 cores (~2,700 images/s measured, 21 s an epoch with validation).
    """
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = preprocessing(inputs, input_shape[-1], mean, std, augment, seed)
    for filters in (32, 64, 128):
        x = _conv_pool_bn_relu(x, filters)
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name="stronger_cnn")


def classifier_head(x, num_classes: int):
    """``stronger``'s head on its last feature map: dense256-BN-ReLU-dropout 0.4, then softmax."""
    x = layers.Flatten()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    return layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


BUILDERS = {"reference": build_reference_cnn, "stronger": build_stronger_cnn}


def build_model(
    params: TrainParams,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> keras.Model:
    """Build ``params.architecture`` (not compiled) with its augmentation and seed.

    ``mean``/``std``: the train split's per-channel statistics (None: pixels / 255). Training
    (``sparkvision.training.worker``) runs its own step with ``make_optimizer``; compile the model
    yourself to use ``fit``.
    """
    return BUILDERS[params.architecture](input_shape, num_classes, mean, std, params.augment, params.seed)


class BudgetedCosine(keras.optimizers.schedules.LearningRateSchedule):
    """A cosine from ``peak`` to ``alpha * peak`` over ``horizon`` steps, a variable the trainer moves.

    The horizon is the planned epochs' steps (``sparkvision.training.schedule``): it is set when the
    time budget says how many epochs fit, and the optimizer's step counter (restored with the
    checkpoint) carries a resumed run on along the same curve.
    """

    def __init__(self, peak: float, horizon, alpha: float = ALPHA) -> None:
        self.peak = peak
        self.horizon = horizon
        self.alpha = alpha

    def __call__(self, step):
        import tensorflow as tf

        progress = tf.minimum(tf.cast(step, tf.float32) / tf.maximum(tf.cast(self.horizon, tf.float32), 1.0), 1.0)
        return self.peak * (self.alpha + (1 - self.alpha) * 0.5 * (1 + tf.cos(math.pi * progress)))

    def get_config(self) -> dict:
        return {"peak": self.peak, "horizon": int(self.horizon.numpy()), "alpha": self.alpha}


def make_optimizer(params: TrainParams, horizon) -> keras.optimizers.Optimizer:
    """Adam at ``params.learning_rate`` along a ``BudgetedCosine`` over the variable ``horizon``."""
    return keras.optimizers.Adam(BudgetedCosine(params.learning_rate, horizon))
