"""One scan of one image or animation: decode once, hash, run the models in batches, label.

Safe to call from worker threads: the models are loaded once per process (see
``detectors.models``) and nothing here keeps mutable state between calls.

Work that cannot change the label is skipped; each skip is a proof, not an estimate
(parity with running everything is measured in bench/bench_scan.py and tests/test_scanner.py):

- boxes: NudeNet's box stage runs only for frames where a class that counts scored above
  the NMS floor (``NudityDetector.screen_batch``); elsewhere ``detections`` is empty and
  ``FrameScan.screened`` says why (faces and other classes that never count are not listed);
- Open-NSFW runs only for images whose detections leave the label ``clean`` under the
  loosest thresholds any caller can judge with (``verdict.nsfw_can_matter``): the NSFW score
  can only raise a clean label to review. Elsewhere ``nsfw`` is None;
- frames of one animation that are pixel for pixel the same as an earlier frame reuse its
  hashes and model outputs (deterministic models on the same input give the same output).
  Frames that are only alike are all computed: nothing proves a model would agree on them.

``models=False`` is the first, cheap pass of a chat with block lists: decode and hashes only
(``Scan.checked`` is then False, its label proves nothing). A copy of a blocked image is deleted
on that alone; anything else gets the whole scan.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.errors import MediaError
from detectors.hashing import ImageHashes, perceptual_hashes, sha256_hex
from detectors.localmatch import Fingerprint
from detectors.matching import View, fingerprint_of, frame_views
from detectors.media import DecodedMedia, Frame, decode
from detectors.models import release_freed_memory
from detectors.nsfw import NsfwClassifier
from detectors.nudity import Detection, NudityDetector
from detectors.provenance import ProvenanceFinding, ProvenanceScanner
from detectors.settings import DetectorSettings
from detectors.verdict import Hit, Thresholds, judge_frames, nsfw_can_matter

# How many frames go through a model in one call: larger batches gain little on
# two cores and cost memory.
BATCH = 4


@dataclass(frozen=True)
class FrameScan:
    index: int  # frame index in the source
    detections: tuple[Detection, ...]  # boxes in the source image's pixels
    nsfw: float | None  # None: Open-NSFW is off, or not run because it could not change the label
    hashes: ImageHashes
    synthetic: float | None = None  # the operator's learned AI-image detector, when configured
    # list-matching signals, computed only when asked (scan(..., list_signals=True)) while
    # the pixels are in memory: trimmed views with rotations (detectors.matching.View)
    # and the local-feature fingerprint (detectors.localmatch.Fingerprint)
    views: tuple[View, ...] = ()
    fingerprint: Fingerprint | None = None
    # True when NudeNet's class scores proved that no class that counts is in the frame:
    # its boxes were not computed, so ``detections`` is empty even of classes that never count
    screened: bool = False
    # the index (in ``Scan.frames``) of an earlier frame with the very same pixels whose
    # results this frame reuses, else None
    same_as: int | None = None


@dataclass(frozen=True)
class Scan:
    label: str  # "clean" | "review" | "nudity"
    hits: tuple[Hit, ...]  # the detections that earned the label, worst first
    frames: tuple[FrameScan, ...]
    format: str
    width: int
    height: int
    frame_count: int
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # evidence in the file's metadata that a generative model made or altered it;
    # positive findings only: an empty tuple proves nothing
    provenance: tuple[ProvenanceFinding, ...] = ()
    # False for a hashes-only pass (``models=False``): no model ran, the label is not a finding
    checked: bool = True

    @property
    def hashes(self) -> ImageHashes:
        """The first frame's hashes (a still image has only one)."""
        return self.frames[0].hashes

    @property
    def detections(self) -> tuple[Detection, ...]:
        return tuple(d for f in self.frames for d in f.detections)

    @property
    def nsfw(self) -> float | None:
        scores = [f.nsfw for f in self.frames if f.nsfw is not None]
        return max(scores) if scores else None

    @property
    def synthetic(self) -> float | None:
        scores = [f.synthetic for f in self.frames if f.synthetic is not None]
        return max(scores) if scores else None


