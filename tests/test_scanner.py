"""The scanner: one decode, hashes, both models, one label; safe from threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

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
    big = np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).fromarray(add_marker(astronaut, 0.3)).resize((1536, 1536))
    )
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
    from PIL import Image

    from detectors.hashing import perceptual_hashes

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


# --- work skipped because it cannot change the label (each skip is a proof) --------------

from detectors.settings import DEFAULT_CLASS_THRESHOLDS  # noqa: E402
from detectors.verdict import CLEAN, NUDITY, REVIEW, Thresholds, judge, judge_frames, nsfw_can_matter  # noqa: E402

T = Thresholds(classes=dict(DEFAULT_CLASS_THRESHOLDS), review_band=0.2, nsfw_review=0.85)


@pytest.mark.parametrize(
    "frames, needed",
    [
        ([[]], True),  # nothing found: the NSFW score decides between clean and review
        ([[("FACE_FEMALE", 0.95), ("FEET_EXPOSED", 0.9)]], True),  # classes that never count
        ([[("FEMALE_BREAST_EXPOSED", 0.3)]], True),  # in the review band at the default sensitivity only
        ([[("FEMALE_BREAST_EXPOSED", 0.78)]], True),  # a less sensitive group would call it clean
        ([[("FEMALE_BREAST_EXPOSED", 0.79)]], False),  # review under every sensitivity
        ([[("FEMALE_GENITALIA_EXPOSED", 0.97)]], False),  # nudity under every sensitivity
        ([[], [("BUTTOCKS_EXPOSED", 0.9)], []], False),  # one frame of an animation settles it
        ([[("FACE_MALE", 0.99)], [("ANUS_EXPOSED", 0.5)]], True),
    ],
)
def test_when_the_nsfw_score_is_needed(frames, needed):
    assert nsfw_can_matter(frames, T) is needed


def test_a_threshold_above_the_shift_ceiling_is_its_own_loosest():
    t = Thresholds(classes={"FEMALE_BREAST_EXPOSED": 1.0}, review_band=0.2, nsfw_review=0.85)
    assert nsfw_can_matter([[("FEMALE_BREAST_EXPOSED", 0.795)]], t)  # below 1.0 - 0.2: clean at 1.0
    assert not nsfw_can_matter([[("FEMALE_BREAST_EXPOSED", 0.795)]], t.shifted(0.0))  # shifted clamps to 0.99


def test_where_the_nsfw_score_is_not_needed_no_sensitivity_lets_it_change_the_label():
    """The decision, checked by brute force: detections for which nsfw_can_matter says no
    get the same label whatever the NSFW score, under every shift a group can set."""
    rng = np.random.default_rng(3)
    classes = list(DEFAULT_CLASS_THRESHOLDS) + ["FACE_FEMALE", "BELLY_EXPOSED"]
    checked = 0
    for _ in range(400):
        dets = [(str(rng.choice(classes)), float(rng.uniform(0.25, 1.0))) for _ in range(rng.integers(0, 4))]
        if nsfw_can_matter([dets], T):
            continue
        for shift in np.linspace(-0.45, 0.45, 19):
            t = T.shifted(float(shift))
            labels = {judge(dets, nsfw, t)[0] for nsfw in (None, 0.0, 0.5, 0.9, 1.0)}
            assert len(labels) == 1 and labels <= {REVIEW, NUDITY}, (dets, shift, labels)
        checked += 1
    assert checked > 50


def test_a_benign_photo_skips_the_box_stage_but_not_open_nsfw(astronaut):
    """The real models: nothing that counts scored, so no boxes; the NSFW score is needed."""
    scan = Scanner(DetectorSettings()).scan(jpeg_bytes(astronaut))
    (frame,) = scan.frames
    assert scan.label == CLEAN and frame.screened and frame.detections == ()
    assert frame.nsfw is not None and frame.nsfw < 0.5


def test_a_hit_under_every_sensitivity_skips_open_nsfw(scanner, astronaut):
    """The marker scores 0.9: review even with every threshold at 0.99, so Open-NSFW is not run."""
    scan = scanner.scan(jpeg_bytes(add_marker(astronaut, 0.3)))
    assert scan.label == NUDITY and scan.nsfw is None
    assert not scan.frames[0].screened  # the marker model has no head to split: it runs whole


def test_a_hit_a_less_sensitive_group_could_miss_still_runs_open_nsfw(marker_settings, astronaut):
    """With a narrow review band, 0.9 is a hit at the default thresholds but clean at 0.99."""
    s = Scanner(replace(marker_settings, review_band=0.05))
    scan = s.scan(jpeg_bytes(add_marker(astronaut, 0.3)))
    assert scan.label == NUDITY and scan.nsfw is not None


def test_no_hit_runs_open_nsfw(scanner, astronaut):
    assert scanner.scan(jpeg_bytes(astronaut)).nsfw is not None


def test_skipping_changes_no_label_on_any_test_image():
    """Parity on every image the tests use: the scanner's label (with its skips) equals the label
    of everything run (all boxes, NSFW on every frame), at every sensitivity a group can set."""
    from detectors.media import decode
    from detectors.nsfw import NsfwClassifier
    from detectors.nudity import NudityDetector
    from tests.support.detector_images import benign_images

    scanner = Scanner(DetectorSettings())
    nudity, nsfw = NudityDetector(threads=1), NsfwClassifier(threads=1)
    datas = {name: png_bytes(rgb) for name, rgb in benign_images().items()}
    for path in sorted((Path(__file__).parent / "images").glob("*.jpg")):
        datas[path.name] = path.read_bytes()
    for name, data in datas.items():
        scan = scanner.scan(data)
        frames = decode(data, scanner.settings.limits, min_side=nudity.input_size).frames
        full = [([(d.label, d.score) for d in nudity.detect(f.rgb)], nsfw.score(f.rgb)) for f in frames]
        for shift in (-0.45, -0.15, 0.0, 0.15, 0.45):
            t = scanner.thresholds.shifted(shift)
            mine = judge_frames([([(d.label, d.score) for d in f.detections], f.nsfw) for f in scan.frames], t)[0]
            assert mine == judge_frames(full, t)[0], (name, shift)


def test_repeated_frames_reuse_the_earlier_frames_results(marker_settings, astronaut):
    """Frames with the very same pixels are computed once; their results are what a still of
    those pixels gets (so nothing changes but the work)."""
    from detectors.media import decode

    scanner = Scanner(replace(marker_settings, review_band=0.05))  # Open-NSFW runs on every frame

    small = astronaut[::2, ::2].copy()
    marked = add_marker(small)
    frames = [small, marked] * 5  # (a GIF writer merges runs of equal frames, so they alternate)
    data = animated_gif_bytes(frames)
    scan = scanner.scan(data)
    assert scan.label == NUDITY and len(scan.frames) > 2
    same = [f.same_as for f in scan.frames]
    assert same[0] is None and any(s is not None for s in same)
    decoded = decode(data, scanner.settings.limits, min_side=scanner.nudity.input_size).frames
    for f, d in zip(scan.frames, decoded, strict=False):
        alone = scanner.scan(png_bytes(d.rgb)).frames[0]  # the same pixels as a still image
        assert (f.detections, f.nsfw) == (alone.detections, alone.nsfw)
        assert (f.hashes.pdq, f.hashes.phash) == (alone.hashes.pdq, alone.hashes.phash)
        if f.same_as is not None:
            assert np.array_equal(decoded[f.same_as].rgb, d.rgb)


def test_frames_that_only_look_alike_are_each_computed(scanner, astronaut):
    small = astronaut[::2, ::2].copy()
    nudged = small.copy()
    nudged[:4, :4] = 255 - nudged[:4, :4]  # a corner: alike, not the same
    scan = scanner.scan(animated_gif_bytes([small, nudged, small]))
    assert [f.same_as for f in scan.frames] == [None, None, 0]
