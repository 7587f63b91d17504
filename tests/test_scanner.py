"""The scanner: one decode, hashes, both models, one label; safe from threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from detectors.errors import ModelChecksumMismatch, TooManyBytes, TooManyPixels
from detectors.hashing import hamming_hex
from detectors.scanner import Scanner
from detectors.settings import DetectorSettings, MediaLimits, ModelSource
from tests.support.imagegen import animated_gif_bytes, bomb_png, jpeg_bytes, photo, png_bytes
from tests.support.marker_model import add_marker, write_marker_model


@pytest.fixture(scope="module")
def marker_settings(tmp_path_factory):
    path = write_marker_model(tmp_path_factory.mktemp("m") / "marker.onnx")
    return DetectorSettings(nudity_model=ModelSource(path=path))


@pytest.fixture(scope="module")
def scanner(marker_settings):
    return Scanner(marker_settings)


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut")


def test_benign_photo_is_clean_with_every_hash(scanner, astronaut):
    scan = scanner.scan(jpeg_bytes(astronaut))
    assert scan.label == "clean" and scan.hits == ()
    h = scan.hashes
    assert len(h.pdq) == 64 and len(h.phash) == 16 and len(h.dhash) == 16 and len(h.sha256) == 64
    assert 0 <= h.pdq_quality <= 100 and scan.nsfw is not None and scan.nsfw < 0.5
    assert set(scan.timings_ms) >= {"decode", "hashes", "nudity", "nsfw", "total"}


def test_marker_is_nudity_and_its_box_is_in_source_pixels(scanner, astronaut):
    big = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(add_marker(astronaut, 0.3)).resize((1536, 1536)))
    scan = scanner.scan(jpeg_bytes(big, 95))
    assert scan.label == "nudity"
    (hit,) = [d for d in scan.detections if d.label == "FEMALE_BREAST_EXPOSED"]
    x, y, w, h = hit.box
    # the decode was reduced; boxes are scaled back to the 1536-pixel source
    assert w > 1536 * 0.2 and h > 1536 * 0.2 and x + w <= 1536 and y + h <= 1536


def test_review_band_and_a_class_that_does_not_count(marker_settings, astronaut):
    data = jpeg_bytes(add_marker(astronaut))
    band = Scanner(replace(marker_settings, class_thresholds={"FEMALE_BREAST_EXPOSED": 0.97}))
    assert band.scan(data).label == "review"
    ignored = Scanner(replace(marker_settings, class_thresholds={"MALE_GENITALIA_EXPOSED": 0.5}))
    assert ignored.scan(data).label == "clean"


def test_an_animation_is_as_bad_as_its_worst_frame(scanner, astronaut):
    small = astronaut[::2, ::2].copy()
    frames = [small] * 6 + [add_marker(small)] + [small] * 5
    scan = scanner.scan(animated_gif_bytes(frames))
    assert scan.label == "nudity" and len(scan.frames) > 1


def test_hashes_of_a_reduced_decode_match_the_full_one(scanner, astronaut):
    from detectors.hashing import perceptual_hashes
    from PIL import Image

    big = np.asarray(Image.fromarray(astronaut).resize((1600, 1600)))
    scanned = scanner.scan(jpeg_bytes(big, 95)).hashes
    full = perceptual_hashes(big)
    assert hamming_hex(scanned.pdq, full[0]) <= 16


def test_limits_refuse_before_decoding(marker_settings):
    s = Scanner(replace(marker_settings, limits=MediaLimits(max_bytes=1000, max_pixels=10_000_000)))
    with pytest.raises(TooManyBytes):
        s.scan(b"\xff" * 2000)
    with pytest.raises(TooManyPixels):
        Scanner(marker_settings).scan(bomb_png(60_000, 60_000))


def test_scan_many_keeps_order_and_reports_each_error(scanner, astronaut):
    good = jpeg_bytes(astronaut)
    results = scanner.scan_many([good, b"not an image", jpeg_bytes(add_marker(astronaut))])
    assert results[0].label == "clean"
    assert results[1].reason in ("unsupported", "corrupt")
    assert results[2].label == "nudity"


def test_threads_get_the_same_answers_as_serial(scanner, astronaut):
    datas = [jpeg_bytes(astronaut, q) for q in (60, 70, 80)] + [jpeg_bytes(add_marker(astronaut))] * 2
    serial = [(s.label, s.hashes) for s in map(scanner.scan, datas)]
    with ThreadPoolExecutor(4) as pool:
        parallel = [(s.label, s.hashes) for s in pool.map(scanner.scan, datas * 3)]
    assert parallel == serial * 3


def test_a_configured_checksum_that_does_not_match_is_refused(marker_settings):
    bad = replace(marker_settings, nudity_model=replace(marker_settings.nudity_model, sha256="0" * 64))
    with pytest.raises(ModelChecksumMismatch, match="SHA-256"):
        Scanner(bad)


def test_png_with_alpha_and_grayscale_scan(scanner, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    assert scanner.scan(png_bytes(rgba)).label == "clean"
    assert scanner.scan(png_bytes(astronaut[..., 0])).label == "clean"
