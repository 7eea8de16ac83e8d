"""Keras model builders. Every model takes raw uint8 images and normalises inside itself,
so the exported SavedModel serves raw pixels."""

from __future__ import annotations

import keras
from keras import layers

from sparkvision.params import ARCHITECTURES


def build_reference_cnn(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """The original design's CNN: 2 conv + 2 dense (421,642 parameters on 28x28x1, 10 classes)."""
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="reference_cnn")


def build_stronger_cnn(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """A wider CNN with batch normalisation and dropout: two conv blocks of two convs each."""
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="stronger_cnn")


def build_model(
    architecture: str, input_shape: tuple[int, int, int], num_classes: int, learning_rate: float = 1e-3
) -> keras.Model:
    """Build and compile one of ARCHITECTURES."""
    builders = {"reference": build_reference_cnn, "stronger": build_stronger_cnn}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    model = builders[architecture](input_shape, num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model
