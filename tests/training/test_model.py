"""Model builders and training parameters: shapes, raw uint8 input, training-only augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from sparkvision.config.params import ARCHITECTURES, TrainParams

REFERENCE = TrainParams(architecture="reference")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_models_take_raw_uint8_images_and_give_probabilities(architecture, shape):
    from sparkvision.training.model import build_model

    model = build_model(
        TrainParams(architecture=architecture), shape, 7, mean=[100.0] * shape[-1], std=[50.0] * shape[-1]
    )
    assert model.input.dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (5, *shape), dtype=np.uint8)
    probabilities = np.asarray(model.predict(x, verbose=0))
    assert probabilities.shape == (5, 7)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_reference_cnn_is_the_original_design():
    from sparkvision.training.model import build_model

    assert build_model(REFERENCE, (28, 28, 1), 10).count_params() == 421_642


def test_normalisation_uses_the_train_statistics():
    import keras

    from sparkvision.training.model import build_model

    model = build_model(TrainParams(), (8, 8, 2), 3, mean=[10.0, 200.0], std=[2.0, 50.0])
    standardise = keras.Model(model.input, model.get_layer("standardise").output)
    x = np.zeros((1, 8, 8, 2), dtype=np.uint8)
    x[..., 0], x[..., 1] = 12, 150
    out = np.asarray(standardise(x))
    assert np.allclose(out[..., 0], 1.0, atol=1e-4) and np.allclose(out[..., 1], -1.0, atol=1e-4)


def test_augmentation_only_while_training():
    import keras

    from sparkvision.training.model import build_model

    model = build_model(TrainParams(architecture="reference", augment=True, seed=1), (28, 28, 1), 10)
    assert model.get_layer("augment_flip") is not None
    augmented = keras.Model(model.input, model.get_layer("augment_shift").output)
    x = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
    inference = np.asarray(augmented(x, training=False))
    assert np.allclose(inference, np.asarray(augmented(x, training=False)))
    assert not np.allclose(inference, np.asarray(augmented(x, training=True)))
    without = build_model(REFERENCE, (28, 28, 1), 10)
    assert "augment_flip" not in [layer.name for layer in without.layers]


def test_budgeted_cosine_follows_its_horizon_variable():
    import tensorflow as tf

    from sparkvision.training.model import make_optimizer
    from sparkvision.training.schedule import cosine_learning_rate

    horizon = tf.Variable(100, dtype=tf.int64)
    schedule = make_optimizer(TrainParams(learning_rate=0.002), horizon)._learning_rate
    assert float(schedule(0)) == pytest.approx(0.002)
    assert float(schedule(100)) == pytest.approx(0.002 * 0.01, rel=1e-3)
    assert float(schedule(500)) == pytest.approx(0.002 * 0.01, rel=1e-3)  # flat after the horizon
    horizon.assign(50)  # the budget shortened the plan: the same step is further along the curve
    assert float(schedule(25)) == pytest.approx(cosine_learning_rate(25, 50, 0.002), rel=1e-5)
    assert float(schedule(50)) == pytest.approx(0.002 * 0.01, rel=1e-3)


def test_train_params_defaults_and_validation():
    defaults = TrainParams()
    assert defaults.architecture == "stronger" and defaults.max_train_minutes <= 10
    for bad in (
        {"architecture": "x"},
        {"epochs": 0},
        {"batch_size": 0},
        {"learning_rate": 1.5},
        {"shuffle_buffer": -1},
        {"augment": "yes"},
        {"early_stopping_patience": -1},
        {"max_train_minutes": -1},
    ):
        with pytest.raises(ValueError):
            TrainParams(**bad)
