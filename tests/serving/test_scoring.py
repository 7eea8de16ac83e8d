"""The scoring code path: what a batch becomes, and a model loaded once per Python worker on Spark."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from sparkvision.platform import schema
from sparkvision.serving import models
from sparkvision.serving.scoring import score_batch, serve_function, ship

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scorer(published_model, spark, hadoop_fs):
    return ship(spark, hadoop_fs, models.published_model(hadoop_fs, published_model.model_paths, 1), keep=3)


def test_shipping_is_content_addressed(scorer, published_model, spark, hadoop_fs):
    assert scorer.name == f"sparkvision-model-{scorer.digest[:20]}" and scorer.shape == (28, 28, 1)
    again = ship(spark, hadoop_fs, models.published_model(hadoop_fs, published_model.model_paths, 1), keep=50)
    assert again.name == scorer.name and again.keep == 10  # the same bytes, the same archive; k <= classes


def test_a_batch_keeps_its_rows_and_rejected_files_get_no_prediction(scorer):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28 * 28), dtype=np.uint8)
    pixels = pa.array([images[0].tobytes(), None, images[2].tobytes()], type=pa.binary())
    batch = pa.RecordBatch.from_pydict(
        {
            schema.PATH: ["a.png", "bad.txt", "c.png"],
            schema.LABEL: ["bag", None, "not-a-label"],
            schema.REASON: [None, "not_an_image", None],
            schema.PIXELS: pixels,
        }
    )
    out = score_batch(batch, scorer).to_pylist()
    assert [row[schema.PATH] for row in out] == ["a.png", "bad.txt", "c.png"]
    rejected = out[1]
    assert rejected[schema.REASON] == "not_an_image"
    assert all(rejected[name] is None for name in (schema.PREDICTED_INDEX, schema.CONFIDENCE, schema.TOP_K_LABELS))
    for row in (out[0], out[2]):
        assert len(row[schema.TOP_K_LABELS]) == 3 and row[schema.TOP_K_LABELS][0] == row[schema.PREDICTED_LABEL]
        assert row[schema.TOP_K_PROBABILITIES] == sorted(row[schema.TOP_K_PROBABILITIES], reverse=True)
        assert scorer.labels[row[schema.PREDICTED_INDEX]] == row[schema.PREDICTED_LABEL]
    assert out[0][schema.LABEL_INDEX] == scorer.labels.index("bag") and out[2][schema.LABEL_INDEX] is None
    # the same image alone gives the same probabilities as in a batch of three
    alone = score_batch(batch.slice(2, 1), scorer).to_pylist()[0]
    assert alone[schema.TOP_K_PROBABILITIES] == out[2][schema.TOP_K_PROBABILITIES]


def test_each_python_worker_loads_the_model_once_for_all_its_tasks(scorer, spark):
    """Eight tasks on local[2]: two reused Python workers, each holding one loaded model throughout."""

    def report(batches):
        for batch in batches:
            serve = serve_function(scorer)
            yield pa.RecordBatch.from_pydict(
                {"pid": [os.getpid()] * batch.num_rows, "model": [id(serve)] * batch.num_rows}
            )

    rows = spark.range(0, 8000, numPartitions=8).mapInArrow(report, "pid long, model long").distinct().collect()
    models_per_worker = {}
    for row in rows:
        models_per_worker.setdefault(row["pid"], set()).add(row["model"])
    assert 1 <= len(models_per_worker) <= 2  # local[2]: at most two workers, reused across the 8 tasks
    assert all(len(models) == 1 for models in models_per_worker.values())
