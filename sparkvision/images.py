"""Decoding and validating one image file: pure functions, no Spark.

Conversion rules (documented in docs/ingest.md and tested):

- 16-bit images are scaled to 8 bits (``value >> 8``); float images are rejected as unsupported.
- An alpha channel is dropped: the colour channels are kept as stored (transparent pixels keep
  their stored colour).
- Grayscale to colour repeats the grey value; colour to grayscale uses OpenCV's BGR2GRAY
  (ITU-R BT.601 weights). Colour pixels are stored in RGB order.
- Resizing to the target shape ignores aspect ratio (``stretch``): INTER_AREA when shrinking,
  INTER_LINEAR when enlarging.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from sparkvision.schema import ImageSpec

# Reasons a file is quarantined; each is a value of the rejects table's `reason` column.
EMPTY = "empty_file"
CORRUPT = "corrupt_or_not_image"
UNSUPPORTED = "unsupported_type"
TOO_LARGE = "dimensions_over_limit"
NO_LABEL = "no_label_folder"
BAD_LABEL = "unsafe_label_name"
UNREADABLE = "unreadable_file"

#: Decompression-bomb guard: images with more pixels than this are refused before decoding.
DEFAULT_MAX_PIXELS = 50_000_000


class Rejected(Exception):
    """A file that cannot become a curated image, with the reason and a human detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Decoded:
    pixels: bytes
    orig_height: int
    orig_width: int
    orig_channels: int


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_id(relative_path: str) -> str:
    """A short id that stays the same for the same file path in every version of a dataset."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def header_dimensions(data: bytes) -> tuple[int, int] | None:
    """(height, width) read from a PNG/JPEG/BMP header without decoding pixels, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if data[:2] == b"BM" and len(data) >= 26:
        return abs(int.from_bytes(data[22:26], "little", signed=True)), int.from_bytes(
            data[18:22], "little", signed=True
        )
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
            i += 2 + length
    return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    raise Rejected(UNSUPPORTED, f"pixel type {image.dtype} is not supported (8- or 16-bit only)")


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """OpenCV's decoded HxW / HxWx3 (BGR) / HxWx4 (BGRA) to HxWx1 grey or HxWx3 RGB."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]  # alpha dropped (see module docstring)
    if image.shape[2] == 1:
        return image if channels == 1 else np.repeat(image, 3, axis=2)
    if image.shape[2] != 3:
        raise Rejected(UNSUPPORTED, f"{image.shape[2]} channels are not supported")
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize(image: np.ndarray, spec: ImageSpec) -> np.ndarray:
    height, width = image.shape[:2]
    if (height, width) == (spec.height, spec.width):
        return image
    shrinking = height * width > spec.height * spec.width
    resized = cv2.resize(
        image, (spec.width, spec.height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )
    return resized.reshape(spec.height, spec.width, image.shape[2])


def decode(data: bytes, spec: ImageSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode, validate and convert one file's bytes to ``spec``; raise Rejected when unusable."""
    if len(data) == 0:
        raise Rejected(EMPTY, "the file has zero bytes")
    dims = header_dimensions(data)
    if dims is not None and dims[0] * dims[1] > max_pixels:
        raise Rejected(TOO_LARGE, f"{dims[0]}x{dims[1]} pixels is over the limit of {max_pixels}")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise Rejected(CORRUPT, "OpenCV could not decode the file (truncated, corrupt or not an image)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise Rejected(TOO_LARGE, f"{image.shape[0]}x{image.shape[1]} pixels is over the limit of {max_pixels}")
    orig_channels = 1 if image.ndim == 2 else image.shape[2]
    pixels = resize(convert_channels(to_uint8(image), spec.channels), spec)
    return Decoded(np.ascontiguousarray(pixels).tobytes(), image.shape[0], image.shape[1], orig_channels)
