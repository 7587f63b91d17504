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

Both stages keep the original nodes (every field of them), weights, opsets and metadata, so
running one after the other gives the whole graph's output bit for bit (tests/test_nudity.py
checks it on every test image). The graph is found by its structure, not by node names; a
model without this structure (or with functions, custom operators or subgraphs) is not split.
Only onnxruntime's own dependency, protobuf, is used: the few ONNX fields read or written here
are declared below, and the other fields of the nodes and weights pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Metadata of the derived graphs: which tensors are the class logits and the neck features.
META_CLASS_LOGITS = "vigil.class_logits"
META_FEATURES = "vigil.features"
_FLOAT = 1  # ONNX TensorProto.FLOAT
_SUBGRAPH_OPS = {"If", "Loop", "Scan"}  # nodes that carry graphs of their own: never split


def _schema() -> Any:
    """Message classes for the ONNX fields this module reads or writes (onnx.proto numbers)."""
    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    messages: dict[str, list[tuple[str, int, int, int, str | None]]] = {
        "Tensor": [("dims", 1, rep, F.TYPE_INT64, None), ("name", 8, opt, F.TYPE_STRING, None)],
        "Attribute": [("name", 1, opt, F.TYPE_STRING, None), ("i", 3, opt, F.TYPE_INT64, None)],
        "Node": [
            ("input", 1, rep, F.TYPE_STRING, None),
            ("output", 2, rep, F.TYPE_STRING, None),
            ("name", 3, opt, F.TYPE_STRING, None),
            ("op_type", 4, opt, F.TYPE_STRING, None),
            ("attribute", 5, rep, F.TYPE_MESSAGE, "Attribute"),
            ("domain", 7, opt, F.TYPE_STRING, None),
        ],
        "OpsetId": [("domain", 1, opt, F.TYPE_STRING, None), ("version", 2, opt, F.TYPE_INT64, None)],
        "TensorType": [("elem_type", 1, opt, F.TYPE_INT32, None)],
        "Type": [("tensor_type", 1, opt, F.TYPE_MESSAGE, "TensorType")],
        "ValueInfo": [("name", 1, opt, F.TYPE_STRING, None), ("type", 2, opt, F.TYPE_MESSAGE, "Type")],
        "Graph": [
            ("node", 1, rep, F.TYPE_MESSAGE, "Node"),
            ("initializer", 5, rep, F.TYPE_MESSAGE, "Tensor"),
            ("input", 11, rep, F.TYPE_MESSAGE, "ValueInfo"),
            ("output", 12, rep, F.TYPE_MESSAGE, "ValueInfo"),
            ("value_info", 13, rep, F.TYPE_MESSAGE, "ValueInfo"),
        ],
        "Entry": [("key", 1, opt, F.TYPE_STRING, None), ("value", 2, opt, F.TYPE_STRING, None)],
        "Model": [
            ("ir_version", 1, opt, F.TYPE_INT64, None),
            ("producer_name", 2, opt, F.TYPE_STRING, None),
            ("producer_version", 3, opt, F.TYPE_STRING, None),
            ("graph", 7, opt, F.TYPE_MESSAGE, "Graph"),
            ("opset_import", 8, rep, F.TYPE_MESSAGE, "OpsetId"),
            ("metadata_props", 14, rep, F.TYPE_MESSAGE, "Entry"),
        ],
    }
    fd = descriptor_pb2.FileDescriptorProto(
        name="vigil_onnx_subset.proto", package="vigil_onnx_subset", syntax="proto2"
    )
    for msg, fields in messages.items():
        m = fd.message_type.add(name=msg)
        for name, number, label, kind, ref in fields:
            f = m.field.add(name=name, number=number, label=label, type=kind)
            if ref:
                f.type_name = f".vigil_onnx_subset.{ref}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("vigil_onnx_subset.Model"))


_Model = _schema()
# a message of that schema: its classes are made at run time, so no static type describes its fields
_Message = Any


@dataclass(frozen=True)
class HeadPlan:
    image: str  # the graph's image input
    output: str  # the graph's one output
    class_logits: tuple[str, ...]  # per stride: [batch, classes, h, w] before the sigmoid
    features: tuple[str, ...]  # the neck tensors the box branches read


