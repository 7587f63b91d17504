"""Splitting a YOLOv8 detector's ONNX graph at its head: class scores first, boxes on demand.

A YOLOv8 "Detect" head has, at each stride, two branches on the same neck feature: a box
branch (a few convolutions, then distribution-focal decoding) and a class branch; their
outputs are concatenated into one ``[batch, 4 + classes, rows]`` output. Whether an image
can hold a detection of some class depends on the class branch alone, so the graph is cut
into two stages that together are the original graph, node for node:

- ``screen``: the image in; out come each stride's raw class logits and the neck features
  the box branches start from;
- ``boxes``: those tensors in; out comes the model's original output, computed by the
  original nodes (box branches, decoding, sigmoid, concatenation).

Running ``screen`` then ``boxes`` gives exactly the output of the whole graph (checked when
a detector is built: ``detectors.nudity``), so the second stage can be skipped for an image
whose class logits prove that nothing it could find would count. The graph is found by its
structure, not by node names; a model without this structure is not split.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

# Read back from the derived graphs' metadata: which outputs/inputs are class logits.
META_CLASS_LOGITS = "vigil.class_logits"
META_FEATURES = "vigil.features"


@dataclass(frozen=True)
class HeadPlan:
    image: str  # the graph's image input
    output: str  # the graph's one output
    class_logits: tuple[str, ...]  # per stride: [batch, classes, h, w] before the sigmoid
    features: tuple[str, ...]  # the neck tensors the box branches read


def plan(model: onnx.ModelProto, classes: int, box_channels: int = 64) -> HeadPlan | None:
    """Where to cut, or None if the graph is not a single-output YOLOv8 detector with that head."""
    g = model.graph
    inits = {i.name: tuple(i.dims) for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        return None
    producer = {t: n for n in g.node for t in n.output}

    def conv_channels(tensor: str) -> int | None:
        node = producer.get(tensor)
        if node is None or node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            return None
        return inits[node.input[1]][0]

    heads = []  # (box conv output, class conv output) per stride
    for n in g.node:
        if n.op_type != "Concat" or len(n.input) != 2:
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), None)
        a, b = n.input
        if axis == 1 and conv_channels(a) == box_channels and conv_channels(b) == classes:
            heads.append((a, b))
    if not heads:
        return None

    def ancestors(tensors) -> set[int]:
        seen: set[int] = set()
        stack = list(tensors)
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            stack.extend(node.input)
        return seen

    class_side = ancestors(c for _, c in heads)
    box_only = ancestors(b for b, _ in heads) - class_side
    produced_box_only = {t for n in g.node if id(n) in box_only for t in n.output}
    features: list[str] = []
    for n in g.node:
        if id(n) not in box_only:
            continue
        for t in n.input:
            if t and t not in inits and t not in produced_box_only and t not in features:
                features.append(t)
    if not features or inputs[0] in features:
        return None
    return HeadPlan(inputs[0], g.output[0].name, tuple(c for _, c in heads), tuple(features))


def screen_graph(data: bytes, classes: int) -> bytes | None:
    """The first stage (image in; class logits and neck features out), serialised."""
    model = onnx.load_from_string(data)
    p = plan(model, classes)
    if p is None:
        return None
    stage = Extractor(model).extract_model([p.image], [*p.class_logits, *p.features])
    return _tagged(stage, model, p)


def boxes_graph(data: bytes, classes: int) -> bytes | None:
    """The second stage (neck features and class logits in; the model's output out), serialised."""
    model = onnx.load_from_string(data)
    p = plan(model, classes)
    if p is None:
        return None
    stage = Extractor(model).extract_model([*p.features, *p.class_logits], [p.output])
    if {i.name for i in stage.graph.input} - {*p.features, *p.class_logits}:
        return None  # the tail needs something else (e.g. the image's own shape): not split
    return _tagged(stage, model, p)


def _tagged(stage: onnx.ModelProto, source: onnx.ModelProto, p: HeadPlan) -> bytes:
    # the extracted graph keeps the source's opsets; its metadata names the cut's tensors
    del stage.metadata_props[:]
    for key, value in ((META_CLASS_LOGITS, p.class_logits), (META_FEATURES, p.features)):
        entry = stage.metadata_props.add()
        entry.key, entry.value = key, "\n".join(value)
    stage.ir_version = source.ir_version
    return stage.SerializeToString()
