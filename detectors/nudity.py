"""NudeNet (YOLOv8 "320n" export) on onnxruntime, with Vigil's own pre/postprocessing.

Matches nudenet 3.4.2's ``NudeDetector.detect`` (pad right/bottom to a square,
bilinear resize, /255, candidate filter, clip, class-agnostic NMS) but runs on
batches, vectorised in numpy, and never imports nudenet.

Screening (``screen_batch``): the model runs in two stages (``detectors.headsplit``):
class scores first, then boxes only for the images where a class that counts scored
above the NMS floor somewhere. Decision: an image in which no row gives any class that
counts a score above ``NMS_SCORE`` cannot hold a detection of such a class (a detection
is a row whose best class scores above that floor, labelled with that class), so no
threshold, review band or sensitivity can turn it into a hit, and its boxes are not
computed. This is a proof, not an estimate: for every other image both stages together
are the original graph and give its exact output (tests/test_nudity.py checks it bit for
bit on every test image). What is lost on a screened image is only the list of
detections of classes that never count (faces, feet, covered parts): they are not
computed. A model that does not split (another architecture, the tests' marker model)
runs whole, and ``screen_batch`` is then ``detect_batch``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from detectors import headsplit
from detectors.errors import ModelInvalid, UnsupportedFormat
from detectors.models import LoadedModel, LoadedStages, load_model, load_stages
from detectors.settings import NUDENET_CLASSES, ModelSource

CANDIDATE_SCORE = 0.2  # rows below this never become candidates (as nudenet)
NMS_SCORE = 0.25
NMS_IOU = 0.45
STRIDES = (8, 16, 32)  # YOLOv8 detection heads
DEFAULT_INPUT_SIZE = 320
MAX_BATCH = 8  # larger batches gain little on small CPUs and cost memory

_OUTPUT_ROWS = 4 + len(NUDENET_CLASSES)
# A class logit at or below this cannot become a detection: the sigmoid of it is below
# NMS_SCORE with a margin (1e-3 in logit, about 2e-4 in score) far above any float error.
SCREEN_LOGIT = math.log(NMS_SCORE / (1 - NMS_SCORE)) - 1e-3


@dataclass(frozen=True)
class _Stages:
    """The model cut at its head (``detectors.headsplit``): the sessions and the tensors between them."""

    screen: ort.InferenceSession  # image -> class logits per stride and neck features
    boxes: ort.InferenceSession  # those -> the whole model's output
    logits: tuple[str, ...]  # class logit tensors, per stride
    features: tuple[str, ...]  # neck feature tensors the box branches read


@dataclass(frozen=True)
class Detection:
    label: str  # one of NUDENET_CLASSES
    score: float
    box: tuple[int, int, int, int]  # x, y, w, h in the given image's pixels


def check_rgb(rgb: object) -> np.ndarray:
    """The array itself if it is an RGB uint8 image, else ``UnsupportedFormat``."""
    if not isinstance(rgb, np.ndarray):
        raise UnsupportedFormat(f"expected a numpy RGB array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UnsupportedFormat(f"expected an RGB uint8 array of shape (height, width, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UnsupportedFormat(f"the image has no pixels ({rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def scale_boxes(
    dets: Sequence[Detection], factor: float, *, width: int | None = None, height: int | None = None
) -> tuple[Detection, ...]:
    """Boxes found on a reduced image, multiplied back by ``factor`` (clipped to width/height if given)."""
    out = []
    for d in dets:
        x, y, w, h = (int(round(v * factor)) for v in d.box)
        if width is not None:
            x = min(max(0, x), width)
            w = min(w, width - x)
        if height is not None:
            y = min(max(0, y), height)
            h = min(h, height - y)
        out.append(Detection(d.label, d.score, (x, y, w, h)))
    return tuple(out)


def candidate_rows(input_size: int) -> int:
    """Rows a YOLOv8 head emits for a square input: one per cell at each stride."""
    return sum((input_size // s) ** 2 for s in STRIDES)


class NudityDetector:
    """Body-part detector; thread-safe (the session is shared, nothing else is mutable)."""

    def __init__(
        self,
        source: ModelSource = ModelSource(),
        *,
        threads: int = 0,
        input_size: int | None = None,
        channels: str = "bgr",
    ) -> None:
        """``input_size`` overrides what the model declares (a dynamic-shape export
        without metadata needs it). ``channels`` is the order the model is fed:
        nudenet 3.4.2 feeds its model BGR (its cvtColor swaps, then blobFromImage
        swaps back; NudeNet issue #203), so "bgr" reproduces nudenet's scores and
        "rgb" is what the YOLOv8 training pipeline used. On the benign bench set
        "rgb" raises face scores but also adds low-score body-part boxes, so
        the default stays nudenet's behaviour (see bench/bench_models.py)."""
        if channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
        classes = len(NUDENET_CLASSES)
        staged = load_stages(
            "nudity", source, threads=threads, variant="head", cut=lambda data: headsplit.split(data, classes)
        )
        self._model: LoadedModel | LoadedStages
        self._stages: _Stages | None
        if staged is not None:
            self._model = staged
            screen, boxes = staged.sessions
            meta = screen.get_modelmeta().custom_metadata_map
            self._stages = _Stages(
                screen,
                boxes,
                tuple(meta[headsplit.META_CLASS_LOGITS].split("\n")),
                tuple(meta[headsplit.META_FEATURES].split("\n")),
            )
            session, inputs, outputs = screen, screen.get_inputs(), boxes.get_outputs()
        else:
            self._model = load_model("nudity", source, threads=threads)
            self._stages = None
            session = self._model.session
            inputs, outputs = session.get_inputs(), session.get_outputs()
        path = str(self._model.path)
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, "3"):
            raise ModelInvalid(
                "nudity", path, f"expected one NCHW image input with 3 channels, found {[i.shape for i in inputs]}"
            )
        rows = outputs[0].shape[1] if outputs and len(outputs[0].shape) == 3 else -1
        if rows == -1 or (isinstance(rows, int) and rows != _OUTPUT_ROWS):
            raise ModelInvalid(
                "nudity",
                path,
                f"expected a NudeNet output of shape [batch, {_OUTPUT_ROWS}, N], "
                f"found {outputs[0].shape if outputs else 'none'}",
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self.input_size = input_size or _declared_input_size(session, path) or DEFAULT_INPUT_SIZE
        if self.input_size < 32 or self.input_size % 32:
            raise ModelInvalid("nudity", path, f"input size {self.input_size} is not a positive multiple of 32")
        self._bgr = channels == "bgr"

    def _run(self, blob: np.ndarray) -> np.ndarray:
        """The whole model's output for a batch: one session, or both stages one after the other."""
        if self._stages is None:
            assert isinstance(self._model, LoadedModel)  # set together with _stages in __init__
            (out,) = self._model.session.run([self._output_name], {self._input_name: blob})
            return np.asarray(out)
        cls, feats = self._screen(blob)
        return self._boxes(cls, feats, np.arange(blob.shape[0]))

    def _screen(self, blob: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The first stage: (class logits per stride, neck features)."""
        assert self._stages is not None  # callers check ``screens`` first
        stages = self._stages
        out = stages.screen.run(None, {self._input_name: blob})
        return out[: len(stages.logits)], out[len(stages.logits) :]

    def _boxes(self, cls: list[np.ndarray], feats: list[np.ndarray], need: np.ndarray) -> np.ndarray:
        """The second stage: the whole model's output for the images ``need`` (indices into the batch)."""
        assert self._stages is not None  # callers check ``screens`` first
        stages = self._stages
        feed = {name: t[need] for name, t in zip(stages.features, feats, strict=False)}
        feed.update({name: t[need] for name, t in zip(stages.logits, cls, strict=False)})
        (whole,) = stages.boxes.run([self._output_name], feed)
        return np.asarray(whole)

    @property
    def screens(self) -> bool:
        """Whether ``screen_batch`` can skip boxes (the model splits at a YOLOv8 head)."""
        return self._stages is not None

    @property
    def model_path(self) -> str:
        return str(self._model.path)

    @property
    def model_sha256(self) -> str:
        return self._model.sha256

    def detect(self, rgb: np.ndarray) -> tuple[Detection, ...]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[tuple[Detection, ...]]:
        """Detections per image, each in that image's pixel coordinates, best first."""
        checked = [check_rgb(im) for im in images]  # all or nothing: check before running
        results: list[tuple[Detection, ...]] = []
        for start in range(0, len(checked), MAX_BATCH):
            chunk = checked[start : start + MAX_BATCH]
            out = self._run(np.stack([self.preprocess(im) for im in chunk]))
            self._check_output(out, len(chunk))
            for im, rows in zip(chunk, out, strict=False):
                results.append(self.postprocess(rows, im.shape[1], im.shape[0]))
        return results

    def screen_batch(
        self, images: Sequence[np.ndarray], counting: Collection[str]
    ) -> list[tuple[Detection, ...] | None]:
        """Like ``detect_batch``, but None for an image proven to hold no detection of a class
        in ``counting`` (its boxes are then not computed; see the module docstring). Images
        that are not proven clean get every detection, exactly as ``detect_batch``."""
        if self._stages is None:
            return list(self.detect_batch(images))
        idx = np.array([i for i, c in enumerate(NUDENET_CLASSES) if c in counting], dtype=np.int64)
        checked = [check_rgb(im) for im in images]
        results: list[tuple[Detection, ...] | None] = []
        for start in range(0, len(checked), MAX_BATCH):
            chunk = checked[start : start + MAX_BATCH]
            blob = np.stack([self.preprocess(im) for im in chunk])
            cls, feats = self._screen(blob)
            n = len(chunk)
            top = np.full(n, -np.inf)
            if idx.size:
                for t in cls:
                    top = np.maximum(top, t[:, idx].reshape(n, -1).max(axis=1))
            need = np.flatnonzero(top > SCREEN_LOGIT)
            found: dict[int, tuple[Detection, ...]] = {}
            if need.size:
                whole = self._boxes(cls, feats, need)
                self._check_output(whole, need.size)
                found = {
                    int(i): self.postprocess(rows, chunk[i].shape[1], chunk[i].shape[0])
                    for i, rows in zip(need, whole, strict=False)
                }
            results.extend(found.get(i) for i in range(n))
        return results

    def _check_output(self, out: np.ndarray, n: int) -> None:
        if out.ndim != 3 or out.shape[0] != n or out.shape[1] != _OUTPUT_ROWS:
            raise ModelInvalid(
                "nudity", self.model_path, f"output has shape {out.shape}, expected ({n}, {_OUTPUT_ROWS}, N)"
            )

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """One image as the model's CHW float32 input: pad right/bottom to a square, resize, /255."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        if h == w:
            square = rgb
        else:
            square = np.zeros((side, side, 3), np.uint8)
            square[:h, :w] = rgb
        size = self.input_size
        # INTER_LINEAR on uint8 first, then float: what cv2.dnn.blobFromImage does
        resized = square if side == size else cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
        if self._bgr:
            resized = resized[:, :, ::-1]
        chw = np.transpose(resized, (2, 0, 1)).astype(np.float32)
        chw *= np.float32(1 / 255.0)
        return chw

    def postprocess(self, rows: np.ndarray, width: int, height: int) -> tuple[Detection, ...]:
        """Decode one image's (22, N) output into detections in its pixels."""
        scores = rows[4:]
        best = scores.max(axis=0)
        keep = np.flatnonzero(best >= CANDIDATE_SCORE)
        if keep.size == 0:
            return ()
        cls = scores[:, keep].argmax(axis=0)
        conf = best[keep]
        cx, cy, bw, bh = rows[:4, keep]
        # back to the padded square's pixels (same scale on both axes), in float32
        # and in nudenet's order of operations so boxes round the same way
        side, size = max(width, height), self.input_size
        x = (cx - bw / 2) * side / size
        y = (cy - bh / 2) * side / size
        bw = bw * side / size
        bh = bh * side / size
        x = np.clip(x, 0, width)
        y = np.clip(y, 0, height)
        bw = np.minimum(bw, width - x)
        bh = np.minimum(bh, height - y)
        boxes = np.stack([x, y, bw, bh], axis=1).astype(np.float64)
        picked = cv2.dnn.NMSBoxes(boxes.tolist(), conf.astype(np.float64).tolist(), NMS_SCORE, NMS_IOU)
        out = []
        for i in np.asarray(picked, dtype=np.int64).reshape(-1):
            bx, by, bww, bhh = boxes[i]
            out.append(Detection(NUDENET_CLASSES[int(cls[i])], float(conf[i]), (int(bx), int(by), int(bww), int(bhh))))
        return tuple(out)


def _declared_input_size(session: ort.InferenceSession, path: str) -> int | None:
    """The square input size a model declares: static input dims, else Ultralytics' imgsz metadata."""
    dims = session.get_inputs()[0].shape[2:]
    if all(isinstance(d, int) and d > 0 for d in dims):
        if dims[0] != dims[1]:
            raise ModelInvalid("nudity", path, f"its input is {dims[1]}x{dims[0]}; only square inputs are supported")
        return int(dims[0])
    meta = session.get_modelmeta().custom_metadata_map or {}
    raw = meta.get("imgsz")
    if raw:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
        sizes = value if isinstance(value, (list, tuple)) else [value]
        if sizes and all(isinstance(v, int) for v in sizes) and len(set(sizes)) == 1:
            return int(sizes[0])
    return None
