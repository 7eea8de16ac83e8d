"""The split rule: by content hash, stable, honouring the source's own test set."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from sparkvision.config.params import SplitParams
from sparkvision.training.tensorize import assign_split, hash_bucket

#: hash_bucket of "abc", content_hash(0) and content_hash(1): persisted split decisions.
GOLDEN_BUCKETS = [9759, 8456, 9328]


def content_hash(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_source_test_set_stays_the_test_set():
    params = SplitParams(validation_share=0.5, test_share=0.4)
    assert {assign_split(content_hash(n), "test", params) for n in range(200)} == {"test"}


def test_source_train_images_never_go_to_test():
    params = SplitParams()
    assert {assign_split(content_hash(n), "train", params) for n in range(2000)} == {"train", "validation"}


def test_shares_are_roughly_honoured_without_a_source_split():
    params = SplitParams(validation_share=0.1, test_share=0.2)
    counts = Counter(assign_split(content_hash(n), None, params) for n in range(20_000))
    assert counts["validation"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert counts["test"] / 20_000 == pytest.approx(0.2, abs=0.01)


def test_split_depends_only_on_content():
    params = SplitParams()
    first = [assign_split(content_hash(n), None, params) for n in range(500)]
    assert first == [assign_split(content_hash(n), None, params) for n in range(500)]
    # Persisted decisions: a bucket decides an image's split in every version, forever. Pinned.
    assert [hash_bucket(h) for h in ("abc", content_hash(0), content_hash(1))] == GOLDEN_BUCKETS


def test_bad_shares_are_refused():
    with pytest.raises(ValueError):
        SplitParams(validation_share=0.6, test_share=0.5)
    with pytest.raises(ValueError):
        SplitParams(validation_share=-0.1)
