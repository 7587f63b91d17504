"""NudityDetector on real onnxruntime: parity with nudenet, batching, input checks, the marker model."""

from __future__ import annotations

from pathlib import Path

import nudenet  # the reference implementation, for parity only
import numpy as np
import pytest
from nudenet.nudenet import _postprocess as reference_postprocess
from nudenet.nudenet import _read_image as reference_read_image

from detectors import models
from detectors.errors import ModelInvalid, UnsupportedFormat
from detectors.nudity import MAX_BATCH, Detection, NudityDetector, candidate_rows, scale_boxes
from detectors.settings import DEFAULT_CLASS_THRESHOLDS, NUDENET_CLASSES, ModelSource
from tests.support.detector_images import benign_images
from tests.support.marker_model import add_marker, marker_box, marker_rows, write_marker_model

IMAGES = benign_images()


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else float(a == b)


def bgr(rgb: np.ndarray) -> np.ndarray:
    """nudenet takes OpenCV's BGR order; same pixels, channels reversed."""
    return np.ascontiguousarray(rgb[:, :, ::-1])


def assert_parity(mine: tuple[Detection, ...], ref: list[dict], name: str) -> None:
    """Same classes; each reference box matched by one of ours with IoU >= 0.9 and score within 0.02."""
    assert sorted(d.label for d in mine) == sorted(r["class"] for r in ref), name
    unused = list(mine)
    for r in ref:
        match = max((d for d in unused if d.label == r["class"]), key=lambda d: iou(d.box, r["box"]), default=None)
        assert match is not None, (name, r)
        assert iou(match.box, r["box"]) >= 0.9, (name, match, r)
        assert abs(match.score - r["score"]) <= 0.02, (name, match, r)
        unused.remove(match)


@pytest.fixture(scope="module")
def detector() -> NudityDetector:
    return NudityDetector()


@pytest.fixture(scope="module")
def reference():
    return nudenet.NudeDetector()


@pytest.fixture(scope="module")
def marker_path(tmp_path_factory) -> Path:
    return write_marker_model(tmp_path_factory.mktemp("models") / "marker.onnx")


def test_default_model_is_320n(detector: NudityDetector):
    assert detector.input_size == 320
    assert Path(detector.model_path).name == "320n.onnx"
    assert candidate_rows(320) == 2100


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_preprocessing_gives_nudenets_exact_input(detector: NudityDetector, name: str):
    rgb = IMAGES[name]
    expected = reference_read_image(bgr(rgb), 320)[0][0]
    got = detector.preprocess(rgb)
    assert got.dtype == np.float32 and got.shape == (3, 320, 320)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_detections_match_nudenet(detector: NudityDetector, reference, name: str):
    rgb = IMAGES[name]
    assert_parity(detector.detect(rgb), reference.detect(bgr(rgb)), name)


def test_the_parity_set_is_not_vacuous(reference):
    """Parity on images with no detections proves little: most of the set must have some."""
    found = {name: reference.detect(bgr(rgb)) for name, rgb in IMAGES.items()}
    with_hits = [n for n, dets in found.items() if dets]
    assert len(with_hits) >= 12
    assert max(len(d) for d in found.values()) >= 2  # several boxes in one image (NMS matters)


def test_postprocessing_matches_nudenet_on_many_candidates(detector: NudityDetector):
    """Synthetic outputs with hundreds of overlapping candidates of every class."""
    rng = np.random.default_rng(7)
    for width, height in [(640, 480), (300, 900), (320, 320), (57, 1200)]:
        out = np.zeros((22, 2100), np.float32)
        centres = rng.uniform(-20, 340, size=(2, 2100))  # some outside the frame, to exercise clipping
        sizes = rng.uniform(2, 200, size=(2, 2100))
        out[:4] = np.vstack([centres, sizes])
        out[4:] = rng.uniform(0, 0.3, size=(18, 2100))
        hot = rng.choice(2100, 400, replace=False)
        out[4 + rng.integers(0, 18, 400), hot] = rng.uniform(0.2, 0.99, 400)
        ref = reference_postprocess(
            [out[None]], max(width, height) - width, max(width, height) - height, 0, 0, width, height, 320, 320
        )
        mine = detector.postprocess(out, width, height)
        assert len(ref) > 10
        assert [(d.label, d.box) for d in mine] == [(r["class"], tuple(r["box"])) for r in ref]
        np.testing.assert_allclose([d.score for d in mine], [r["score"] for r in ref], atol=1e-6)


