"""Extra links of the DAG's task instances: the run's evaluation report, the published version.

Airflow 3 computes an operator's extra links in the worker when the task ends and keeps them in
XCom; the UI shows them as buttons on the task instance. They point into the models pages
(``sparkvision.orchestration.models_view``, served by ``plugins/sparkvision_models.py``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

#: Where the plugin mounts the models pages in the api-server.
UI_PREFIX = "/sparkvision"


def ui_url(path: str) -> str:
    """An absolute path (or URL, under ``[api] base_url``) to a models page."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{UI_PREFIX}/{path.lstrip('/')}"


def _run_config_uri(operator: Any) -> str:
    """The run config's URI, as the Spark job's rendered ``--run-config`` argument holds it."""
    args = list(operator.application_args)
    return args[args.index("--run-config") + 1]


class RunReportLink(BaseOperatorLink):
    """The evaluation report of the run this task evaluated."""

    name = "Evaluation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from sparkvision.orchestration.runs import load_run_config

        config = load_run_config(_run_config_uri(operator))
        return ui_url(f"runs/{config.model}/{config.run_id}")


class ModelVersionLink(BaseOperatorLink):
    """The model version this task published (or found already published)."""

    name = "Published model version"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from sparkvision.orchestration.runs import run_outcome

        published = run_outcome(_run_config_uri(operator), "published")
        return ui_url(f"models/{published['model']}/{published['version']}")


def job_links(job: str) -> tuple[BaseOperatorLink, ...]:
    """The extra links of the Spark job ``job``'s task."""
    return {"evaluate": (RunReportLink(),), "publish": (ModelVersionLink(),)}.get(job, ())
