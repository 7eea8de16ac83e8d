"""The Airflow Assets the DAGs share, named once: image_training emits, batch_inference consumes."""

from __future__ import annotations

#: The Asset event that image_training's ``announce`` task emits for every new published version
#: (its ``extra``: model, version, uri, run_id, test_accuracy).
PUBLISHED_MODELS_ASSET = "sparkvision_published_models"


def published_models(root: str):
    """The published-models Asset of a storage root (its URI: ``<root>/models/``)."""
    from airflow.sdk import Asset

    return Asset(name=PUBLISHED_MODELS_ASSET, uri=f"{root}/models/")