def test_nothing_above_the_candidate_score_gives_no_detections(detector: NudityDetector):
    out = np.zeros((22, 2100), np.float32)
    out[4:] = 0.19
    out[2:4] = 50
    assert detector.postprocess(out, 640, 480) == ()


def test_batch_equals_one_by_one(detector: NudityDetector):
    names = sorted(IMAGES)[: MAX_BATCH + 3]  # more than one internal chunk, mixed sizes
    batch = detector.detect_batch([IMAGES[n] for n in names])
    assert len(batch) == len(names)
    for name, got in zip(names, batch, strict=False):
        single = detector.detect(IMAGES[name])
        assert [d.label for d in got] == [d.label for d in single], name
        for a, b in zip(got, single, strict=False):
            assert iou(a.box, b.box) >= 0.98 and abs(a.score - b.score) < 1e-3


def test_empty_batch(detector: NudityDetector):
    assert detector.detect_batch([]) == []


def test_boxes_lie_inside_the_image(detector: NudityDetector):
    for name, rgb in IMAGES.items():
        h, w = rgb.shape[:2]
        for d in detector.detect(rgb):
            x, y, bw, bh = d.box
            assert d.label in NUDENET_CLASSES and 0.25 <= d.score <= 1
            assert 0 <= x <= w and 0 <= y <= h and 0 <= bw <= w - x and 0 <= bh <= h - y, (name, d)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32, 3), np.float32),
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((0, 32, 3), np.uint8),
        [[0, 0, 0]],
    ],
    ids=["float", "grey", "rgba", "empty", "list"],
)
def test_bad_input_is_unsupported_format(detector: NudityDetector, bad):
    with pytest.raises(UnsupportedFormat):
        detector.detect(bad)
    with pytest.raises(UnsupportedFormat):  # one bad image refuses the whole batch
        detector.detect_batch([IMAGES["astronaut"], bad])


def test_rgb_channel_order_feeds_the_model_rgb():
    rgb_detector = NudityDetector(channels="rgb")
    img = np.zeros((320, 320, 3), np.uint8)
    img[..., 0] = 255  # pure red
    chw = rgb_detector.preprocess(img)
    assert chw[0].min() == 1.0 and chw[2].max() == 0.0
    with pytest.raises(ValueError):
        NudityDetector(channels="hsv")


def test_scale_boxes_multiplies_and_clips():
    dets = (Detection("FACE_FEMALE", 0.8, (10, 20, 30, 40)), Detection("FEET_EXPOSED", 0.5, (90, 90, 20, 20)))
    assert scale_boxes(dets, 2.0) == (
        Detection("FACE_FEMALE", 0.8, (20, 40, 60, 80)),
        Detection("FEET_EXPOSED", 0.5, (180, 180, 40, 40)),
    )
    clipped = scale_boxes(dets, 2.0, width=200, height=190)
    assert clipped[1].box == (180, 180, 20, 10)


# --- the marker model ----------------------------------------------------------


