"""The DAG's trigger form, generated from the parameter declarations (``sparkvision.config.params``)."""

from __future__ import annotations

from typing import Any

from sparkvision.config.params import PARAMETERS

#: Sections of the form that start collapsed (the defaults suit most runs).
COLLAPSED = {"Advanced"}


def dag_params() -> dict[str, Any]:
    """``{name: airflow.sdk.Param}`` for every declared parameter, with its description and section."""
    from airflow.sdk import Param

    return {
        p.name: Param(p.default, section=p.section, section_collapsed=p.section in COLLAPSED, **p.json_schema())
        for p in PARAMETERS
    }