def thresholds_from(settings: DetectorSettings) -> Thresholds:
    return Thresholds(
        classes=dict(settings.class_thresholds),
        review_band=settings.review_band,
        nsfw_review=settings.nsfw_review,
    )


class Scanner:
    def __init__(self, settings: DetectorSettings = DetectorSettings()) -> None:
        self.settings = settings
        self.thresholds = thresholds_from(settings)
        # One thread per model by default: callers run several scans in parallel instead, which
        # keeps both cores busy without onnxruntime's threads fighting each other.
        threads = settings.threads or 1
        self.nudity = NudityDetector(settings.nudity_model, threads=threads)
        self.nsfw = NsfwClassifier(settings.nsfw_model, threads=threads) if settings.nsfw_enabled else None
        self.provenance = (
            ProvenanceScanner(settings.generator_files, c2pa=settings.c2pa) if settings.provenance else None
        )
        self.synthetic = None
        if settings.synthetic is not None:
            from detectors.synthetic import SyntheticDetector

            self.synthetic = SyntheticDetector(settings.synthetic, threads=threads)  # type: ignore[arg-type]
        release_freed_memory()  # loading read and parsed whole model files: give back what was freed

    def scan(self, data: bytes, *, list_signals: bool = False, models: bool = True) -> Scan:
        """Scan one file's bytes; raises a ``MediaError`` for input Vigil refuses.

        ``list_signals``: also compute each frame's views and fingerprint for list matching.
        ``models``: False for decode and hashes only (see the module docstring).
        """
        result = self.scan_many([data], list_signals=list_signals, models=models)[0]
        if isinstance(result, MediaError):
            raise result
        return result

    def scan_many(
        self, items: Sequence[bytes], *, list_signals: bool = False, models: bool = True
    ) -> list[Scan | MediaError]:
        """Scan several files, sharing model batches; a refused file gives its error."""
        started = time.perf_counter()
        decoded: list[DecodedMedia | MediaError] = []
        for data in items:
            try:
                decoded.append(decode(data, self.settings.limits, min_side=self.nudity.input_size))
            except MediaError as exc:
                decoded.append(exc)
        t_decode = time.perf_counter()

        frames = [(i, f) for i, m in enumerate(decoded) if not isinstance(m, MediaError) for f in m.frames]
        pixels = [f.rgb for _, f in frames]
        same = _repeated_frames(frames)  # frame k -> the earlier frame with the same pixels
        unique = [k for k in range(len(frames)) if k not in same]
        upix = [pixels[k] for k in unique]
        uhashes = [perceptual_hashes(p) for p in upix]
        usignals = [list_signals_of(p) if list_signals else ((), None) for p in upix]
        t_hash = time.perf_counter()
        udets: list[tuple[Detection, ...] | None] = []
        counting = tuple(self.thresholds.classes)
        for start in range(0, len(upix) if models else 0, BATCH):
            udets.extend(self.nudity.screen_batch(upix[start : start + BATCH], counting))
        if not models:
            udets = [()] * len(upix)
        t_nudity = time.perf_counter()
        # Open-NSFW only where it could change the label (verdict.nsfw_can_matter)
        by_item: dict[int, list[int]] = {}
        for u, k in enumerate(unique):
            by_item.setdefault(frames[k][0], []).append(u)
        wanted = [
            u
            for us in by_item.values()
            if models and nsfw_can_matter([((d.label, d.score) for d in udets[u] or ()) for u in us], self.thresholds)
            for u in us
        ]
        unsfw: list[float | None] = [None] * len(upix)
        if self.nsfw is not None:
            for start in range(0, len(wanted), BATCH):
                part = wanted[start : start + BATCH]
                for u, score in zip(part, self.nsfw.score_batch([upix[u] for u in part]), strict=False):
                    unsfw[u] = score
        usynthetic: list[float | None] = [None] * len(upix)
        if self.synthetic is not None and models:
            usynthetic = []
            for start in range(0, len(upix), BATCH):
                usynthetic.extend(self.synthetic.score_batch(upix[start : start + BATCH]))
        t_nsfw = time.perf_counter()
        provenance = {
            i: self.provenance.scan(items[i]) if self.provenance is not None else ()
            for i, m in enumerate(decoded)
            if not isinstance(m, MediaError)
        }
        t_provenance = time.perf_counter()

        slot = {k: u for u, k in enumerate(unique)}
        first_of_item: dict[int, int] = {}
        per_item: dict[int, list[FrameScan]] = {}
        sha = {i: sha256_hex(items[i]) for i in {i for i, _ in frames}}
        for k, (i, frame) in enumerate(frames):
            media = decoded[i]
            assert not isinstance(media, MediaError)
            first_of_item.setdefault(i, k)
            u = slot[same.get(k, k)]
            scale = media.width / frame.rgb.shape[1]
            pdq, quality, phash, dhash = uhashes[u]
            dets = udets[u]
            per_item.setdefault(i, []).append(
                FrameScan(
                    index=frame.index,
                    detections=tuple(_scaled(d, scale, media.width, media.height) for d in dets or ()),
                    nsfw=unsfw[u],
                    hashes=ImageHashes(pdq, quality, phash, dhash, sha[i]),
                    synthetic=usynthetic[u],
                    views=usignals[u][0],
                    fingerprint=usignals[u][1],
                    screened=dets is None,
                    same_as=same[k] - first_of_item[i] if k in same else None,
                )
            )
        n = max(1, len(items))
        shared = {
            "decode": (t_decode - started) * 1000 / n,
            "hashes": (t_hash - t_decode) * 1000 / n,
            "nudity": (t_nudity - t_hash) * 1000 / n,
            "nsfw": (t_nsfw - t_nudity) * 1000 / n,
            "provenance": (t_provenance - t_nsfw) * 1000 / n,
        }
        shared["total"] = sum(shared.values())
        results: list[Scan | MediaError] = []
        for i, media in enumerate(decoded):
            if isinstance(media, MediaError):
                results.append(media)
                continue
            scans = tuple(per_item[i])
            label, hits = judge_frames(
                [(((d.label, d.score) for d in f.detections), f.nsfw) for f in scans], self.thresholds
            )
            results.append(
                Scan(
                    label=label,
                    hits=hits,
                    frames=scans,
                    format=media.format,
                    width=media.width,
                    height=media.height,
                    frame_count=media.frame_count,
                    timings_ms=dict(shared),
                    provenance=provenance.get(i, ()),
                    checked=models,
                )
            )
        return results


