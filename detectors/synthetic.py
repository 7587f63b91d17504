"""A slot for a learned detector of AI-made images: an ONNX classifier the operator brings.

No model for this ships in a package with a usable license, so Vigil ships none. The
operator names one in config (path, input size, normalisation, labels, the label that
means "generated", a threshold); Vigil runs it like its other models and reports the score.
A score is evidence for the admins, never proof, and never acts on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.errors import ModelInvalid
from detectors.models import load_model
from detectors.nudity import check_rgb
from detectors.settings import ModelSource


@dataclass(frozen=True)
class ClassifierSpec:
    path: Path
    sha256: str | None = None
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # on pixels scaled to 0..1
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    labels: tuple[str, ...] = ("real", "generated")
    positive: str = "generated"  # the label whose probability is reported
    layout: str = "NCHW"  # or "NHWC"
    softmax: bool = True  # apply softmax to the outputs (False: they are probabilities already)
    threshold: float = 0.9  # at or above: the alert mentions it as evidence


class SyntheticDetector:
    def __init__(self, spec: ClassifierSpec, *, threads: int = 1) -> None:
        self.spec = spec
        if spec.positive not in spec.labels:
            raise ModelInvalid(
                "synthetic", str(spec.path), f"the label '{spec.positive}' is not among {list(spec.labels)}"
            )
        loaded = load_model("synthetic", ModelSource(path=spec.path, sha256=spec.sha256), threads=threads)
        self.session = loaded.session
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelInvalid("synthetic", str(spec.path), "expected one image input of rank 4 (a batch of images)")
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != len(spec.labels):
            raise ModelInvalid(
                "synthetic", str(spec.path), f"it has {width} outputs but {len(spec.labels)} labels are configured"
            )
        self.input_name = inputs[0].name
        self.index = spec.labels.index(spec.positive)
        self.mean = np.asarray(spec.mean, np.float32)
        self.std = np.asarray(spec.std, np.float32)

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        s = self.spec.input_size
        x = cv2.resize(check_rgb(rgb), (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = (x - self.mean) / self.std
        return x if self.spec.layout == "NHWC" else x.transpose(2, 0, 1)

    def score_batch(self, images: Sequence[np.ndarray]) -> list[float]:
        if not images:
            return []
        batch = np.ascontiguousarray(np.stack([self.preprocess(im) for im in images]), dtype=np.float32)
        (out,) = self.session.run(None, {self.input_name: batch})[:1]
        out = np.asarray(out, np.float32).reshape(len(images), -1)
        if self.spec.softmax:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return [float(v) for v in out[:, self.index]]
