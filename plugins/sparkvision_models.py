"""Airflow plugin: the published models in the web UI (a "Models" entry in the navigation).

Thin on purpose: the pages are ``sparkvision.orchestration.models_view``; the extra links of the
evaluate and publish task instances are ``sparkvision.orchestration.links`` (set on the tasks).
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from sparkvision.orchestration.links import UI_PREFIX
from sparkvision.orchestration.models_view import LazyApp


class SparkvisionModelsPlugin(AirflowPlugin):
    name = "sparkvision_models"
    fastapi_apps: ClassVar[list[dict]] = [{"app": LazyApp(), "url_prefix": UI_PREFIX, "name": "sparkvision models"}]
    external_views: ClassVar[list[dict]] = [
        {
            "name": "Models",
            "href": f"{UI_PREFIX.lstrip('/')}/models",  # relative: the UI may live under a base URL
            "destination": "nav",
            "category": "browse",
            "url_route": "sparkvision-models",
        }
    ]
