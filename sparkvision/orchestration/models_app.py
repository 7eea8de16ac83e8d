"""The FastAPI app of the models pages, mounted in Airflow's api-server by the plugin.

Only the api-server imports this (``models_view.LazyApp`` builds it at the first request).
Authentication is Airflow's own (the UI's session cookie, or a bearer token from ``/auth/token``);
authorization asks Airflow's auth manager: read access to the ``image_training`` DAG to see the
pages, write access to the DAG and to Assets to roll LATEST back.

No ``from __future__ import annotations`` here: FastAPI reads the annotations of the routes.
"""

from dataclasses import asdict
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import AssetDetails, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparkvision.orchestration import models_view as view
from sparkvision.platform import settings
from sparkvision.platform.layout import EVAL_REPORT, VERSION_CARD, is_safe_name


def may_read(user: BaseUser) -> bool:
    return get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=view.DAG_ID), user=user)


def may_rollback(user: BaseUser) -> bool:
    """Moving LATEST changes what is published: write access to the DAG and to Assets."""
    manager = get_auth_manager()
    return manager.is_authorized_dag(
        method="PUT", details=DagDetails(id=view.DAG_ID), user=user
    ) and manager.is_authorized_asset(method="PUT", details=AssetDetails(), user=user)


def reader(user: GetUserDep) -> BaseUser:
    if not may_read(user):
        raise HTTPException(403, f"no read access to the {view.DAG_ID} DAG")
    return user


Reader = Annotated[BaseUser, Depends(reader)]


def prefix(request: Request) -> str:
    """Where the app is mounted (``/sparkvision``): links in the pages start with it."""
    return request.scope.get("root_path", "").rstrip("/")


def checked(model: str, version: int | None = None) -> str:
    if not is_safe_name(model) or (version is not None and version < 1):
        raise HTTPException(404, "no such model or version")
    return model


def create_app(root: str | None = None) -> FastAPI:
    root = root or settings.storage_root()
    app = FastAPI(title="sparkvision models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def to_login(request: Request, exc: StarletteHTTPException) -> Response:
        # A browser without a session goes to Airflow's login page, and comes back after it.
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/api/models")
    def api_models(user: Reader) -> dict[str, Any]:
        models = view.list_models(root)
        return {
            "models": {model: [asdict(row) for row in rows] for model, rows in models.items()},
            "can_rollback": may_rollback(user),
        }

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request, user: Reader) -> str:
        return view.models_page(view.list_models(root), prefix(request), may_rollback(user))

    @app.get("/models/{model}/{version}", response_class=HTMLResponse)
    def version(request: Request, model: str, version: int, user: Reader) -> str:
        rows = [row for row in view.list_versions(root, checked(model, version)) if row.version == version]
        if not rows:
            raise HTTPException(404, f"{model} has no published version {version}")
        try:
            card = view.version_file(root, model, version, VERSION_CARD)[0].decode()
        except FileNotFoundError:
            card = "(no model card)"
        return view.version_page(rows[0], card, prefix(request))

    @app.get("/models/{model}/{version}/files/{name}")
    def version_files(model: str, version: int, name: str, user: Reader) -> Response:
        try:
            data, media = view.version_file(root, checked(model, version), version, name)
        except (KeyError, FileNotFoundError):
            raise HTTPException(404, f"no file {name!r} in {model} version {version}") from None
        return Response(data, media_type=media)

    @app.get("/runs/{model}/{run_id}")
    def run_report(request: Request, model: str, run_id: str, user: Reader) -> RedirectResponse:
        if not is_safe_name(run_id):
            raise HTTPException(404, "no such run")
        return RedirectResponse(f"{prefix(request)}/runs/{checked(model)}/{run_id}/files/{EVAL_REPORT}")

    @app.get("/runs/{model}/{run_id}/files/{name}")
    def run_files(model: str, run_id: str, name: str, user: Reader) -> Response:
        try:
            data, media = view.run_file(root, checked(model), run_id, name)
        except (KeyError, FileNotFoundError, ValueError):
            raise HTTPException(404, f"no file {name!r} in the evaluation of run {run_id}") from None
        return Response(data, media_type=media)

    # A form post authenticated by Airflow's session cookie, which is SameSite=Lax: another site
    # cannot make a browser send it along with a POST.
    @app.post("/models/{model}/rollback/{version}", response_model=None)
    def rollback(request: Request, model: str, version: int, user: Reader) -> RedirectResponse | dict[str, Any]:
        if not may_rollback(user):
            raise HTTPException(403, "rolling LATEST back needs write access to the DAG and to Assets")
        try:
            view.rollback(root, checked(model, version), version)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if "application/json" in request.headers.get("accept", ""):
            return {"model": model, "latest": version}
        return RedirectResponse(f"{prefix(request)}/models", status_code=303)

    return app
