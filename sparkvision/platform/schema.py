"""Column names and Arrow schemas of the tables the stages hand each other: named once."""

from __future__ import annotations

import pyarrow as pa

# curated/<dataset>/<version>/images.parquet
ID = "id"  # stable id: hash of the file's path inside the drop
PATH = "path"  # path relative to the drop, "<label>/<...>/<file>"
LABEL = "label"
LABEL_INDEX = "label_index"
SOURCE_SPLIT = "source_split"  # split given by the source ("train"/"test") or null
CONTENT_HASH = "content_hash"  # sha256 of the file's bytes
ORIG_HEIGHT = "orig_height"
ORIG_WIDTH = "orig_width"
ORIG_CHANNELS = "orig_channels"
PIXELS = "pixels"  # fixed-shape uint8, row-major height x width x channels
# curated/<dataset>/<version>/rejects.parquet
REASON = "reason"
DETAIL = "detail"
SIZE = "size"
# decode step only: per-channel sums of an accepted image's pixel values and of their squares
# (channels 1-3; null past the image's channels), from which the statistics are added up
PIXEL_SUMS = ("pixel_sum_0", "pixel_sum_1", "pixel_sum_2")
PIXEL_SUMSQS = ("pixel_sumsq_0", "pixel_sumsq_1", "pixel_sumsq_2")
# decode step only: an accepted file's share of the dataset hash, as two 32-bit halves (summable)
HASH_PART_HI = "hash_part_hi"
HASH_PART_LO = "hash_part_lo"
#: Columns of DECODED_SCHEMA that only the ingest's statistics read (never written out).
DECODE_STATS = (*PIXEL_SUMS, *PIXEL_SUMSQS, HASH_PART_HI, HASH_PART_LO)
# tensors/<dataset>/<version>/<split>/
SPLIT = "split"

IMAGES_SCHEMA = pa.schema(
    [
        (ID, pa.string()),
        (PATH, pa.string()),
        (LABEL, pa.string()),
        (LABEL_INDEX, pa.int32()),
        (SOURCE_SPLIT, pa.string()),
        (CONTENT_HASH, pa.string()),
        (ORIG_HEIGHT, pa.int32()),
        (ORIG_WIDTH, pa.int32()),
        (ORIG_CHANNELS, pa.int32()),
        (PIXELS, pa.binary()),
    ]
)
#: images.parquet: IMAGES_SCHEMA plus the path of the first file with the same content (or null).
DUPLICATE_OF = "duplicate_of"
CURATED_SCHEMA = pa.schema([*IMAGES_SCHEMA, (DUPLICATE_OF, pa.string())])
#: rejects.parquet
REJECTS_SCHEMA = pa.schema(
    [
        (ID, pa.string()),
        (PATH, pa.string()),
        (LABEL, pa.string()),
        (REASON, pa.string()),
        (DETAIL, pa.string()),
        (SIZE, pa.int64()),
        (CONTENT_HASH, pa.string()),
    ]
)
#: What the decode step emits for every file: an image row, or a reason it was rejected.
DECODED_SCHEMA = pa.schema(
    [
        *[field for field in IMAGES_SCHEMA if field.name != LABEL_INDEX],
        (SIZE, pa.int64()),
        (REASON, pa.string()),
        (DETAIL, pa.string()),
        *[(name, pa.int64()) for name in DECODE_STATS],
    ]
)
TENSOR_SCHEMA = pa.schema([(ID, pa.string()), (LABEL_INDEX, pa.int32()), (PIXELS, pa.binary())])

# predictions/<model>/<model version>/<batch>/predictions.parquet (and an evaluation's predictions)
PREDICTED_INDEX = "predicted_index"
PREDICTED_LABEL = "predicted_label"
CONFIDENCE = "confidence"  # the probability of the predicted label
TOP_K_LABELS = "top_k_labels"  # the most likely labels, most likely first
TOP_K_PROBABILITIES = "top_k_probabilities"  # their probabilities
MODEL = "model"
MODEL_VERSION = "model_version"
BATCH = "batch"
#: What a scoring task emits for every input row: the prediction, or the reason the file was rejected.
#: ``label``/``label_index``: the true label of a labelled input (index in the model's labels), else null.
SCORED_SCHEMA = pa.schema(
    [
        (ID, pa.string()),
        (PATH, pa.string()),
        (CONTENT_HASH, pa.string()),
        (LABEL, pa.string()),
        (LABEL_INDEX, pa.int32()),
        (PREDICTED_INDEX, pa.int32()),
        (PREDICTED_LABEL, pa.string()),
        (CONFIDENCE, pa.float32()),
        (TOP_K_LABELS, pa.list_(pa.string())),
        (TOP_K_PROBABILITIES, pa.list_(pa.float32())),
        (SIZE, pa.int64()),
        (REASON, pa.string()),
        (DETAIL, pa.string()),
    ]
)
#: predictions.parquet of a batch: the source file, the prediction, the model and the batch.
PREDICTIONS_COLUMNS = (
    PATH,
    CONTENT_HASH,
    ID,
    PREDICTED_LABEL,
    PREDICTED_INDEX,
    CONFIDENCE,
    TOP_K_LABELS,
    TOP_K_PROBABILITIES,
    LABEL,
    LABEL_INDEX,
    MODEL,
    MODEL_VERSION,
    BATCH,
)
#: predictions.parquet of an evaluation (the test split has no paths).
EVAL_PREDICTIONS_COLUMNS = (ID, LABEL_INDEX, PREDICTED_INDEX, CONFIDENCE)
