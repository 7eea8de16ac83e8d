"""The published models in Airflow's web UI: what the pages show, and how they are drawn.

``plugins/sparkvision_models.py`` registers the FastAPI app (``models_app``) under ``/sparkvision``
with a "Models" entry in the UI's navigation (an external view, shown in the UI's frame):

- ``/sparkvision/models``: every model and its versions, ``LATEST`` marked, test accuracy, the
  dataset version it was trained on, links to its Airflow run and evaluation report, and a
  rollback button (LATEST -> that version) for users allowed to change what is published;
- ``/sparkvision/models/<model>/<version>``: the model card, training curves, confusion matrix
  and evaluation report of one version;
- ``/sparkvision/runs/<model>/<run id>``: a run's evaluation report (the evaluate task's link);
- ``/sparkvision/api/models``: the same listing as JSON.

Files are read through the storage root (local files, or WebHDFS on an HDFS root), as the DAG's
tasks read them. Access follows Airflow's login: reading needs read access to the
``image_training`` DAG; rollback needs write access to the DAG and to Assets (the published-models
Asset announces what LATEST points at): with SimpleAuthManager that is the ``op`` and ``admin``
roles, never ``viewer`` or ``user``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sparkvision.orchestration import io
from sparkvision.platform.catalog import latest_version, published_versions
from sparkvision.platform.layout import (
    EVAL_CONFUSION_PLOT,
    EVAL_CURVES_PLOT,
    EVAL_FILES,
    EVAL_METRICS,
    EVAL_REPORT,
    VERSION_CARD,
    VERSION_LINEAGE,
    ModelPaths,
    is_safe_name,
)

DAG_ID = "image_training"
#: The files of a version (or a run's evaluation) the pages may serve, and their media types.
SERVED = {
    **{name: "application/json" for name in (EVAL_METRICS, VERSION_LINEAGE)},
    EVAL_CONFUSION_PLOT: "image/png",
    EVAL_CURVES_PLOT: "image/png",
    EVAL_REPORT: "text/html; charset=utf-8",
    VERSION_CARD: "text/markdown; charset=utf-8",
}


@dataclass
class VersionInfo:
    """One published version, as the listing shows it."""

    model: str
    version: int
    latest: bool
    test_accuracy: float | None
    dataset: str | None
    dataset_version: str | None
    run_id: str | None
    airflow_run_id: str | None
    published_at: str | None


def list_models(root: str, fs: Any = None) -> dict[str, list[VersionInfo]]:
    """Every model under ``<root>/models`` and its versions, newest first."""
    fs = fs or io.RootFS()
    models = {}
    for name in fs.list(f"{root}/models"):
        if is_safe_name(name) and not name.startswith("."):
            models[name] = list_versions(root, name, fs)
    return models


def list_versions(root: str, model: str, fs: Any = None) -> list[VersionInfo]:
    fs = fs or io.RootFS()
    paths = ModelPaths(root, model)
    latest = latest_version(fs, paths)
    rows = []
    for version in reversed(published_versions(fs, paths)):
        lineage_uri = f"{paths.version(version)}/{VERSION_LINEAGE}"
        lineage = fs.read_json(lineage_uri) if fs.exists(lineage_uri) else {}
        rows.append(
            VersionInfo(
                model=model,
                version=version,
                latest=version == latest,
                test_accuracy=lineage.get("test_accuracy"),
                dataset=lineage.get("dataset"),
                dataset_version=lineage.get("dataset_version"),
                run_id=lineage.get("run_id"),
                airflow_run_id=lineage.get("airflow_run_id"),
                published_at=lineage.get("published_at"),
            )
        )
    return rows


def version_file(root: str, model: str, version: int, name: str) -> tuple[bytes, str]:
    """A served file of a published version: (bytes, media type); KeyError/FileNotFoundError else."""
    media = SERVED[name]
    uri = f"{ModelPaths(root, model).version(version)}/{name}"
    if not io.exists(uri):
        raise FileNotFoundError(uri)
    return io.read_bytes(uri), media


def run_file(root: str, model: str, run_id: str, name: str) -> tuple[bytes, str]:
    """A file of a run's evaluation (report, plots, metrics)."""
    if name not in EVAL_FILES:
        raise KeyError(name)
    uri = f"{ModelPaths(root, model).evaluation(run_id)}/{name}"
    if not io.exists(uri):
        raise FileNotFoundError(uri)
    return io.read_bytes(uri), SERVED[name]


