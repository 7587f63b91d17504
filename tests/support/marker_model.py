"""A tiny ONNX stand-in for NudeNet that "detects" a pure magenta square.

It has NudeNet's interface (input "images" [batch, 3, S, S], output "output0"
[batch, 22, N] with N the rows the real 320n emits at S), so tests can drive the
real ``NudityDetector`` on onnxruntime and get a chosen class with a known box,
using only benign pictures.

How it works: a per-pixel magenta-ness map (min(R, B) - G, sharpened, so only
near-pure magenta counts); average-pooled over the stride-8 cells it gives each
cell's score (0.9 x the cell's magenta fraction) for the chosen class. Every row
carries the same box: the marker's centroid and, for an upright rectangle,
width = sqrt(12 var(x) + 1) (likewise height), all from sums over the map. NMS then keeps one detection.
No magenta → all scores 0. Red and blue play the same part, so the channel order does not matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detectors.settings import NUDENET_CLASSES

MAGENTA = (255, 0, 255)
MARKER_SCORE = 0.9
_STRIDES = (8, 16, 32)


def marker_rows(input_size: int) -> int:
    return sum((input_size // s) ** 2 for s in _STRIDES)


def write_marker_model(path: Path, *, label: str = "FEMALE_BREAST_EXPOSED", input_size: int = 320) -> Path:
    if label not in NUDENET_CLASSES:
        raise ValueError(f"{label} is not a NudeNet class")
    if input_size % 32:
        raise ValueError("input_size must be a multiple of 32")
    s = input_size
    n = marker_rows(s)
    cells = (s // 8) ** 2
    # pixel-centre coordinates, to weight the map for the centroid
    xs = np.broadcast_to((np.arange(s, dtype=np.float32) + 0.5)[None, None, None, :], (1, 1, s, s))
    ys = np.broadcast_to((np.arange(s, dtype=np.float32) + 0.5)[None, None, :, None], (1, 1, s, s))
    consts = {
        "xs": np.ascontiguousarray(xs),
        "ys": np.ascontiguousarray(ys),
        "c0": np.array([0], np.int64),
        "c1": np.array([1], np.int64),
        "c2": np.array([2], np.int64),
        "c3": np.array([3], np.int64),
        "ax1": np.array([1], np.int64),
        "ax123": np.array([1, 2, 3], np.int64),
        "twelve": np.array(12.0, np.float32),
        "knee": np.array(0.8, np.float32),  # magenta-ness must exceed this to count
        "gain": np.array(5.0, np.float32),
        "one": np.array(1.0, np.float32),
        "zero": np.array(0.0, np.float32),
        "eps": np.array(1e-6, np.float32),
        "score": np.array(MARKER_SCORE, np.float32),
        "flat_shape": np.array([0, 1, cells], np.int64),
        "box_shape": np.array([0, 4, 1], np.int64),
        "pads": np.array([0, 0, 0, 0, 0, n - cells], np.int64),
    }
    init = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    node = helper.make_node
    nodes = [
        node("Slice", ["images", "c0", "c1", "ax1"], ["r"]),
        node("Slice", ["images", "c1", "c2", "ax1"], ["g"]),
        node("Slice", ["images", "c2", "c3", "ax1"], ["b"]),
        node("Min", ["r", "b"], ["rb"]),
        node("Sub", ["rb", "g"], ["raw"]),
        node("Sub", ["raw", "knee"], ["shifted"]),
        node("Mul", ["shifted", "gain"], ["scaled"]),
        node("Clip", ["scaled", "zero", "one"], ["m"]),  # (B,1,S,S) in 0..1
        # per-cell score at stride 8, padded with zeros for the stride-16/32 rows
        node("AveragePool", ["m"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        node("Reshape", ["pooled", "flat_shape"], ["frac"]),
        node("Mul", ["frac", "score"], ["cell_score"]),
        node("Pad", ["cell_score", "pads"], ["row_score"]),  # (B,1,N)
        node("Mul", ["row_score", "zero"], ["row_zero"]),
        # the marker's box from sums over the map
        node("ReduceSum", ["m", "ax123"], ["mass"], keepdims=1),
        node("Add", ["mass", "eps"], ["mass_eps"]),
        node("Mul", ["m", "xs"], ["mx"]),
        node("Mul", ["m", "ys"], ["my"]),
        node("ReduceSum", ["mx", "ax123"], ["sx"], keepdims=1),
        node("ReduceSum", ["my", "ax123"], ["sy"], keepdims=1),
        node("Div", ["sx", "mass_eps"], ["cx"]),
        node("Div", ["sy", "mass_eps"], ["cy"]),
        # a uniform w-pixel run has variance (w^2 - 1) / 12
        node("Mul", ["mx", "xs"], ["mxx"]),
        node("Mul", ["my", "ys"], ["myy"]),
        node("ReduceSum", ["mxx", "ax123"], ["sxx"], keepdims=1),
        node("ReduceSum", ["myy", "ax123"], ["syy"], keepdims=1),
        node("Div", ["sxx", "mass_eps"], ["ex2"]),
        node("Div", ["syy", "mass_eps"], ["ey2"]),
        node("Mul", ["cx", "cx"], ["cx2"]),
        node("Mul", ["cy", "cy"], ["cy2"]),
        node("Sub", ["ex2", "cx2"], ["varx"]),
        node("Sub", ["ey2", "cy2"], ["vary"]),
        node("Mul", ["varx", "twelve"], ["vx12"]),
        node("Mul", ["vary", "twelve"], ["vy12"]),
        node("Add", ["vx12", "one"], ["vx12p"]),
        node("Add", ["vy12", "one"], ["vy12p"]),
        node("Relu", ["vx12p"], ["vxpos"]),
        node("Relu", ["vy12p"], ["vypos"]),
        node("Sqrt", ["vxpos"], ["bw"]),
        node("Sqrt", ["vypos"], ["bh"]),
        node("Concat", ["cx", "cy", "bw", "bh"], ["box4"], axis=1),  # (B,4,1,1)
        node("Reshape", ["box4", "box_shape"], ["box"]),  # (B,4,1)
        node("Add", ["box", "row_zero"], ["boxes"]),  # (B,4,N)
    ]
    class_rows = ["row_score" if name == label else "row_zero" for name in NUDENET_CLASSES]
    nodes.append(node("Concat", ["boxes", *class_rows], ["output0"], axis=1))
    graph = helper.make_graph(
        nodes,
        "vigil_marker",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, s, s])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + len(NUDENET_CLASSES), n])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="vigil-tests")
    model.ir_version = 8  # readable by every onnxruntime Vigil supports
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def marker_box(
    shape: tuple[int, ...], frac: float = 0.25, at: tuple[int, int] | None = None
) -> tuple[int, int, int, int]:
    """Where ``add_marker`` draws: x, y, w, h of a square of side frac * the shorter side,
    cut to the image if ``at`` puts part of it outside."""
    h, w = shape[:2]
    side = max(1, int(round(min(h, w) * frac)))
    x, y = at if at is not None else ((w - side) // 2, (h - side) // 2)
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"marker origin {x, y} is outside the {w}x{h} image")
    return x, y, min(side, w - x), min(side, h - y)


def add_marker(rgb: np.ndarray, frac: float = 0.25, *, at: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of the image with a magenta square (side frac * shorter side), centred unless ``at``."""
    x, y, w, h = marker_box(rgb.shape, frac, at)
    out = rgb.copy()
    out[y : y + h, x : x + w] = MAGENTA
    return out
