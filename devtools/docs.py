"""Generated parts of the docs: the parameter table and the example run config (docs/run-config.md).

python -m devtools.docs            # rewrite them from sparkvision/config/params.py
python -m devtools.docs --check    # exit 1 when docs/run-config.md is out of date (a test runs it)
"""

from __future__ import annotations

import argparse
import re
import sys

from sparkvision.config.params import PARAMETERS, Parameter
from sparkvision.config.runconfig import RunConfig
from sparkvision.platform.settings import PROJECT_DIR

RUN_CONFIG_MD = PROJECT_DIR / "docs" / "run-config.md"
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


def parameter_table() -> str:
    rows = [
        "| parameter | stage | default | allowed | identity | form section | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PARAMETERS:
        default = "(logical date)" if p.default is None else f"`{p.default}`".replace("`False`", "`false`")
        identity = "(path)" if p.stage == "run" else "yes" if p.identity else "no"
        rows.append(
            f"| `{p.name}` | {p.stage} | {default.replace('`True`', '`true`')} | {_allowed(p)} | "
            f"{identity} | {p.section} | {p.help.replace('|', '/')} |"
        )
    return "\n".join(rows)


def example_config() -> str:
    return "```json\n" + RunConfig.build(EXAMPLE_ROOT, {"version": "20261125"}).to_json() + "```"


def render(text: str) -> str:
    for name, body in (("params", parameter_table()), ("example", example_config())):
        pattern = re.compile(rf"(<!-- generated:{name}:start -->\n).*?(<!-- generated:{name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{RUN_CONFIG_MD} has no generated:{name} markers")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    args = parser.parse_args(argv)
    text = RUN_CONFIG_MD.read_text()
    current = render(text)
    if args.check:
        if current != text:
            print(f"{RUN_CONFIG_MD} is out of date: run python -m devtools.docs", file=sys.stderr)
            return 1
        return 0
    RUN_CONFIG_MD.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
