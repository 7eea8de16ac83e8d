"""Unit tests of the decode and conversion rules (sparkvision/ingest/images.py, docs/ingest.md)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sparkvision.config.params import ImageSpec, IngestParams
from sparkvision.ingest import images

GREY = IngestParams(image_shape="28x28x1")
COLOUR = IngestParams(image_shape="28x28x3")


def encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def pixels(decoded: images.Decoded, params: IngestParams) -> np.ndarray:
    return np.frombuffer(decoded.pixels, dtype=np.uint8).reshape(params.spec.shape)


@pytest.fixture(scope="module")
def bgr() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".gif", ".ppm"])
def test_formats_decode_and_header_dimensions_are_read(ext, bgr):
    data = encode(ext, bgr)
    assert images.header_dimensions(data) == (40, 30)
    decoded = images.decode(data, COLOUR)
    assert (decoded.orig_height, decoded.orig_width, decoded.orig_channels) == (40, 30, 3)
    assert len(decoded.pixels) == COLOUR.spec.nbytes


def test_sniff_names_formats_and_refuses_non_images(bgr):
    assert images.sniff(encode(".png", bgr)) == "png"
    assert images.sniff(encode(".jpg", bgr)) == "jpeg"
    assert images.sniff(b"BM this is text") is None  # "BM" alone is not a bitmap header
    assert images.sniff(b"%PDF-1.7\n") is None
    assert images.sniff(b"") is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", images.EMPTY),
        (b"hello, I am a text file\n", images.NOT_IMAGE),
        (b"PK\x03\x04" + bytes(100), images.NOT_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), images.TRUNCATED),
    ],
)
def test_bad_bytes_are_rejected_with_their_reason(data, reason):
    with pytest.raises(images.Rejected) as info:
        images.decode(data, GREY)
    assert info.value.reason == reason


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
def test_truncated_images_are_truncated_not_not_images(ext, bgr):
    data = encode(ext, bgr)
    for cut in (len(data) // 2, len(data) - 2):
        with pytest.raises(images.Rejected) as info:
            images.decode(data[:cut], COLOUR)
        assert info.value.reason == images.TRUNCATED, (ext, cut)


def test_float_and_signed_pixels_are_unsupported(bgr):
    for data in (encode(".tiff", bgr.astype(np.float32)), encode(".tiff", bgr.astype(np.int16))):
        with pytest.raises(images.Rejected) as info:
            images.decode(data, COLOUR)
        assert info.value.reason == images.UNSUPPORTED


def test_two_channel_arrays_are_unsupported():
    with pytest.raises(images.Rejected) as info:
        images.convert_channels(np.zeros((4, 4, 2), np.uint8), 3)
    assert info.value.reason == images.UNSUPPORTED


def test_bomb_guard_reads_the_header_before_decoding():
    # A PNG header that claims 100000 x 100000 pixels, followed by nothing decodable: the header
    # alone must reject it (decoding would say "truncated").
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (100_000).to_bytes(4, "big") * 2 + b"\x08\x00\x00\x00\x00"
    with pytest.raises(images.Rejected) as info:
        images.decode(header + bytes(16), GREY)
    assert info.value.reason == images.TOO_LARGE


def test_bomb_guard_on_a_real_image(bgr):
    with pytest.raises(images.Rejected) as info:
        images.decode(encode(".png", bgr), IngestParams(max_pixels=40 * 30 - 1))
    assert info.value.reason == images.TOO_LARGE
    assert images.decode(encode(".png", bgr), IngestParams(max_pixels=40 * 30)).orig_height == 40


def test_sixteen_bit_is_scaled_by_shifting():
    image = np.full((28, 28), 0xABCD, dtype=np.uint16)
    decoded = images.decode(encode(".png", image), GREY)
    assert pixels(decoded, GREY).max() == 0xAB
    assert decoded.orig_channels == 1


def test_alpha_is_composited_onto_the_background():
    bgra = np.zeros((28, 28, 4), np.uint8)
    bgra[..., :3] = 200  # stored colour under every pixel
    bgra[:14, :, 3] = 255  # top half opaque, bottom half transparent
    data = encode(".png", bgra)
    out = pixels(images.decode(data, COLOUR), COLOUR)
    assert (out[:14] == 200).all() and (out[14:] == 0).all()
    white = pixels(images.decode(data, IngestParams(image_shape="28x28x3", alpha_background=255)), COLOUR)
    assert (white[14:] == 255).all()
    assert images.decode(data, COLOUR).orig_channels == 4


def test_grey_to_colour_repeats_and_colour_is_rgb():
    grey = np.arange(28 * 28, dtype=np.uint16).reshape(28, 28).astype(np.uint8)
    out = pixels(images.decode(encode(".png", grey), COLOUR), COLOUR)
    assert (out[..., 0] == grey).all() and (out[..., 1] == grey).all() and (out[..., 2] == grey).all()
    bgr = np.zeros((28, 28, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's BGR order
    rgb = pixels(images.decode(encode(".png", bgr), COLOUR), COLOUR)
    assert (rgb[..., 2] == 255).all() and (rgb[..., 0] == 0).all()


def test_colour_to_grey_uses_bt601_weights():
    bgr = np.zeros((28, 28, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    out = pixels(images.decode(encode(".png", bgr), GREY), GREY)
    assert int(out[0, 0, 0]) == round(0.299 * 255)


@pytest.mark.parametrize("policy", images.RESIZE_POLICIES)
def test_every_policy_gives_the_target_shape(policy, bgr):
    spec = ImageSpec(64, 48, 3)
    for shape in [(10, 300), (300, 10), (64, 48), (7, 7)]:
        image = cv2.resize(bgr, (shape[1], shape[0]))
        out = images.resize(image, spec, policy)
        assert out.shape == spec.shape, (policy, shape)


def test_pad_letterboxes_and_crop_cuts_the_centre():
    wide = np.full((10, 40, 1), 255, np.uint8)  # a white 1:4 strip
    padded = images.resize(wide, ImageSpec(40, 40, 1), "pad", background=0)
    assert (padded[:15] == 0).all() and (padded[15:25] == 255).all() and (padded[25:] == 0).all()
    stripes = np.zeros((10, 40, 1), np.uint8)
    stripes[:, 15:25] = 255  # a white centre band, black sides
    cropped = images.resize(stripes, ImageSpec(10, 10, 1), "crop")
    assert (cropped == 255).all()
    stretched = images.resize(wide, ImageSpec(40, 40, 1), "stretch")
    assert (stretched == 255).all()


def test_stable_id_and_content_hash_are_deterministic():
    assert images.stable_id("bag/train-00001.png") == images.stable_id("bag/train-00001.png")
    assert images.stable_id("bag/train-00001.png") != images.stable_id("bag/train-00002.png")
    assert images.content_hash(b"abc") == images.content_hash(b"abc")
