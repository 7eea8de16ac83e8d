"""docs/run-config.md shows the parameters as declared (its table and example are generated)."""

from __future__ import annotations

from devtools import docs


def test_run_config_doc_is_current():
    assert docs.main(["--check"]) == 0, "run: python -m devtools.docs"


def test_the_table_lists_every_parameter_with_its_default():
    from sparkvision.config.params import PARAMETERS

    table = docs.parameter_table()
    for parameter in PARAMETERS:
        assert f"| `{parameter.name}` | {parameter.stage} |" in table
    assert "| `learning_rate` | train | `0.002` | (0, 1) | yes |" in table
