"""Keras model builders.

Every model takes raw uint8 images and normalises inside itself (with the train split's
per-channel mean and standard deviation from ``stats.json``), so the exported SavedModel serves
raw pixels. Augmentation layers, when asked for, are active only while training.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from sparkvision.config.params import TrainParams


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


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
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

    One conv per resolution (32 filters at 28x28, 64 at 14x14, 128 at 7x7): a second conv at
    full resolution doubles the CPU cost for little gain. Sized so that 18 epochs of
    54,000 images fit in 10 minutes on 2 cores.
    """
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = preprocessing(inputs, input_shape[-1], mean, std, augment, seed)
    for filters in (32, 64, 128):
        x = _conv_bn_relu(x, filters)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="stronger_cnn")


BUILDERS = {"reference": build_reference_cnn, "stronger": build_stronger_cnn}


def build_model(
    params: TrainParams,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    decay_steps: int = 0,
) -> keras.Model:
    """Build and compile ``params.architecture`` with its learning rate, augmentation and seed.

    ``mean``/``std``: the train split's per-channel statistics (None: pixels / 255). With
    ``decay_steps`` > 0 the learning rate follows a cosine from ``params.learning_rate`` down to 1%
    of it over that many steps; the step count lives in the optimizer, so a resumed run continues
    the schedule where it stopped.
    """
    model = BUILDERS[params.architecture](input_shape, num_classes, mean, std, params.augment, params.seed)
    schedule = (
        keras.optimizers.schedules.CosineDecay(params.learning_rate, decay_steps, alpha=0.01)
        if decay_steps > 0
        else params.learning_rate
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model
