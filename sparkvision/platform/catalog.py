"""Reading the published models: their integer versions and the LATEST pointer.

``sparkvision.registry`` writes them; evaluation (the champion) and serving read them here.
"""

from __future__ import annotations

from typing import Any

from sparkvision.platform.layout import ModelPaths


def published_versions(fs: Any, model_paths: ModelPaths) -> list[int]:
    """The integer versions present under models/<model>/, ascending."""
    return sorted(int(name) for name in fs.list(model_paths.published) if name.isdigit())


def latest_version(fs: Any, model_paths: ModelPaths) -> int | None:
    """The version LATEST points at, or None when nothing is published."""
    if not fs.exists(model_paths.latest_pointer):
        return None
    return int(fs.read_text(model_paths.latest_pointer).strip())
