"""detectors.media: decoding from bytes in memory, limits checked before decoding."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, features

from detectors import media
from detectors.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    OversizedRegion,
    TooManyBytes,
    TooManyFrames,
    TooManyPixels,
    UnsupportedFormat,
)
from detectors.media import DecodedMedia, decode, frames, guards, probe, sample_indices, still
from detectors.settings import MediaLimits
from tests.support import imagegen as gen

LIMITS = MediaLimits()
# sample_indices(3000, 8), written out: i * 2999 / 7, rounded
SAMPLED_3000 = [0, 428, 857, 1285, 1714, 2142, 2571, 2999]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def only_frame(result: DecodedMedia) -> np.ndarray:
    assert len(result.frames) == 1
    return result.frames[0].rgb


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return gen.photo("coffee")  # 600x400


# --- formats ---------------------------------------------------------------------

STILL_FORMATS = [
    # name, encoder, reported format, largest mean difference from the source
    ("jpeg", lambda rgb: gen.jpeg_bytes(rgb, 92), "JPEG", 4.0),
    ("progressive-jpeg", lambda rgb: gen.jpeg_bytes(rgb, 92, progressive=True), "JPEG", 4.0),
    ("png", gen.png_bytes, "PNG", 0.0),
    ("webp-lossless", gen.webp_bytes, "WEBP", 0.0),
    ("webp-lossy", lambda rgb: gen.webp_bytes(rgb, lossless=False, quality=90), "WEBP", 5.0),
    ("gif", lambda rgb: gen.encode(rgb, "GIF"), "GIF", 12.0),
    ("bmp", lambda rgb: gen.encode(rgb, "BMP"), "BMP", 0.0),
    ("tiff", lambda rgb: gen.encode(rgb, "TIFF"), "TIFF", 0.0),
    ("tiff-deflate", lambda rgb: gen.encode(rgb, "TIFF", compression="tiff_adobe_deflate"), "TIFF", 0.0),
    ("heif", lambda rgb: gen.encode(rgb, "HEIF", quality=90), "HEIF", 5.0),
]
if features.check("avif"):
    STILL_FORMATS.append(("avif", lambda rgb: gen.encode(rgb, "AVIF", quality=90), "AVIF", 5.0))


@pytest.mark.parametrize("name,encoder,fmt,tolerance", STILL_FORMATS, ids=[f[0] for f in STILL_FORMATS])
def test_still_formats_decode_to_the_source_pixels(coffee, name, encoder, fmt, tolerance):
    data = encoder(coffee)
    result = decode(data, LIMITS)
    assert (result.format, result.width, result.height) == (fmt, 600, 400)
    assert (result.frame_count, result.animated) == (1, False)
    rgb = only_frame(result)
    assert result.frames[0].index == 0
    assert rgb.shape == (400, 600, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert mean_abs_diff(rgb, coffee) <= tolerance
    assert probe(data, LIMITS) == (fmt, 600, 400)


def test_frames_are_read_only_so_no_consumer_changes_them_for_the_others(coffee):
    rgb = only_frame(decode(gen.png_bytes(coffee), LIMITS))
    with pytest.raises(ValueError):
        rgb[0, 0] = 0


def test_mpo_from_a_camera_gives_its_primary_picture_only():
    data = gen.mpo_bytes(gen.photo("coffee"), gen.photo("chelsea"))
    result = decode(data, LIMITS)
    assert (result.format, result.width, result.height, result.frame_count) == ("JPEG", 600, 400, 1)
    assert mean_abs_diff(only_frame(result), gen.photo("coffee")) < 4


def test_stored_test_photos_decode():
    for name, size in {
        "astronaut.jpg": (512, 512),
        "coffee.jpg": (600, 400),
        "chelsea.jpg": (451, 300),
        "rocket.jpg": (640, 427),
    }.items():
        result = decode(gen.photo_bytes(name), LIMITS)
        assert (result.format, result.width, result.height) == ("JPEG", *size)
        assert mean_abs_diff(only_frame(result), gen.photo(name.split(".")[0])) < 1


# --- content decides, not names ----------------------------------------------------


def test_a_png_named_like_a_jpeg_still_decodes_as_png(tmp_path, coffee):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(gen.png_bytes(coffee))
    result = decode(path.read_bytes(), LIMITS)
    assert result.format == "PNG"
    assert np.array_equal(only_frame(result), coffee)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"hello, this is plain text\nand nothing else\n", "plain text"),
        (b"<!DOCTYPE html><html><body><img src=x></body></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"BMW is a car maker from Bavaria", "plain text"),  # starts like a BMP
    ],
    ids=["text", "html", "pdf", "svg", "bm-text"],
)
def test_non_media_bytes_are_unsupported_and_say_what_they_are(data, words):
    with pytest.raises(UnsupportedFormat, match=words):
        decode(data, LIMITS)
    with pytest.raises(UnsupportedFormat):
        probe(data, LIMITS)


def test_a_zip_archive_is_unsupported(coffee):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.jpg", gen.jpeg_bytes(coffee))
    with pytest.raises(UnsupportedFormat, match="ZIP"):
        decode(buf.getvalue(), LIMITS)


def test_random_bytes_are_unsupported():
    noise = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedFormat):
        decode(noise, LIMITS)


def test_zero_bytes_are_empty():
    with pytest.raises(EmptyMedia):
        decode(b"", LIMITS)
    with pytest.raises(EmptyMedia):
        probe(b"", LIMITS)


# --- broken files -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "name,encoder",
    [
        ("jpeg", lambda rgb: gen.jpeg_bytes(rgb, 90)),
        ("png", gen.png_bytes),
        ("webp", gen.webp_bytes),
        ("gif", lambda rgb: gen.encode(rgb, "GIF")),
        ("tiff", lambda rgb: gen.encode(rgb, "TIFF")),
        ("heif", lambda rgb: gen.encode(rgb, "HEIF")),
    ],
)
def test_truncated_files_are_corrupt(coffee, name, encoder):
    data = encoder(coffee)
    for cut in (len(data) // 2, 40):
        with pytest.raises(CorruptMedia):
            decode(data[:cut], LIMITS)


def test_a_valid_header_followed_by_noise_is_corrupt(coffee):
    noise = np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    for data in (gen.jpeg_bytes(coffee)[:700] + noise, gen.png_bytes(coffee)[:33] + noise):
        with pytest.raises(CorruptMedia):
            decode(data, LIMITS)


def test_truncated_and_garbled_videos_are_corrupt():
    data = gen.mp4_bytes(gen.index_frames(20))
    with pytest.raises(CorruptMedia):
        decode(data[:1500], LIMITS)
    with pytest.raises(CorruptMedia):
        decode(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4, LIMITS)


def _png_header(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR size rewritten and the chunk's checksum made right again."""
    d = bytearray(data)
    d[16:24] = struct.pack(">II", width, height)
    d[29:33] = struct.pack(">I", zlib.crc32(bytes(d[12:29])))
    return bytes(d)