def test_marker_model_has_nudenets_interface(marker_path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(marker_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape) == ("images", ["batch", 3, 320, 320])
    assert (out.name, out.shape) == ("output0", ["batch", 22, 2100])
    assert marker_rows(640) == candidate_rows(640) == 8400


@pytest.mark.parametrize(
    "name,frac,at",
    [
        ("astronaut", 0.25, None),
        ("astronaut", 0.125, (10, 300)),
        ("astronaut_wide", 0.3, (700, 20)),
        ("astronaut_tall", 0.2, (5, 600)),
        ("astronaut_1024", 0.5, None),
        ("astronaut", 0.5, (300, 300)),  # cut by the image edge: a rectangle
    ],
)
def test_marker_is_detected_through_the_real_detector(marker_path: Path, name, frac, at):
    detector = NudityDetector(ModelSource(path=marker_path))
    rgb = add_marker(IMAGES[name], frac, at=at)
    (hit,) = detector.detect(rgb)
    assert hit.label == "FEMALE_BREAST_EXPOSED"
    assert hit.score == pytest.approx(0.9, abs=0.01)
    assert iou(hit.box, marker_box(rgb.shape, frac, at)) >= 0.85


def test_no_marker_no_detection(marker_path: Path):
    detector = NudityDetector(ModelSource(path=marker_path))
    lookalikes = np.zeros((200, 300, 3), np.uint8)
    lookalikes[:, :100] = (255, 0, 0)
    lookalikes[:, 100:200] = (0, 0, 255)
    lookalikes[:, 200:] = (255, 192, 203)  # pink is not magenta
    plain = [IMAGES[n] for n in ("astronaut", "chelsea", "faces_4x5", "flat_grey")]
    assert detector.detect_batch([*plain, lookalikes]) == [()] * 5


def test_marker_model_class_and_size_are_chosen(tmp_path: Path):
    path = write_marker_model(tmp_path / "m640.onnx", label="BUTTOCKS_EXPOSED", input_size=640)
    detector = NudityDetector(ModelSource(path=path))
    assert detector.input_size == 640  # read from the model's static input shape
    images = [add_marker(IMAGES["astronaut"], 0.2), IMAGES["astronaut"], add_marker(IMAGES["coffee"], 0.3, at=(10, 10))]
    got = detector.detect_batch(images)
    assert [[d.label for d in dets] for dets in got] == [["BUTTOCKS_EXPOSED"], [], ["BUTTOCKS_EXPOSED"]]
    assert iou(got[2][0].box, marker_box(images[2].shape, 0.3, (10, 10))) >= 0.85


def test_marker_model_validates_its_arguments(tmp_path: Path):
    with pytest.raises(ValueError):
        write_marker_model(tmp_path / "x.onnx", label="NOT_A_CLASS")
    with pytest.raises(ValueError):
        write_marker_model(tmp_path / "x.onnx", input_size=300)


# --- model checks -------------------------------------------------------------


def test_a_model_of_the_wrong_kind_is_model_invalid():
    nsfw_file = models.packaged_model_path("nsfw")
    with pytest.raises(ModelInvalid, match="NCHW"):
        NudityDetector(ModelSource(path=nsfw_file))


def test_explicit_input_size_overrides_and_must_be_a_multiple_of_32():
    assert NudityDetector(input_size=640).input_size == 640
    with pytest.raises(ModelInvalid, match="multiple of 32"):
        NudityDetector(input_size=300)


def test_a_bigger_input_size_still_finds_the_face():
    (hit,) = NudityDetector(input_size=640).detect(IMAGES["astronaut"])
    (ref,) = NudityDetector().detect(IMAGES["astronaut"])
    assert hit.label == ref.label == "FACE_FEMALE"
    assert iou(hit.box, ref.box) >= 0.7


def test_config_file_points_the_detector_at_the_marker_model(tmp_path: Path, marker_path: Path):
    import hashlib

    from bot.config import load_config

    digest = hashlib.sha256(marker_path.read_bytes()).hexdigest()
    config = tmp_path / "vigil.toml"
    config.write_text(f'[models.nudity]\npath = "{marker_path}"\nsha256 = "{digest}"\n', encoding="utf-8")
    settings = load_config(config, env={}).detectors
    detector = NudityDetector(settings.nudity_model, threads=settings.threads)
    rgb = add_marker(IMAGES["chelsea"], 0.3)
    assert [d.label for d in detector.detect(rgb)] == ["FEMALE_BREAST_EXPOSED"]
    assert detector.model_sha256 == digest


# --- the two stages (detectors.headsplit) and screening ----------------------------------

COUNTING = tuple(DEFAULT_CLASS_THRESHOLDS)


@pytest.fixture(scope="module")
def whole_session():
    """The unsplit model, exactly as nudenet runs it (Vigil no longer loads it when it splits)."""
    import onnxruntime as ort

    data = models.packaged_model_path("nudity").read_bytes()
    return ort.InferenceSession(data, sess_options=models.session_options(1), providers=["CPUExecutionProvider"])


def test_the_packaged_model_splits_at_its_head(detector: NudityDetector):
    assert detector.screens
    staged = [m for m in models._staged.values() if m is not None]
    assert staged and all(len(m.sessions) == 2 for m in staged)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_two_stages_give_the_whole_models_output_bit_for_bit(detector: NudityDetector, whole_session, name: str):
    blob = detector.preprocess(IMAGES[name])[None]
    (whole,) = whole_session.run(None, {"images": blob})
    np.testing.assert_array_equal(detector._run(blob), whole)


def test_the_stages_of_a_batch_are_the_whole_model_too(detector: NudityDetector, whole_session):
    blob = np.stack([detector.preprocess(IMAGES[n]) for n in sorted(IMAGES)[:5]])
    (whole,) = whole_session.run(None, {"images": blob})
    np.testing.assert_array_equal(detector._run(blob), whole)
    cls, feats = detector._screen(blob)
    some = np.array([1, 3])  # the box stage on a subset of the batch: the same rows
    np.testing.assert_array_equal(detector._boxes(cls, feats, some), whole[some])


def test_screening_skips_only_images_that_hold_no_counting_class(detector: NudityDetector, reference):
    """The table of the screen's decision on every parity image: skipped (None) only where the
    full detector finds no class that counts; elsewhere exactly what detect gives."""
    skipped = kept = 0
    for name, rgb in IMAGES.items():
        full = detector.detect(rgb)
        got = detector.screen_batch([rgb], COUNTING)[0]
        if got is None:
            skipped += 1
            assert not [d for d in full if d.label in COUNTING], name
            assert not [d for d in reference.detect(bgr(rgb)) if d["class"] in COUNTING], name
        else:
            kept += 1
            assert got == full, name
    assert skipped >= len(IMAGES) // 2  # the benign set: the box stage is mostly skipped


def test_screening_for_every_class_keeps_every_image_with_a_detection(detector: NudityDetector):
    """With every class counting, an image is skipped only when it has no detection at all."""
    names = sorted(IMAGES)
    got = detector.screen_batch([IMAGES[n] for n in names], NUDENET_CLASSES)
    for name, dets in zip(names, got, strict=False):
        full = detector.detect(IMAGES[name])
        assert dets == full if dets is not None else full == (), name
    assert any(d for d in got)  # faces: the set is not vacuous


def test_screening_with_no_counting_class_skips_everything(detector: NudityDetector):
    assert detector.screen_batch([IMAGES["astronaut"]], ()) == [None]


def test_screening_a_batch_equals_one_by_one(detector: NudityDetector):
    names = sorted(IMAGES)[: MAX_BATCH + 3]
    rgbs = [IMAGES[n] for n in names]
    one_by_one = [detector.screen_batch([r], NUDENET_CLASSES)[0] for r in rgbs]
    assert detector.screen_batch(rgbs, NUDENET_CLASSES) == one_by_one


def test_the_screen_threshold_sits_just_under_the_nms_floor():
    """A class scoring above NMS_SCORE must pass the screen; the margin is tiny."""
    from detectors.nudity import NMS_SCORE, SCREEN_LOGIT

    assert 1 / (1 + np.exp(-SCREEN_LOGIT)) < NMS_SCORE < 1 / (1 + np.exp(-SCREEN_LOGIT)) + 1e-3


def test_a_model_that_does_not_split_runs_whole_and_screens_nothing_away(marker_path: Path):
    """The marker model has no YOLOv8 head: screen_batch is detect_batch."""
    detector = NudityDetector(ModelSource(path=marker_path))
    assert not detector.screens
    rgbs = [add_marker(IMAGES["chelsea"], 0.3), IMAGES["astronaut"]]
    assert detector.screen_batch(rgbs, COUNTING) == detector.detect_batch(rgbs)
    assert [d.label for d in detector.screen_batch(rgbs, COUNTING)[0]] == ["FEMALE_BREAST_EXPOSED"]


def test_the_split_model_is_verified_like_the_whole_one():
    from detectors.errors import ModelChecksumMismatch

    with pytest.raises(ModelChecksumMismatch):
        NudityDetector(ModelSource(sha256="0" * 64))
    good = NudityDetector(ModelSource(sha256=NudityDetector().model_sha256.upper()))
    assert good.screens


def test_headsplit_leaves_a_graph_without_the_head_alone(marker_path: Path):
    from detectors import headsplit

    assert headsplit.split(marker_path.read_bytes(), len(NUDENET_CLASSES)) is None
    assert headsplit.split(models.packaged_model_path("nsfw").read_bytes(), len(NUDENET_CLASSES)) is None