def plan(model: _Message, classes: int, box_channels: int = 64) -> HeadPlan | None:
    """Where to cut, or None if the graph is not a single-output YOLOv8 detector with that head."""
    g = model.graph
    inits = {i.name: tuple(i.dims) for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        return None
    if any(n.op_type in _SUBGRAPH_OPS or n.domain not in ("", "ai.onnx") for n in g.node):
        return None  # subgraphs, functions or custom operators: not a plain YOLOv8 export
    producer = {t: k for k, n in enumerate(g.node) for t in n.output}

    def conv_channels(tensor: str) -> int | None:
        k = producer.get(tensor)
        node = g.node[k] if k is not None else None
        if node is None or node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            return None
        return int(inits[node.input[1]][0])

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
    class_side = _ancestors(g, producer, [c for _, c in heads])
    box_only = _ancestors(g, producer, [b for b, _ in heads]) - class_side
    made_box_only = {t for k in box_only for t in g.node[k].output}
    features: list[str] = []
    for k in sorted(box_only):
        for t in g.node[k].input:
            if t and t not in inits and t not in made_box_only and t not in features:
                features.append(t)
    if not features or inputs[0] in features:
        return None
    return HeadPlan(inputs[0], g.output[0].name, tuple(c for _, c in heads), tuple(features))


def split(data: bytes, classes: int) -> tuple[bytes, bytes] | None:
    """(screen, boxes) graphs, serialised, or None when the model does not split.

    Memory: each stage is built from scratch (never a copy of the whole model) and serialised
    at once, so at most the parsed model, one stage and the serialised stages are alive."""
    model = _Model.FromString(data)
    p = plan(model, classes)
    if p is None:
        return None
    out = []
    for inputs, outputs in (([p.image], [*p.class_logits, *p.features]), ([*p.features, *p.class_logits], [p.output])):
        stage = _stage(model, p, inputs=inputs, outputs=outputs)
        if stage is None:
            return None
        out.append(stage.SerializeToString())
        del stage
    return out[0], out[1]


def _ancestors(
    g: _Message, producer: dict[str, int], tensors: list[str], stop: frozenset[str] = frozenset()
) -> set[int]:
    """Indices of the nodes the tensors are computed from (not past the ``stop`` tensors)."""
    seen: set[int] = set()
    stack = [t for t in tensors if t not in stop]
    while stack:
        k = producer.get(stack.pop())
        if k is None or k in seen:
            continue
        seen.add(k)
        stack.extend(t for t in g.node[k].input if t and t not in stop)
    return seen


def _stage(model: _Message, p: HeadPlan, inputs: list[str], outputs: list[str]) -> _Message | None:
    """The part of the graph that computes ``outputs`` from ``inputs`` (and the weights)."""
    g = model.graph
    producer = {t: k for k, n in enumerate(g.node) for t in n.output}
    keep = _ancestors(g, producer, outputs, stop=frozenset(inputs))
    inits = {i.name for i in g.initializer}
    available = set(inputs) | inits | {t for k in keep for t in g.node[k].output}
    if any(t and t not in available for k in keep for t in g.node[k].input):
        return None  # the part needs something else (e.g. the image's own shape): not split
    used = {t for k in keep for t in g.node[k].input}
    originals = {v.name: v for v in [*g.input, *g.output]}
    stage = _Model(
        ir_version=model.ir_version, producer_name=model.producer_name, producer_version=model.producer_version
    )
    stage.opset_import.extend(model.opset_import)
    stage.metadata_props.extend(model.metadata_props)
    sg = stage.graph
    sg.node.extend(g.node[k] for k in sorted(keep))  # the original order is a topological one
    sg.initializer.extend(i for i in g.initializer if i.name in used)
    for field, names in ((sg.input, inputs), (sg.output, outputs)):
        for name in names:
            if name in originals:
                field.add().CopyFrom(originals[name])
            else:  # a tensor inside the graph: float, shape left to onnxruntime
                field.add(name=name).type.tensor_type.elem_type = _FLOAT
    for key, tensors in ((META_CLASS_LOGITS, p.class_logits), (META_FEATURES, p.features)):
        stage.metadata_props.add(key=key, value="\n".join(tensors))
    return stage
