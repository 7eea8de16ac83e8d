"""The parameter declarations: each parameter declared once, and its two validators agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jsonschema
import pytest

from sparkvision.config.params import (
    BY_NAME,
    DECLARED,
    SCORING_PARAMETERS,
    SCORING_STAGE_CLASSES,
    STAGE_CLASSES,
    EvalParams,
    ImageSpec,
    IngestParams,
    SplitParams,
    TrainParams,
    parameters,
)

PROJECT = Path(__file__).resolve().parents[2]
#: Where runtime code lives (developer tooling and tests may pass explicit values, not defaults).
RUNTIME = [PROJECT / "sparkvision", PROJECT / "dags", PROJECT / "spark_jobs"]
DECLARATIONS = PROJECT / "sparkvision" / "config" / "params.py"
#: Both lists: the pipeline run's and the scoring run's (batch_inference).
STAGE_PARAMS = [p.name for p in DECLARED if p.stage != "run"]


def _runtime_sources():
    for folder in RUNTIME:
        for path in sorted(folder.rglob("*.py")):
            if path != DECLARATIONS:
                yield path, ast.parse(path.read_text())


def test_no_parameter_has_a_second_declaration_in_the_runtime_code():
    """A default, a bound or an option of a parameter outside params.py is a second declaration.

    Counted: function arguments with a default, class-level fields, argparse options and dict
    entries with a literal value, named after a parameter.
    """
    found = []
    for path, tree in _runtime_sources():
        where = path.relative_to(PROJECT)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                with_defaults = args.args[len(args.args) - len(args.defaults) :] + [
                    a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
                ]
                found += [f"{where}:{node.lineno} argument {a.arg}" for a in with_defaults if a.arg in STAGE_PARAMS]
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", None) in STAGE_PARAMS:
                        found.append(f"{where}:{item.lineno} field {item.target.id}")
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                options = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                names = {o.lstrip("-").replace("-", "_") for o in options}
                found += [f"{where}:{node.lineno} option {n}" for n in names if n in STAGE_PARAMS]
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    named = isinstance(key, ast.Constant) and key.value in STAGE_PARAMS
                    if named and isinstance(value, ast.Constant):
                        found.append(f"{where}:{node.lineno} dict entry {key.value}")
    assert found == []


@pytest.mark.parametrize("dag_file", ["image_training.py", "batch_inference.py"])
def test_the_dag_files_have_no_per_parameter_code(dag_file):
    text = (PROJECT / "dags" / dag_file).read_text()
    code = text.split('"""', 2)[2]  # after the module docstring (its table names tasks, not parameters)
    assert [name for name in STAGE_PARAMS if re.search(rf"\b{name}\b", code)] == []
    assert "params." not in code and "Param(" not in code


def test_each_name_is_declared_once_across_both_lists():
    """The scoring list shares the pipeline's declaration of ``model`` instead of repeating it."""
    names = [p.name for p in DECLARED]
    assert len(names) == len(set(names))
    assert all(p is BY_NAME[p.name] for p in SCORING_PARAMETERS if p.name in BY_NAME)
    assert [p.name for p in SCORING_PARAMETERS] == ["batch", "model", "model_version", "curated_dataset", "top_k",
                                                    "rescore"]  # fmt: skip


def test_stage_classes_are_generated_from_the_declarations():
    for stage, cls in {**STAGE_CLASSES, **SCORING_STAGE_CLASSES}.items():
        defaults = cls()
        assert {name: getattr(defaults, name) for name in defaults.__dataclass_fields__} == {
            p.name: p.default for p in parameters(stage)
        }
    assert IngestParams().spec == ImageSpec(28, 28, 1) and IngestParams(image_shape="64x48x3").spec.nbytes == 9216


def _candidates(p) -> list:
    """Values on both sides of every rule of one parameter."""
    values = [p.default, None, "text", True, 1, 1.5, -1, 0, "v1\n", "", float("nan")]
    for bound in (p.minimum, p.maximum):
        if bound is not None:
            values += [bound, bound - 1, bound + 1, bound - 1e-9, bound + 1e-9]
    values += [*(p.choices or ()), "28x28x1", "28x28x2", "0x28x1", "28x28x1\n", "32x48x3"]
    return values


@pytest.mark.parametrize("declared", DECLARED, ids=lambda p: p.name)
def test_python_check_and_json_schema_agree_on_every_value(declared):
    """The form (jsonschema, as Airflow validates Params) and resolve (Python) accept the same values."""
    schema = declared.json_schema()
    for value in _candidates(declared):
        try:
            declared.check(value)
            python_ok = True
        except ValueError:
            python_ok = False
        try:
            jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
            schema_ok = True
        except jsonschema.ValidationError:
            schema_ok = False
        if declared.refine is not None and schema_ok and not python_ok:
            continue  # a semantic check beyond the schema (e.g. a shape of 0 pixels): stricter is fine
        if isinstance(value, float) and value != value:
            continue  # NaN: jsonschema compares it as a number; refused here, never sent by a form
        assert python_ok == schema_ok, (declared.name, value, python_ok, schema_ok)


def test_bounds_and_types_are_refused_with_the_parameters_name():
    cases = [
        (TrainParams, {"architecture": "resnet"}, "architecture must be one of"),
        (TrainParams, {"epochs": 0}, "epochs must be within 1..1000"),
        (TrainParams, {"learning_rate": 1.0}, r"learning_rate must be within \(0, 1\)"),
        (TrainParams, {"augment": "yes"}, "augment must be boolean"),
        (TrainParams, {"batch_size": 2.5}, "batch_size must be integer"),
        (IngestParams, {"image_shape": "28x28"}, "image_shape"),
        (IngestParams, {"image_shape": "28x28x1\n"}, "image_shape"),
        (IngestParams, {"resize_policy": "zoom"}, "resize_policy must be one of"),
        (SplitParams, {"validation_share": 0.6, "test_share": 0.5}, "must be below 1"),
        (EvalParams, {"min_accuracy": 2}, "min_accuracy must be within 0..1"),
    ]
    for cls, values, message in cases:
        with pytest.raises(ValueError, match=message):
            cls(**values)


def test_numbers_are_normalised_so_that_equal_values_give_equal_runs():
    assert TrainParams(max_train_minutes=10) == TrainParams(max_train_minutes=10.0)
    assert isinstance(TrainParams(max_train_minutes=10).max_train_minutes, float)
    assert TrainParams(epochs=3.0).epochs == 3


def test_overrides_parse_text_like_the_form_types_it():
    assert BY_NAME["augment"].parse("true") is True and BY_NAME["augment"].parse("0") is False
    assert BY_NAME["epochs"].parse("7") == 7 and BY_NAME["learning_rate"].parse("1e-3") == 0.001
    assert BY_NAME["version"].parse("") is None
    for name, text in (("augment", "maybe"), ("epochs", "7.5"), ("learning_rate", "fast")):
        with pytest.raises(ValueError, match=name):
            BY_NAME[name].parse(text)
