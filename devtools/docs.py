"""Generated parts of the docs: the parameter tables and example configs.

docs/run-config.md: the pipeline's parameters and an example run config; docs/serving.md: the
scoring run's parameters (batch_inference) and an example scoring config.

python -m devtools.docs            # rewrite them from sparkvision/config/params.py
python -m devtools.docs --check    # exit 1 when a file is out of date (a test runs it)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from sparkvision.config.params import PARAMETERS, SCORING_PARAMETERS, Parameter
from sparkvision.config.runconfig import RunConfig
from sparkvision.config.scoring import ScoringConfig
from sparkvision.platform.settings import PROJECT_DIR

RUN_CONFIG_MD = PROJECT_DIR / "docs" / "run-config.md"
SERVING_MD = PROJECT_DIR / "docs" / "serving.md"
EXAMPLE_ROOT = "hdfs://namenode:8020/sparkvision"


def _allowed(p: Parameter) -> str:
    if p.choices:
        return ", ".join(f"`{c}`" for c in p.choices)
    if p.minimum is not None or p.maximum is not None:
        return f"({p.minimum}, {p.maximum})" if p.exclusive else f"{p.minimum} .. {p.maximum}"
    if p.kind is bool:
        return "true / false"
    if p.pattern:
        return "`HxWxC`" if p.name == "image_shape" else "safe name"
    return ""


def parameter_table(declared: Sequence[Parameter] = PARAMETERS, empty: str = "(logical date)") -> str:
    """The table of ``declared``; ``empty`` stands for a default of None (the meaning column says more)."""
    rows = [
        "| parameter | stage | default | allowed | identity | form section | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in declared:
        default = empty if p.default is None else f"`{p.default}`".replace("`False`", "`false`")
        identity = "(path)" if p.stage == "run" else "yes" if p.identity else "no"
        rows.append(
            f"| `{p.name}` | {p.stage} | {default.replace('`True`', '`true`')} | {_allowed(p)} | "
            f"{identity} | {p.section} | {p.help.replace('|', '/')} |"
        )
    return "\n".join(rows)


def example_config() -> str:
    return "```json\n" + RunConfig.build(EXAMPLE_ROOT, {"version": "20261125"}).to_json() + "```"


def scoring_example() -> str:
    config = ScoringConfig.build(EXAMPLE_ROOT, {"batch": "20261125"}).pinned(3)
    return "```json\n" + config.to_json() + "```"


#: Each generated file: its marked sections and what fills them.
GENERATED = {
    RUN_CONFIG_MD: {"params": parameter_table, "example": example_config},
    SERVING_MD: {
        "scoring-params": lambda: parameter_table(SCORING_PARAMETERS, empty="(empty)"),
        "scoring-example": scoring_example,
    },
}


def render(text: str, sections: dict | None = None, where: object = RUN_CONFIG_MD) -> str:
    for name, make in (sections or GENERATED[RUN_CONFIG_MD]).items():
        pattern = re.compile(rf"(<!-- generated:{name}:start -->\n).*?(<!-- generated:{name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{where} has no generated:{name} markers")
        body = make()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the files are current")
    args = parser.parse_args(argv)
    stale = 0
    for path, sections in GENERATED.items():
        text = path.read_text()
        current = render(text, sections, path)
        if current == text:
            continue
        if args.check:
            print(f"{path} is out of date: run python -m devtools.docs", file=sys.stderr)
            stale += 1
        else:
            path.write_text(current)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