def rollback(root: str, model: str, version: int) -> None:
    """Point the model's LATEST at ``version`` (the registry's own rule: it must be published)."""
    from sparkvision.registry.publish import rollback as registry_rollback

    registry_rollback(io.RootFS(), ModelPaths(root, model), version)


# -- pages -------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { border-bottom: 1px solid #cbd5e0; padding: .35rem .8rem; text-align: left; }
.latest { background: #2f855a; color: white; border-radius: 4px; padding: 0 .4rem; font-size: .8rem; }
img { max-width: 640px; border: 1px solid #e2e8f0; margin: .5rem 0; }
pre { background: #f7fafc; padding: 1rem; white-space: pre-wrap; max-width: 60rem; }
form { display: inline; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def models_page(models: dict[str, list[VersionInfo]], prefix: str, can_rollback: bool) -> str:
    """The listing: one table per model, newest version first."""
    e = html.escape
    if not models:
        return _page("Models", "<h1>Models</h1><p>No model has been published yet.</p>")
    parts = ["<h1>Published models</h1>"]
    for model, rows in models.items():
        parts.append(f"<h2>{e(model)}</h2><table><tr><th>version</th><th></th><th>test accuracy</th>")
        parts.append("<th>dataset version</th><th>published</th><th>Airflow run</th><th>evaluation</th><th></th></tr>")
        for row in rows:
            base = f"{prefix}/models/{e(model)}/{row.version}"
            accuracy = f"{row.test_accuracy:.4f}" if row.test_accuracy is not None else "?"
            run_link = (
                f'<a href="/dags/{DAG_ID}/runs/{quote(row.airflow_run_id, safe="")}" target="_top">'
                f"{e(row.airflow_run_id)}</a>"
                if row.airflow_run_id
                else ""
            )
            report = f'<a href="{prefix}/runs/{e(model)}/{e(row.run_id)}">report</a>' if row.run_id else ""
            action = ""
            if can_rollback and not row.latest:
                action = (
                    f'<form method="post" action="{prefix}/models/{e(model)}/rollback/{row.version}">'
                    f'<button type="submit">make LATEST</button></form>'
                )
            parts.append(
                f'<tr><td><a href="{base}">{row.version}</a></td>'
                f"<td>{'<span class=latest>LATEST</span>' if row.latest else ''}</td>"
                f"<td>{accuracy}</td><td>{e(row.dataset or '?')} {e(row.dataset_version or '?')}</td>"
                f"<td>{e(row.published_at or '')}</td><td>{run_link}</td><td>{report}</td><td>{action}</td></tr>"
            )
        parts.append("</table>")
    return _page("Models", "".join(parts))


def version_page(info: VersionInfo, card: str, prefix: str) -> str:
    """One version: summary, links to its files, the plots and the model card."""
    e = html.escape
    files = f"{prefix}/models/{e(info.model)}/{info.version}/files"
    accuracy = f"{info.test_accuracy:.4f}" if info.test_accuracy is not None else "?"
    body = f"""
<p><a href="{prefix}/models">&larr; all models</a></p>
<h1>{e(info.model)} version {info.version} {"<span class=latest>LATEST</span>" if info.latest else ""}</h1>
<p>Test accuracy <b>{accuracy}</b>; trained on {e(info.dataset or "?")} {e(info.dataset_version or "?")}
(run <code>{e(info.run_id or "?")}</code>, Airflow run <code>{e(info.airflow_run_id or "?")}</code>).</p>
<p><a href="{files}/{EVAL_REPORT}">evaluation report</a> &middot;
<a href="{files}/{VERSION_CARD}">model card</a> &middot; <a href="{files}/{EVAL_METRICS}">metrics.json</a>
&middot; <a href="{files}/{VERSION_LINEAGE}">lineage.json</a></p>
<h2>Training curves</h2><img id="training-curves" src="{files}/{EVAL_CURVES_PLOT}" alt="training curves">
<h2>Confusion matrix</h2><img id="confusion-matrix" src="{files}/{EVAL_CONFUSION_PLOT}" alt="confusion matrix">
<h2>Model card</h2><pre id="model-card">{e(card)}</pre>
"""
    return _page(f"{info.model} {info.version}", body)


# -- the app -----------------------------------------------------------------------------------


class LazyApp:
    """An ASGI app that builds the real one (``create_app``) at its first request.

    Every Airflow process imports the plugins folder, each task process included; only the
    api-server serves the pages, so only it pays for FastAPI and Airflow's API security modules.
    """

    def __init__(self, factory=None) -> None:
        self._factory = factory
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            from sparkvision.orchestration.models_app import create_app

            self._app = (self._factory or create_app)()
        await self._app(scope, receive, send)
