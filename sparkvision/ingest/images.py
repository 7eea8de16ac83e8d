"""Decoding and validating one image file: pure functions, no Spark.

Every rule below is documented in docs/ingest.md and tested in tests/unit/test_images.py.

- **Type sniffing.** The first bytes decide what a file is: a known image signature (PNG, JPEG,
  BMP, GIF, WebP, TIFF, PNM/PFM, JPEG 2000, Sun raster, Radiance HDR, OpenEXR, AVIF, HEIC) or
  not an image at all. A known image that OpenCV cannot decode is truncated or corrupt; one whose
  format this OpenCV build does not decode (OpenEXR, HEIC) or whose pixels it cannot convert
  (float, signed, 2-channel) is an unsupported type.
- **Decompression-bomb guard.** Width and height are read from the header of PNG, JPEG, BMP,
  GIF, WebP, TIFF and PNM files before any pixel is decoded; other formats are checked right
  after decoding (and OpenCV's own 2^30-pixel limit applies to them first).
- **Depth.** 8-bit stays as is; 16-bit is scaled to 8 bits by ``value >> 8``.
- **Alpha.** Composited onto a uniform background (``alpha_background``, default 0 = black):
  ``out = colour * a + background * (1 - a)``, so transparent pixels read as background whatever
  colour they store.
- **Channels.** Grey to colour repeats the grey value; colour to grey uses OpenCV's BGR2GRAY
  (ITU-R BT.601 weights). Colour pixels are stored in RGB order.
- **Orientation.** JPEG files are turned upright by their EXIF orientation; other formats are
  used as stored.
- **Resize policy.** ``stretch`` (default) scales to the target ignoring aspect ratio; ``pad``
  scales to fit inside the target keeping aspect ratio and letterboxes with the background
  value; ``crop`` scales to cover the target keeping aspect ratio and cuts the centre.
  INTER_AREA when shrinking, INTER_LINEAR when enlarging.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from sparkvision.config.params import RESIZE_POLICIES, ImageSpec, IngestParams

# Rejected files are reported in the rejects table; OpenCV's own per-file log lines are noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Reasons a file is quarantined: the values of the rejects table's `reason` column.
EMPTY = "empty_file"
TRUNCATED = "truncated_or_corrupt"
NOT_IMAGE = "not_an_image"
UNSUPPORTED = "unsupported_type"
TOO_LARGE = "dimensions_over_limit"
FILE_TOO_LARGE = "file_over_size_limit"
NO_LABEL = "no_label_folder"
BAD_LABEL = "unsafe_label_name"
UNREADABLE = "unreadable_file"
DUPLICATE = "duplicate_content"

#: Every reason with its meaning (docs/ingest.md shows this table).
REASONS: dict[str, str] = {
    EMPTY: "the file has zero bytes",
    TRUNCATED: "a known image signature, but OpenCV cannot decode the file (cut short or damaged)",
    NOT_IMAGE: "no known image signature (text, archive, PDF, ...)",
    UNSUPPORTED: "an image format or pixel type not converted here (float, signed, 2-channel, OpenEXR, HEIC)",
    TOO_LARGE: "width x height over max_pixels (checked from the header, before decoding)",
    FILE_TOO_LARGE: "file size over max_file_bytes (never read)",
    NO_LABEL: "the file is not inside a <label>/ folder",
    BAD_LABEL: "the label folder name breaks the safe naming rule",
    UNREADABLE: "listed, but could not be read (permissions, I/O error, vanished before reading)",
    DUPLICATE: "same content hash as an earlier path (only with drop_duplicates)",
}

# Formats that OpenCV is built without here (or that need an opt-in): decode failure = unsupported.
_OPTIONAL_FORMATS = {"exr", "heif"}


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


def sniff(data: bytes) -> str | None:
    """The image format named by the file's first bytes, or None when it has no image signature."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"BM") and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567fF" and head[2:3] in b" \t\r\n":
        return "pnm"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head.startswith(b"\x59\xa6\x6a\x95"):
        return "sunraster"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "hdr"
    if head.startswith(b"\x76\x2f\x31\x01"):
        return "exr"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "avif"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "heif"
    return None


_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_dimensions(data: bytes, fmt: str | None = None) -> tuple[int, int] | None:
    """(height, width) read from the header without decoding pixels, or None when not known."""
    fmt = fmt or sniff(data)
    try:
        if fmt == "png" and len(data) >= 24:
            return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
        if fmt == "bmp" and len(data) >= 26:
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit fields
                return int.from_bytes(data[20:22], "little"), int.from_bytes(data[18:20], "little")
            height = abs(int.from_bytes(data[22:26], "little", signed=True))
            return height, abs(int.from_bytes(data[18:22], "little", signed=True))
        if fmt == "gif" and len(data) >= 10:
            return int.from_bytes(data[8:10], "little"), int.from_bytes(data[6:8], "little")
        if fmt == "jpeg":
            return _jpeg_dimensions(data)
        if fmt == "webp":
            return _webp_dimensions(data)
        if fmt == "tiff":
            return _tiff_dimensions(data)
        if fmt == "pnm":
            return _pnm_dimensions(data)
    except (IndexError, ValueError):
        return None
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[27:30], "little"), 1 + int.from_bytes(data[24:27], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[28:30], "little") & 0x3FFF, int.from_bytes(data[26:28], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def _tiff_dimensions(data: bytes) -> tuple[int, int] | None:
    order = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[offset : offset + 2], order)
    width = height = None
    for n in range(count):
        entry = data[offset + 2 + 12 * n : offset + 14 + 12 * n]
        if len(entry) < 12:
            return None
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        value = int.from_bytes(entry[8:10], order) if kind == 3 else int.from_bytes(entry[8:12], order)
        if tag == 256:
            width = value
        elif tag == 257:
            height = value
    return (height, width) if width is not None and height is not None else None


