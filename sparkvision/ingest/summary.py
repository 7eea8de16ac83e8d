"""The statistics, labels, drift and manifest of one ingest: pure functions over its aggregation."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict

from sparkvision.config.params import ImageSpec, IngestParams, fingerprint
from sparkvision.platform import schema
from sparkvision.platform.layout import DatasetPaths


class AccountingError(RuntimeError):
    """accepted + rejected != files found: a bug, never a property of the data."""


def size_bucket(height: int, width: int) -> str:
    """Histogram bucket of an original size: the longest side rounded up to a power of two.

    The definition that the statistics' Spark aggregation (``_summarizer``) computes in SQL; the
    integration tests check the one against the other.
    """
    longest = max(height, width, 1)
    return f"<={1 << (longest - 1).bit_length()}"


def fold_summary(rows: Iterable[dict], spec: ImageSpec) -> dict:
    """The summary of one ingest from the rows of its one aggregation (see ``_summarizer``).

    Each row is one (reason, label, size bucket, channels) group with ``files``, ``bytes``, and
    sums of its accepted images' hash parts (HASH_PART_HI/LO) and per-channel pixel sums.
    """
    channels = spec.channels
    total: dict = {"groups": {}, "sizes": {}, "in_channels": {}, "hash_sum": 0, "duplicates": 0}
    images_n = 0
    sums = [0] * channels
    squares = [0] * channels
    for row in rows:
        reason, files = row[schema.REASON], row["files"]
        group = total["groups"].setdefault(f"{reason or ''}|{row[schema.LABEL] or ''}", [0, 0])
        group[0] += files
        group[1] += row["bytes"] or 0
        if reason is not None:
            continue
        images_n += files
        bucket = f"<={row['size_edge']}"
        total["sizes"][bucket] = total["sizes"].get(bucket, 0) + files
        key = str(row[schema.ORIG_CHANNELS])
        total["in_channels"][key] = total["in_channels"].get(key, 0) + files
        total["hash_sum"] += (row[schema.HASH_PART_HI] << 32) + row[schema.HASH_PART_LO]
        for c in range(channels):
            sums[c] += row[schema.PIXEL_SUMS[c]]
            squares[c] += row[schema.PIXEL_SUMSQS[c]]
    n = images_n * spec.height * spec.width
    total["channel_mean"] = [round(s / n, 4) if n else None for s in sums]
    total["channel_std"] = [
        round(math.sqrt(max(q / n - (s / n) ** 2, 0.0)), 4) if n else None for s, q in zip(sums, squares, strict=True)
    ]
    return total


def assign_label_indices(labels: Iterable[str], previous: dict[str, int] | None) -> dict[str, int]:
    """Label -> index, keeping every earlier version's indices; new labels append in sorted order."""
    mapping = dict(previous or {})
    for label in sorted(set(labels) - set(mapping)):
        mapping[label] = len(mapping)
    return mapping


def label_drift(previous: dict[str, int] | None, current: dict[str, int], threshold: float) -> dict | None:
    """Label-distribution drift against the previous version: total variation distance.

    TV = 1/2 * sum |p(label) - q(label)| over the union of labels: 0 = same shares, 1 = disjoint.
    """
    if not previous:
        return None
    prev_n, cur_n = sum(previous.values()), sum(current.values())
    labels = sorted(set(previous) | set(current))
    shares = {
        label: {
            "previous": round(previous.get(label, 0) / prev_n, 6) if prev_n else 0.0,
            "current": round(current.get(label, 0) / cur_n, 6) if cur_n else 0.0,
        }
        for label in labels
    }
    tv = 0.5 * sum(abs(s["previous"] - s["current"]) for s in shares.values())
    return {
        "metric": "total_variation",
        "value": round(tv, 6),
        "threshold": threshold,
        "exceeded": tv > threshold,
        "new_labels": sorted(set(current) - set(previous)),
        "missing_labels": sorted(set(previous) - set(current)),
        "shares": shares,
    }


def output_partitions(rows: int, row_bytes: int, target_mb: int) -> int:
    """How many Parquet files for ``rows`` rows of about ``row_bytes`` each: sized by bytes."""
    return max(1, math.ceil(rows * row_bytes / (target_mb * 1024 * 1024)))


def build_manifest(
    summary: dict, found: int, found_bytes: int | None, paths: DatasetPaths, params: IngestParams
) -> dict:
    """Counts, reasons, sizes and statistics of one ingest; checks accepted + rejected == found."""
    accepted = rejected = accepted_bytes = 0
    by_reason: dict[str, int] = {}
    per_label: dict[str, int] = {}
    rejected_per_label: dict[str, int] = {}
    total_bytes = 0
    for key, (n, nbytes) in summary["groups"].items():
        reason, label = key.split("|", 1)
        total_bytes += nbytes
        if reason:
            rejected += n
            by_reason[reason] = by_reason.get(reason, 0) + n
            rejected_per_label[label or "(none)"] = rejected_per_label.get(label or "(none)", 0) + n
        else:
            accepted += n
            accepted_bytes += nbytes
            per_label[label] = per_label.get(label, 0) + n
    if found == 0:
        raise RuntimeError(f"ingest found no files in {paths.raw}")
    if accepted + rejected != found:
        raise AccountingError(f"accounting error: {accepted} accepted + {rejected} rejected != {found} files found")
    return {
        "dataset": paths.dataset,
        "version": paths.version,
        "source": paths.raw,
        "image_shape": list(params.spec.shape),
        "params": asdict(params),
        "fingerprint": fingerprint(params),
        "files_found": found,
        "accepted": accepted,
        "rejected": rejected,
        "invariant": f"accepted + rejected == files_found: {accepted} + {rejected} == {found}",
        "rejected_share": round(rejected / found, 6),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "rejected_per_label": dict(sorted(rejected_per_label.items())),
        "duplicates_flagged": summary["duplicates"],
        "per_label": dict(sorted(per_label.items())),
        "bytes": found_bytes if found_bytes is not None else total_bytes,
        "bytes_accepted": accepted_bytes,
        "orig_size_histogram": dict(sorted(summary["sizes"].items(), key=lambda kv: int(kv[0][2:]))),
        "orig_channels_histogram": dict(sorted(summary["in_channels"].items())),
        "channel_mean": summary["channel_mean"],
        "channel_std": summary["channel_std"],
    }


def dataset_hash(hash_sum: int, params: IngestParams, label_index: dict[str, int]) -> str:
    """The dataset's content hash: every accepted (path, file hash), the conversion and the labels.

    Order-independent (a sum over files), so it does not depend on partitioning or listing order.
    """
    text = json.dumps(
        [f"{hash_sum:x}", str(params.spec), params.resize_policy, params.alpha_background, label_index],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()
