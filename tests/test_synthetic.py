"""The slot for an operator's learned detector of AI-made images, driven by a generated classifier."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectors.errors import ModelInvalid
from detectors.scanner import Scanner
from detectors.settings import DetectorSettings
from detectors.synthetic import ClassifierSpec, SyntheticDetector
from tests.support.imagegen import jpeg_bytes, photo


def write_redness_classifier(path: Path, size: int = 32) -> Path:
    """Logits [0, k*(mean red - mean green)]: a very red image looks 'generated'."""
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    nodes = [
        helper.make_node("ReduceMean", ["pixels", "axes"], ["m"], keepdims=0),  # N x 3
        helper.make_node("Gather", ["m", "r_idx"], ["r"], axis=1),
        helper.make_node("Gather", ["m", "g_idx"], ["g"], axis=1),
        helper.make_node("Sub", ["r", "g"], ["d"]),
        helper.make_node("Mul", ["d", "k"], ["score"]),
        helper.make_node("Mul", ["score", "zero"], ["zeros"]),
        helper.make_node("Concat", ["zeros", "score"], ["logits"], axis=1),
    ]
    init = [
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("r_idx", TensorProto.INT64, [1], [0]),
        helper.make_tensor("g_idx", TensorProto.INT64, [1], [1]),
        helper.make_tensor("k", TensorProto.FLOAT, [], [4.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "redness", [x], [y], init), opset_imports=[helper.make_opsetid("", 18)]
    )
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = write_redness_classifier(tmp_path_factory.mktemp("synthetic") / "redness.onnx")
    return ClassifierSpec(path=path, input_size=32, mean=(0, 0, 0), std=(1, 1, 1), labels=("real", "generated"))


def test_scores_follow_the_model(spec):
    det = SyntheticDetector(spec)
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 255
    r, g = det.score_batch([red, green])
    assert r > 0.95 and g < 0.05


def test_the_scanner_reports_it_when_configured(spec):
    scanner = Scanner(replace(DetectorSettings(), synthetic=spec))
    red = np.zeros((400, 400, 3), np.uint8)
    red[..., 0] = 240
    assert scanner.scan(jpeg_bytes(red)).synthetic > 0.9
    assert Scanner(DetectorSettings()).scan(jpeg_bytes(photo("astronaut"))).synthetic is None


def test_a_wrong_spec_is_refused(spec):
    with pytest.raises(ModelInvalid, match="labels"):
        SyntheticDetector(replace(spec, labels=("a", "b", "c"), positive="a"))
    with pytest.raises(ModelInvalid, match="label"):
        SyntheticDetector(replace(spec, positive="fake"))


def test_config_builds_the_spec(tmp_path, spec):
    from bot.config import load_config
    from bot.errors import ConfigError

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[models.synthetic]\npath = "{spec.path}"\ninput_size = 32\nlabels = ["real", "ai"]\npositive = "ai"\n'
    )
    s = load_config(cfg, env={}).detectors.synthetic
    assert s.input_size == 32 and s.labels == ("real", "ai") and s.positive == "ai"
    cfg.write_text(f'[models.synthetic]\npath = "{spec.path}"\npositive = "fake"\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert err.value.key == "models.synthetic.positive"