def _repeated_frames(frames: Sequence[tuple[int, Frame]]) -> dict[int, int]:
    """Frame k -> the first earlier frame of the same file with exactly the same pixels.

    A sparse sample is compared first, so frames that differ cost next to nothing; the whole
    arrays are compared before anything is reused."""
    same: dict[int, int] = {}
    seen: dict[tuple[int, tuple[int, ...], bytes], list[int]] = {}
    for k, (i, frame) in enumerate(frames):
        rgb = frame.rgb
        key = (i, rgb.shape, np.ascontiguousarray(rgb[::17, ::13]).tobytes())
        for j in seen.get(key, ()):
            if np.array_equal(frames[j][1].rgb, rgb):
                same[k] = j
                break
        else:
            seen.setdefault(key, []).append(k)
    return same


def list_signals_of(rgb: np.ndarray) -> tuple[tuple[View, ...], Fingerprint | None]:
    """A frame's views (trimmed, with rotations) and local fingerprint, for list matching."""
    return frame_views(rgb), fingerprint_of(rgb)


def _scaled(d: Detection, scale: float, width: int, height: int) -> Detection:
    """A box found on a reduced decode, in the source image's pixels."""
    if scale == 1.0:
        return d
    x, y, w, h = (int(round(v * scale)) for v in d.box)
    x, y = min(max(0, x), width), min(max(0, y), height)
    return Detection(d.label, d.score, (x, y, min(w, width - x), min(h, height - y)))