def _pnm_dimensions(data: bytes) -> tuple[int, int] | None:
    if data[1:2] == b"7":  # PAM: WIDTH/HEIGHT lines
        fields = dict(line.split(None, 1) for line in data[:512].split(b"\n")[1:] if b" " in line)
        return int(fields[b"HEIGHT"]), int(fields[b"WIDTH"])
    tokens: list[bytes] = []
    for line in data[2:512].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[1]), int(tokens[0])
    return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    raise Rejected(UNSUPPORTED, f"pixel type {image.dtype} is not supported (8- or 16-bit unsigned only)")


def convert_channels(image: np.ndarray, channels: int, background: int = 0) -> np.ndarray:
    """OpenCV's decoded HxW / HxWx3 (BGR) / HxWx4 (BGRA) uint8 to HxWx1 grey or HxWx3 RGB."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        blended = image[:, :, :3].astype(np.float32) * alpha + float(background) * (1.0 - alpha)
        image = np.rint(blended).astype(np.uint8)
    if image.shape[2] == 1:
        return image if channels == 1 else np.repeat(image, 3, axis=2)
    if image.shape[2] != 3:
        raise Rejected(UNSUPPORTED, f"{image.shape[2]} channels are not supported (1, 3 or 4)")
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _scale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return resized.reshape(height, width, image.shape[2])


def resize(image: np.ndarray, spec: ImageSpec, policy: str, background: int = 0) -> np.ndarray:
    """HxWxC uint8 to ``spec``'s height and width under a resize policy (see module docstring)."""
    height, width = image.shape[:2]
    if (height, width) == (spec.height, spec.width):
        return image
    if policy == "stretch":
        return _scale(image, spec.height, spec.width)
    if policy == "pad":
        factor = min(spec.height / height, spec.width / width)
        new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
        scaled = _scale(image, min(new_h, spec.height), min(new_w, spec.width))
        out = np.full((spec.height, spec.width, image.shape[2]), background, dtype=np.uint8)
        top, left = (spec.height - scaled.shape[0]) // 2, (spec.width - scaled.shape[1]) // 2
        out[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
        return out
    if policy == "crop":
        factor = max(spec.height / height, spec.width / width)
        new_h, new_w = max(spec.height, round(height * factor)), max(spec.width, round(width * factor))
        scaled = _scale(image, new_h, new_w)
        top, left = (new_h - spec.height) // 2, (new_w - spec.width) // 2
        return scaled[top : top + spec.height, left : left + spec.width]
    raise ValueError(f"unknown resize policy {policy!r}; expected one of {RESIZE_POLICIES}")


def decode(data: bytes, params: IngestParams) -> Decoded:
    """Decode, validate and convert one file's bytes as ``params`` say; raise Rejected when unusable.

    ``params``: the target shape (``spec``), ``max_pixels``, ``resize_policy`` and ``alpha_background``.
    """
    pixels, height, width, channels = decode_array(data, params)
    return Decoded(pixels.tobytes(), height, width, channels)


def decode_array(data: bytes, params: IngestParams) -> tuple[np.ndarray, int, int, int]:
    """``decode`` without the copy to bytes: (HxWxC uint8 array, original height, width, channels)."""
    return decode_pixels(data, params.spec, params.max_pixels, params.resize_policy, params.alpha_background)


def decode_pixels(
    data: bytes, spec: ImageSpec, max_pixels: int, resize_policy: str, background: int
) -> tuple[np.ndarray, int, int, int]:
    """``decode_array`` with the parameters taken apart (a decode loop parses ``image_shape`` once)."""
    if len(data) == 0:
        raise Rejected(EMPTY, "the file has zero bytes")
    fmt = sniff(data)
    if fmt is None:
        raise Rejected(NOT_IMAGE, f"no image signature (starts with {bytes(data[:8])!r})")
    dims = header_dimensions(data, fmt)
    if dims is not None and dims[0] * dims[1] > max_pixels:
        raise Rejected(TOO_LARGE, f"{fmt} header says {dims[0]}x{dims[1]} pixels, over the limit of {max_pixels}")
    # IMREAD_UNCHANGED keeps alpha and 16 bits but ignores EXIF orientation; JPEG has no alpha
    # and at most 12 bits, so it is decoded with orientation applied.
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        image, error = None, str(exc).strip().splitlines()[-1]
    else:
        error = ""
    if image is None or image.size == 0:
        if fmt in _OPTIONAL_FORMATS:
            raise Rejected(UNSUPPORTED, f"{fmt} is not decoded by this OpenCV build")
        raise Rejected(TRUNCATED, f"{fmt} signature, but OpenCV could not decode it {error}".rstrip())
    if fmt == "jpeg" and not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        # libjpeg fills a cut-off scan with grey and still returns an image
        raise Rejected(TRUNCATED, "jpeg without its end-of-image marker (file cut short)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise Rejected(TOO_LARGE, f"{image.shape[0]}x{image.shape[1]} pixels is over the limit of {max_pixels}")
    orig_channels = 1 if image.ndim == 2 else image.shape[2]
    pixels = resize(convert_channels(to_uint8(image), spec.channels, background), spec, resize_policy, background)
    return np.ascontiguousarray(pixels), image.shape[0], image.shape[1], orig_channels