def _jpeg_patch(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    """The JPEG with ``value`` written ``offset`` bytes after the first ``marker`` segment starts."""
    at = data.index(marker) + offset
    return data[:at] + value + data[at + len(value) :]


def _jpeg_without_scan_header(data: bytes) -> bytes:
    sos = data.index(b"\xff\xda")
    return data[:sos] + data[sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0] :]


def _flip_idat_byte(data: bytes) -> bytes:
    at = data.index(b"IDAT") + 10
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


DAMAGED = [
    # name, damage, the error it must end in (its exact class)
    ("png-header-checksum", lambda png, jpg: png[:29] + bytes([png[29] ^ 0xFF]) + png[30:], CorruptMedia),
    ("png-zero-width", lambda png, jpg: _png_header(png, 0, 400), CorruptMedia),
    ("png-image-data", lambda png, jpg: _flip_idat_byte(png), CorruptMedia),
    ("png-declares-huge", lambda png, jpg: _png_header(png, 40000, 40000), TooManyPixels),
    ("jpeg-zero-height", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xc0", 5, b"\x00\x00"), CorruptMedia),
    ("jpeg-3-bit-samples", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xc0", 4, b"\x03"), CorruptMedia),
    ("jpeg-7-components", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xc0", 9, b"\x07"), CorruptMedia),
    ("jpeg-huffman-table-length", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xc4", 2, b"\x00\x01"), CorruptMedia),
    ("jpeg-quant-table-id", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xdb", 4, b"\x05"), CorruptMedia),
    ("jpeg-scan-marker", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xda", 1, b"\x01"), CorruptMedia),
    ("jpeg-no-scan-header", lambda png, jpg: _jpeg_without_scan_header(jpg), CorruptMedia),
    ("jpeg-declares-huge", lambda png, jpg: _jpeg_patch(jpg, b"\xff\xc0", 5, b"\xea\x60\xea\x60"), TooManyPixels),
]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("name,damage,error", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_each_kind_of_damage_ends_in_its_own_error(coffee, name, damage, error):
    damaged = damage(gen.png_bytes(coffee), gen.jpeg_bytes(coffee))
    with pytest.raises(MediaError) as caught:
        decode(damaged, LIMITS)
    assert type(caught.value) is error, f"{name}: {type(caught.value).__name__}: {caught.value}"


def test_flipped_bytes_end_in_corrupt_media_or_a_whole_image(coffee):
    """Bytes flipped all over a file: every PNG chunk carries a checksum, so each damaged PNG is
    CorruptMedia. A JPEG's coded data has none: a flipped byte there is another picture, which
    decodes whole (and is scanned like any other); damage the decoder notices is CorruptMedia."""
    rng = np.random.default_rng(11)
    jpeg_outcomes = []
    for kind, data in (("png", gen.png_bytes(coffee)), ("jpeg", gen.jpeg_bytes(coffee))):
        for _ in range(30):
            damaged = bytearray(data)
            for pos in rng.integers(8, len(data), 20):
                damaged[pos] ^= 0xFF
            try:
                result = decode(bytes(damaged), LIMITS)
            except MediaError as exc:
                assert type(exc) is CorruptMedia, f"{kind}: {type(exc).__name__}: {exc}"
                assert "truncated or corrupt" in str(exc)
                if kind == "jpeg":
                    jpeg_outcomes.append("corrupt")
                continue
            assert kind == "jpeg", "a PNG with flipped bytes decoded: its chunk checksums were not checked"
            assert only_frame(result).shape == coffee.shape
            jpeg_outcomes.append("decoded")
    assert {"corrupt", "decoded"} <= set(jpeg_outcomes)  # both paths taken, each checked above


# --- limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"lossless": True}, {"lossless": False}, {"lossless": False, "exif": b"Exif"}],
    ids=["VP8L", "VP8", "VP8X"],
)
def test_webp_sizes_are_read_before_pillow_allocates_the_canvas(params):
    data = gen.webp_bytes(np.zeros((37, 53, 3), np.uint8), **params)
    assert still._webp_canvas(data) == (53, 37)
    with pytest.raises(TooManyPixels) as caught:
        probe(data, MediaLimits(max_pixels=53 * 37 - 1))
    assert (caught.value.width, caught.value.height) == (53, 37)


def test_bytearray_and_memoryview_are_accepted(coffee):
    data = gen.png_bytes(coffee)
    for view in (bytearray(data), memoryview(data)):
        assert np.array_equal(only_frame(decode(view, LIMITS)), coffee)
        assert probe(view, LIMITS) == ("PNG", 600, 400)


def test_too_many_bytes_is_checked_first():
    with pytest.raises(TooManyBytes) as caught:
        decode(b"not even an image" * 100, MediaLimits(max_bytes=1000))
    assert (caught.value.size, caught.value.limit) == (1700, 1000)
    with pytest.raises(TooManyBytes):
        probe(gen.bomb_png(100_000, 100_000), MediaLimits(max_bytes=10))


@pytest.mark.parametrize(
    "name,bomb,size",
    [
        ("png", gen.bomb_png(100_000, 100_000), (100_000, 100_000)),
        ("gif", gen.bomb_gif(65_535, 65_535), (65_535, 65_535)),
        ("webp", gen.bomb_webp(16_384, 16_384), (16_384, 16_384)),
    ],
)
def test_decompression_bombs_are_refused_from_the_header(name, bomb, size):
    # A few hundred bytes declaring billions of pixels: decoding them would need
    # gigabytes, so getting the error at all shows nothing was decoded.
    assert len(bomb) < 500
    for call in (decode, probe):
        with pytest.raises(TooManyPixels) as caught:
            call(bomb, LIMITS)
        assert (caught.value.width, caught.value.height, caught.value.limit) == (*size, LIMITS.max_pixels)


def test_max_pixels_is_exact(coffee):
    data = gen.png_bytes(coffee)
    assert decode(data, MediaLimits(max_pixels=600 * 400)).width == 600
    with pytest.raises(TooManyPixels, match="600x400"):
        decode(data, MediaLimits(max_pixels=600 * 400 - 1))


def test_a_gif_frame_that_overhangs_the_screen_counts_against_max_pixels():
    # found before decoding: reading that frame would trip Pillow's guard first
    data = gen.overhanging_gif((16, 16), (20_000, 20_000))
    with pytest.raises(TooManyPixels) as caught:
        decode(data, LIMITS)
    assert type(caught.value) is TooManyPixels
    assert (caught.value.width, caught.value.height) == (20_000, 20_000)


def test_pillows_own_bomb_guard_becomes_a_media_error():
    # With Vigil's limit set above Pillow's, Pillow's guard fires first, while it
    # reads a frame that overhangs the screen; it must still end as a MediaError.
    huge = MediaLimits(max_pixels=10**10)
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(OversizedRegion) as caught:
        decode(gen.bomb_gif(20_000, 20_000, screen=(16, 16)), huge)
    assert caught.value.pixels == 20_000 * 20_000
    assert isinstance(caught.value, TooManyPixels)
    # ... and so must the warning Pillow gives for smaller ones, where warnings are errors
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(OversizedRegion) as caught:
            decode(gen.bomb_gif(10_000, 10_000, screen=(16, 16)), huge)
    assert caught.value.pixels == 10_000 * 10_000
    assert before == Image.MAX_IMAGE_PIXELS  # never changed


def test_a_file_with_more_frames_than_vigil_reads_is_refused():
    with pytest.raises(TooManyFrames) as caught:
        decode(gen.many_frames_gif(media.MAX_TOTAL_FRAMES + 1), LIMITS)
    assert caught.value.frames > media.MAX_TOTAL_FRAMES
    assert caught.value.limit == media.MAX_TOTAL_FRAMES
    assert decode(gen.many_frames_gif(500), LIMITS).frame_count == 500


def test_decoding_work_is_bounded_for_animations_and_videos(monkeypatch):
    # 40 frames of 64x64 decode 163840 pixels; allow less than that
    monkeypatch.setattr(guards, "MAX_DECODED_PIXELS", 30 * 64 * 64)
    frames = gen.index_frames(40)
    for data in (
        gen.animated_gif_bytes(frames),
        gen.webp_animated_bytes(frames),
        gen.apng_bytes(frames),
        gen.mp4_bytes(frames, gop=40),
    ):
        with pytest.raises(TooManyFrames) as caught:
            decode(data, LIMITS)
        assert caught.value.limit == 30
    # sampling pages of a TIFF does not decode the others: allowed
    assert decode(gen.multipage_tiff_bytes(frames), LIMITS).frame_count == 40


# --- orientation ----------------------------------------------------------------------

# What a viewer shows for each EXIF orientation of the stored pixels.
SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def quadrants(height: int = 64, width: int = 96) -> np.ndarray:
    """Four flat colours and a white corner mark: every flip and turn looks different."""
    a = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    a[:h2, :w2], a[:h2, w2:], a[h2:, :w2], a[h2:, w2:] = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
    a[: h2 // 2, : w2 // 2] = (255, 255, 255)
    return a


def cell_colours(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of each 4x4 cell's middle, robust to JPEG's smearing at edges."""
    h, w = rgb.shape[:2]
    cells = np.zeros((4, 4, 3))
    for r in range(4):
        for c in range(4):
            y, x = (2 * r + 1) * h // 8, (2 * c + 1) * w // 8
            cells[r, c] = rgb[y - 2 : y + 2, x - 2 : x + 2].reshape(-1, 3).mean(axis=0)
    return cells


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    stored = quadrants()
    shown = SHOWN[orientation](stored)
    exif = gen.exif_orientation(orientation)

    jpeg = decode(gen.jpeg_bytes(stored, 95, orientation=orientation), LIMITS)
    assert (jpeg.height, jpeg.width) == shown.shape[:2]
    assert np.abs(cell_colours(only_frame(jpeg)) - cell_colours(shown)).max() < 12

    for data in (
        gen.png_bytes(stored, exif=exif),
        gen.webp_bytes(stored, exif=exif),
        gen.encode(stored, "TIFF", exif=exif),
    ):
        result = decode(data, LIMITS)
        assert (result.height, result.width) == shown.shape[:2]
        assert np.array_equal(only_frame(result), shown)


def test_orientation_and_reduction_together():
    stored = np.kron(quadrants(), np.ones((10, 10, 1), np.uint8))  # 960x640
    result = decode(gen.jpeg_bytes(stored, 95, orientation=6), LIMITS, min_side=160)
    assert (result.width, result.height) == (640, 960)
    rgb = only_frame(result)
    assert rgb.shape == (240, 160, 3)  # 1/4 leaves the short side at exactly 160
    shown = np.rot90(stored, -1)
    assert np.abs(cell_colours(rgb) - cell_colours(shown)).max() < 12


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_damaged_exif_block_counts_as_upright(coffee):
    data = gen.jpeg_bytes(coffee, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    result = decode(data, LIMITS)
    assert (result.width, result.height) == (600, 400)


# --- reduced decoding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg() -> tuple[np.ndarray, bytes]:
    rgb = np.asarray(Image.fromarray(gen.photo("coffee")).resize((1280, 960), Image.Resampling.BICUBIC))
    return rgb, gen.jpeg_bytes(rgb, 90)


def test_min_side_decodes_a_jpeg_smaller_keeping_the_short_side(big_jpeg):
    source, data = big_jpeg
    result = decode(data, LIMITS, min_side=320)
    assert (result.width, result.height) == (1280, 960)  # the source's size
    rgb = only_frame(result)
    assert rgb.shape == (480, 640, 3)  # 1/2: at 1/4 the short side (240) would be < 320
    reference = np.asarray(Image.fromarray(source).reduce(2))
    assert mean_abs_diff(rgb, reference) < 4


def test_min_side_uses_libjpegs_scaled_decoding(big_jpeg):
    # exactly what libjpeg gives when asked for 1/2 size, not a full decode shrunk afterwards
    with Image.open(io.BytesIO(big_jpeg[1])) as im:
        im.draft("RGB", (320, 320))
        scaled = np.asarray(im.convert("RGB"))
        assert scaled.shape == (480, 640, 3)
    full = only_frame(decode(big_jpeg[1], LIMITS))
    assert not np.array_equal(np.asarray(Image.fromarray(full).reduce(2)), scaled)
    assert np.array_equal(only_frame(decode(big_jpeg[1], LIMITS, min_side=320)), scaled)


@pytest.mark.parametrize(
    "min_side,shape",
    [(100, (120, 160, 3)), (240, (240, 320, 3)), (481, (960, 1280, 3)), (5000, (960, 1280, 3)), (None, (960, 1280, 3))],
)
def test_min_side_picks_the_largest_power_of_two(big_jpeg, min_side, shape):
    rgb = only_frame(decode(big_jpeg[1], LIMITS, min_side=min_side))
    assert rgb.shape == shape
    if min_side is not None:
        assert min(rgb.shape[:2]) >= min(min_side, 960)


def test_min_side_gives_every_format_the_same_size(big_jpeg):
    source = np.asarray(Image.fromarray(big_jpeg[0]).reduce(2))  # 640x480
    shapes = {
        fmt: only_frame(decode(blob, LIMITS, min_side=100)).shape
        for fmt, blob in {
            "jpeg": gen.jpeg_bytes(source),
            "png": gen.png_bytes(source),
            "webp": gen.webp_bytes(source),
            "heif": gen.encode(source, "HEIF"),
            "gif": gen.encode(source, "GIF"),
        }.items()
    }
    assert shapes == dict.fromkeys(shapes, (120, 160, 3))  # 1/4
    # reduction beyond JPEG's 1/8 comes from the box filter
    assert only_frame(decode(big_jpeg[1], LIMITS, min_side=50)).shape == (60, 80, 3)  # 1/16


def test_min_side_must_be_positive(coffee):
    with pytest.raises(ValueError):
        decode(gen.png_bytes(coffee), LIMITS, min_side=0)


# --- colour modes -----------------------------------------------------------------------


def test_cmyk_jpeg_and_tiff_become_rgb():
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:8] = (0, 255, 255, 0)  # magenta + yellow ink: red
    cmyk[8:] = (0, 0, 0, 255)  # black ink
    for data in (gen.cmyk_jpeg_bytes(cmyk), gen.encode(Image.fromarray(cmyk, "CMYK"), "TIFF")):
        rgb = only_frame(decode(data, LIMITS))
        assert np.abs(rgb[3, 3].astype(int) - (255, 0, 0)).max() <= 3
        assert rgb[12, 12].max() <= 3


def test_sixteen_bit_images_keep_their_brightness():
    grey = np.zeros((8, 8), np.uint16)
    grey[:4], grey[4:] = 0x8000, 0xFFFF
    for data in (gen.png_bytes(grey), gen.encode(Image.fromarray(grey.astype("<u2")), "TIFF")):
        rgb = only_frame(decode(data, LIMITS))
        assert rgb[0, 0].tolist() == [128, 128, 128]  # Pillow's own conversion would clip to 255
        assert rgb[7, 7].tolist() == [255, 255, 255]
    colour = np.zeros((4, 4, 3), np.uint16)
    colour[...] = (0x1234, 0xABCD, 0xFF00)
    assert only_frame(decode(gen.png16_rgb_bytes(colour), LIMITS))[0, 0].tolist() == [0x12, 0xAB, 0xFF]


def palette_image(transparency: object = None) -> Image.Image:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putpixel((1, 1), 1)
    im.putpixel((2, 2), 2)
    return im


def test_palette_images_with_and_without_transparency():
    plain = only_frame(decode(gen.png_bytes(palette_image()), LIMITS))
    assert plain[0, 0].tolist() == [10, 20, 30] and plain[1, 1].tolist() == [200, 100, 50]

    keyed = only_frame(decode(gen.png_bytes(palette_image(), transparency=0), LIMITS))
    assert keyed[0, 0].tolist() == [255, 255, 255]  # transparent index shown over white
    assert keyed[1, 1].tolist() == [200, 100, 50]

    # per-entry alpha (tRNS with several values): entry 2 is half transparent blue
    partial = only_frame(decode(gen.png_bytes(palette_image(), transparency=bytes([255, 255, 128])), LIMITS))
    assert partial[0, 0].tolist() == [10, 20, 30]
    assert np.abs(partial[2, 2].astype(int) - (127, 127, 255)).max() <= 1

    gif = only_frame(decode(gen.encode(palette_image(), "GIF", transparency=0), LIMITS))
    assert gif[0, 0].tolist() == [255, 255, 255] and gif[1, 1].tolist() == [200, 100, 50]


def test_alpha_is_composited_over_white():
    rgba = np.zeros((2, 4, 4), np.uint8)
    rgba[:, :] = (255, 0, 0, 0)
    rgba[:, 1, 3], rgba[:, 2, 3], rgba[:, 3, 3] = 128, 255, 64
    for data in (gen.png_bytes(rgba), gen.webp_bytes(rgba), gen.encode(rgba, "TIFF")):
        rgb = only_frame(decode(data, LIMITS))
        assert rgb[0, 0].tolist() == [255, 255, 255]  # fully transparent
        assert np.abs(rgb[0, 1].astype(int) - (255, 127, 127)).max() <= 1
        assert rgb[0, 2].tolist() == [255, 0, 0]  # opaque
        assert np.abs(rgb[0, 3].astype(int) - (255, 191, 191)).max() <= 1

    la = np.zeros((2, 3, 2), np.uint8)
    la[..., 0] = 100
    la[:, :, 1] = (0, 128, 255)
    rgb = only_frame(decode(gen.png_bytes(Image.fromarray(la, "LA")), LIMITS))
    assert rgb[0, 0].tolist() == [255] * 3
    assert abs(int(rgb[0, 1, 0]) - 177) <= 1  # 100 * 128/255 + 255 * 127/255
    assert rgb[0, 2].tolist() == [100] * 3


def test_colour_key_transparency_in_an_rgb_png():
    rgb = np.array([[[1, 2, 3], [9, 9, 9]]] * 2, np.uint8)
    out = only_frame(decode(gen.png_bytes(rgb, transparency=(1, 2, 3)), LIMITS))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [9, 9, 9]


def test_grey_and_one_bit_images():
    grey = only_frame(decode(gen.png_bytes(np.full((4, 4), 77, np.uint8)), LIMITS))
    assert grey[2, 2].tolist() == [77, 77, 77]
    bits = Image.fromarray(np.array([[0, 255] * 4] * 4, np.uint8)).convert("1")
    for data in (gen.png_bytes(bits), gen.encode(bits, "BMP"), gen.encode(bits, "TIFF")):
        out = only_frame(decode(data, LIMITS))
        assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]


# --- animations and video ---------------------------------------------------------------


def test_sample_indices_spread_evenly_with_first_and_last():
    assert sample_indices(3000, 8) == SAMPLED_3000
    assert sample_indices(5, 8) == [0, 1, 2, 3, 4]
    assert sample_indices(10, 2) == [0, 9]
    assert sample_indices(1, 8) == [0]
    assert sample_indices(7, 1) == [0]
    assert sample_indices(0, 8) == []


@pytest.fixture(scope="module")
def three_thousand() -> list[np.ndarray]:
    return gen.index_frames(3000, (32, 32))


@pytest.mark.parametrize(
    "name,encoder,fmt",
    [
        ("gif", gen.animated_gif_bytes, "GIF"),
        ("webp", gen.webp_animated_bytes, "WEBP"),
        ("apng", gen.apng_bytes, "PNG"),
    ],
)
def test_long_animations_are_sampled_first_to_last(three_thousand, name, encoder, fmt):
    result = decode(encoder(three_thousand), LIMITS)
    assert (result.format, result.width, result.height) == (fmt, 32, 32)
    assert (result.frame_count, result.animated) == (3000, True)
    assert [f.index for f in result.frames] == SAMPLED_3000
    # each frame shows its own number, so these are the frames that were sampled
    assert [gen.read_index(f.rgb) for f in result.frames] == SAMPLED_3000


@pytest.mark.parametrize(
    "name,encoder,fmt",
    [
        ("mp4", gen.mp4_bytes, "MP4"),
        ("mp4-short-gop", lambda frames: gen.mp4_bytes(frames, gop=12), "MP4"),
        ("webm-vp9", gen.webm_bytes, "WEBM"),
        ("webm-vp9-short-gop", lambda frames: gen.webm_bytes(frames, gop=12), "WEBM"),
        ("webm-vp8", lambda frames: gen.webm_bytes(frames, codec="libvpx", gop=30), "WEBM"),
        ("mov", lambda frames: gen.video_bytes(frames, container="mov"), "MOV"),
        ("mkv", lambda frames: gen.video_bytes(frames, container="matroska"), "MKV"),
    ],
)
def test_videos_are_sampled_first_to_last(name, encoder, fmt):
    frames = gen.index_frames(300, (96, 64))
    data = encoder(frames)
    expected = sample_indices(300, 8)
    result = decode(data, LIMITS)
    assert (result.format, result.width, result.height) == (fmt, 96, 64)
    assert (result.frame_count, result.animated) == (300, True)
    assert [f.index for f in result.frames] == expected
    assert [gen.read_index(f.rgb) for f in result.frames] == expected
    assert all(f.rgb.shape == (64, 96, 3) and not f.rgb.flags.writeable for f in result.frames)
    assert probe(data, LIMITS) == (fmt, 96, 64)


@pytest.mark.parametrize("encoder", [gen.mp4_bytes, gen.webm_bytes], ids=["mp4", "webm"])
def test_video_sampling_jumps_between_keyframes(monkeypatch, encoder):
    # A keyframe every 12 frames: sampling 8 of 300 frames decodes about 60 of them.
    # Allow 100, which decoding the whole clip from the start would exceed.
    frames = gen.index_frames(300, (96, 64))
    data = encoder(frames, gop=12)
    monkeypatch.setattr(guards, "MAX_DECODED_PIXELS", 100 * 96 * 64)
    result = decode(data, LIMITS)
    assert [gen.read_index(f.rgb) for f in result.frames] == sample_indices(300, 8)

    # Allow 30: not enough for those frames, so the keyframe before each is taken.
    monkeypatch.setattr(guards, "MAX_DECODED_PIXELS", 30 * 96 * 64)
    result = decode(data, LIMITS)
    keyframes = [12 * (i // 12) for i in sample_indices(300, 8)]
    assert keyframes == [0, 36, 84, 120, 168, 204, 252, 288]
    assert [f.index for f in result.frames] == keyframes
    assert [gen.read_index(f.rgb) for f in result.frames] == keyframes
    assert result.frame_count == 300

    # A clip with a single keyframe would have to be decoded through: refused.
    with pytest.raises(TooManyFrames) as caught:
        decode(encoder(frames, gop=300), LIMITS)
    assert caught.value.limit == 30


def test_a_short_clip_gives_every_frame_and_max_frames_is_respected():
    data = gen.mp4_bytes(gen.index_frames(5, (64, 64)), fps=5)
    result = decode(data, LIMITS)
    assert [gen.read_index(f.rgb) for f in result.frames] == [0, 1, 2, 3, 4]
    one = decode(data, MediaLimits(max_frames=1))
    assert [f.index for f in one.frames] == [0] and gen.read_index(one.frames[0].rgb) == 0
    two = decode(gen.animated_gif_bytes(gen.index_frames(50)), MediaLimits(max_frames=2))
    assert [gen.read_index(f.rgb) for f in two.frames] == [0, 49]


def test_video_frames_are_reduced_with_min_side():
    frames = [np.kron(f, np.ones((8, 8, 1), np.uint8)) for f in gen.index_frames(10, (80, 60))]  # 640x480
    result = decode(gen.webm_bytes(frames), LIMITS, min_side=100)
    assert (result.width, result.height) == (640, 480)
    assert all(f.rgb.shape == (120, 160, 3) for f in result.frames)  # 1/4
    assert [gen.read_index(f.rgb) for f in result.frames] == sample_indices(10, 8)


@pytest.mark.skipif(
    not hasattr(__import__("av").video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix",
)
def test_a_phone_videos_rotation_is_applied():
    stored = quadrants(64, 96)
    data = gen.mp4_bytes([stored] * 3, rotation=90)  # 90 degrees counter-clockwise
    result = decode(data, LIMITS)
    assert (result.width, result.height) == (64, 96)
    assert np.abs(cell_colours(result.frames[0].rgb) - cell_colours(np.rot90(stored, 1))).max() < 16


@pytest.mark.parametrize("codec", ["libvpx-vp9", "libvpx"], ids=["vp9", "vp8"])
def test_a_transparent_video_sticker_is_shown_over_white(codec):
    frames = []
    for _ in range(6):
        rgba = np.zeros((64, 64, 4), np.uint8)
        rgba[..., :3] = (200, 0, 0)  # red everywhere, but only the middle is opaque
        rgba[16:48, 16:48, 3] = 255
        rgba[:, :8, 3] = 128  # a half-transparent strip
        frames.append(rgba)
    result = decode(gen.transparent_webm_bytes(frames, codec=codec), LIMITS)
    assert (result.format, result.frame_count) == ("WEBM", 6)
    for frame in result.frames:
        rgb = frame.rgb.astype(int)
        assert np.abs(rgb[2, 40] - (255, 255, 255)).max() <= 6  # transparent
        assert np.abs(rgb[32, 32] - (200, 0, 0)).max() <= 6  # opaque
        assert np.abs(rgb[32, 4] - (227, 127, 127)).max() <= 8  # half: 200/0 over 255


def test_an_audio_only_file_is_unsupported():
    with pytest.raises(UnsupportedFormat, match="no video track"):
        decode(gen.audio_only_mp4(), LIMITS)


def test_video_pixels_are_checked_from_the_header():
    data = gen.mp4_bytes(gen.index_frames(3, (96, 64)))
    for call in (decode, probe):
        with pytest.raises(TooManyPixels) as caught:
            call(data, MediaLimits(max_pixels=96 * 64 - 1))
        assert (caught.value.width, caught.value.height) == (96, 64)


def test_multi_page_tiff_pages_are_sampled():
    result = decode(gen.multipage_tiff_bytes(gen.index_frames(20)), LIMITS)
    assert result.frame_count == 20
    assert [gen.read_index(f.rgb) for f in result.frames] == sample_indices(20, 8)


# --- concurrency and side effects ------------------------------------------------------------


def test_concurrent_decoding_matches_serial_decoding(big_jpeg):
    inputs = [
        (big_jpeg[1], 320),
        (gen.png_bytes(gen.photo("chelsea")), None),
        (gen.encode(gen.photo("rocket"), "HEIF"), 200),
        (gen.animated_gif_bytes(gen.index_frames(60)), None),
        (gen.webp_animated_bytes(gen.index_frames(60)), None),
        (gen.mp4_bytes(gen.index_frames(60, (96, 64)), gop=10), None),
        (gen.webm_bytes(gen.index_frames(60, (96, 64))), None),
        (gen.bomb_png(100_000, 100_000), None),
        (gen.jpeg_bytes(gen.photo("astronaut"))[:5000], None),
    ]

    def run(item: tuple[bytes, int | None]) -> DecodedMedia | str:
        try:
            return decode(item[0], LIMITS, min_side=item[1])
        except MediaError as exc:
            return type(exc).__name__

    serial = [run(item) for item in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(run, inputs * 6))
    for i, got in enumerate(parallel):
        want = serial[i % len(inputs)]
        if isinstance(want, str):
            assert got == want
            continue
        assert isinstance(got, DecodedMedia)
        assert (got.format, got.width, got.height, got.frame_count) == (
            want.format,
            want.width,
            want.height,
            want.frame_count,
        )
        assert [f.index for f in got.frames] == [f.index for f in want.frames]
        assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got.frames, want.frames, strict=False))


def test_decoding_writes_no_temporary_files(tmp_path, monkeypatch, coffee):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for data in (
        gen.jpeg_bytes(coffee),
        gen.encode(coffee, "HEIF"),
        gen.mp4_bytes(gen.index_frames(10)),
        gen.webm_bytes(gen.index_frames(10)),
        gen.webp_animated_bytes(gen.index_frames(10)),
    ):
        decode(data, LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_heif_support_is_registered_lazily_on_first_use():
    script = (
        "from PIL import Image\n"
        "from detectors.media import decode\n"
        "from detectors.settings import MediaLimits\n"
        "from tests.support import imagegen as gen\n"
        "heif = gen.encode(gen.photo('coffee'), 'HEIF')\n"  # registers in this process: undo it
        "Image.OPEN.pop('HEIF')\n"
        "decode(gen.jpeg_bytes(gen.photo('coffee')), MediaLimits())\n"
        "assert 'HEIF' not in Image.OPEN\n"
        "assert decode(heif, MediaLimits()).format == 'HEIF'\n"
        "assert 'HEIF' in Image.OPEN\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=str(gen.IMAGES_DIR.parent.parent)
    )
    assert done.returncode == 0, done.stderr


# --- memory: decoded bytes, strips, the shared budget --------------------------------------


def test_deep_colour_is_refused_by_decoded_bytes_from_the_header():
    from detectors.errors import TooManyDecodedBytes
    from tests.support.hostile_files import png_bomb, tiff_bomb

    limits = MediaLimits(max_decoded_bytes=16 * 2**20)  # 4 Mpx of RGBA, 16 Mpx of grey
    for data in (png_bomb(2500, colour=6), png_bomb(2500, colour=6, bit_depth=16), tiff_bomb(2500, "F")):
        with pytest.raises(TooManyDecodedBytes) as err:
            decode(data, limits, min_side=320)
        assert err.value.reason == "too_many_pixels" and "once decoded" in str(err.value)
    # the same pixel count in 8-bit grey takes a quarter of the memory: decoded
    assert decode(png_bomb(2500, colour=0), limits, min_side=320).frames[0].rgb.shape == (625, 625, 3)


@pytest.mark.parametrize("mode", ["RGBA", "I;16", "P", "LA", "F"])
def test_conversion_in_strips_gives_the_same_pixels_as_in_one_go(mode):
    rng = np.random.default_rng(3)
    h, w = 1000, 700  # several strips, and a height that is not a multiple of the factor
    if mode == "RGBA":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "LA":
        im = Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA")
    elif mode == "I;16":
        im = Image.frombytes("I;16", (w, h), rng.integers(0, 65536, (h, w), dtype=np.uint16).tobytes())
    elif mode == "F":
        im = Image.fromarray(rng.random((h, w), dtype=np.float32), "F")
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert("P")
        im.info["transparency"] = 7
    for min_side in (None, 64, 300):
        factor = frames.reduction(w, h, min_side)
        whole = still._as_rgb(im)
        expected = np.asarray(whole.reduce(factor) if factor > 1 else whole)
        got = still._frame_pixels(im, 1, min_side)
        assert got.shape == expected.shape and np.array_equal(got, expected), (mode, min_side)


def test_concurrent_decodes_share_one_budget():
    from contextlib import contextmanager

    from tests.support.hostile_files import png_bomb

    limits = MediaLimits(max_decoded_bytes=12 * 2**20 + 1)  # one 1600x1600 RGBA (10 MiB) at a time
    data = png_bomb(1600, colour=6)
    budget = guards.budget_for(limits)
    most = []
    real_hold = budget.hold

    @contextmanager
    def watching(amount):
        with real_hold(amount):
            most.append(budget.used)  # held by all the decodes running now
            yield

    budget.hold = watching  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: decode(data, limits, min_side=320), range(8)))
    finally:
        del budget.hold
    assert all(r.frames[0].rgb.shape == (400, 400, 3) for r in results)
    assert budget.used == 0
    assert len(most) == 8 and max(most) <= limits.max_decoded_bytes  # one 10 MiB picture at a time
