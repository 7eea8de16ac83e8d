"""The DAG's trigger form, generated from the parameter declarations (``sparkvision.config.params``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparkvision.config.params import PARAMETERS, Parameter

#: Sections of the form that start collapsed (the defaults suit most runs).
COLLAPSED = {"Advanced"}


def dag_params(declared: Sequence[Parameter] = PARAMETERS) -> dict[str, Any]:
    """``{name: airflow.sdk.Param}`` for every declared parameter, with its description and section.

    ``declared``: the pipeline's ``PARAMETERS`` (image_training) or ``SCORING_PARAMETERS`` (batch_inference).
    """
    from airflow.sdk import Param

    return {
        p.name: Param(p.default, section=p.section, section_collapsed=p.section in COLLAPSED, **p.json_schema())
        for p in declared
    }
