"""The batch_inference benchmark's bookkeeping: its bound and its model kept only while current."""

from __future__ import annotations

import pytest

from bench import batch_inference as bench


def test_the_bound_is_the_floor_the_import_and_the_per_image_work_shared_by_the_cores():
    assert bench.bound(floor_s=6.0, import_s=3.0, decode_s=2.0, predict_one_thread_s=12.0, cores=2) == 16.0
    assert bench.bound(6.0, 3.0, 2.0, 12.0, cores=1) == 23.0


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "WORK", tmp_path)
    return tmp_path


def _made(root) -> list[str]:
    for part in ("models", "runs", "tensors", "curated", "incoming"):
        (root / part).mkdir(exist_ok=True)
        (root / part / "x").write_text("x")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_a_model_made_by_other_model_code_is_made_again(work, monkeypatch):
    _made(work)
    bench._forget_stale_model(work.as_uri())  # no record of what made it: made again
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["incoming"]

    _made(work)
    bench._forget_stale_model(work.as_uri())  # the same code: kept
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["curated", "incoming", "models", "runs", "tensors"]

    monkeypatch.setattr(bench, "ARCHITECTURE", "reference")
    bench._forget_stale_model(work.as_uri())  # another architecture: made again
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ["incoming"]
