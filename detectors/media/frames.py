"""What a decode gives back, and the two rules both decoders follow: which frames, at what size.

``min_side`` rule (``reduction``): every frame is returned at the largest power-of-two
reduction (1, 2, 4, 8, ...) that keeps its *shorter* side >= ``min_side`` (sides round up),
so the same picture comes out at the same size whatever its format. Sampling
(``sample_indices``): up to ``max_frames`` frames evenly spread, first and last included.
Frames are read-only arrays (``frozen``): one decoded picture is shared by the hashers and
the detectors, and none of them may change it for the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.errors import CorruptMedia


@dataclass(frozen=True)
class Frame:
    """One decoded picture."""

    rgb: np.ndarray  # HxWx3 uint8, RGB, C-contiguous, read-only, orientation applied
    index: int  # frame index in the source (0 for a still image)


@dataclass(frozen=True)
class DecodedMedia:
    format: str  # "JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF", "MP4", "MOV", "WEBM", "MKV"
    width: int  # of the full source picture, after orientation
    height: int
    frame_count: int  # frames in the source (1 for a still); best effort for video
    # sampled: <= max_frames, spread evenly, first and last included (a long video
    # with costly seeks: the keyframes before those frames, see _plan_samples)
    frames: tuple[Frame, ...]
    animated: bool


def sample_indices(count: int, k: int) -> list[int]:
    """Up to ``k`` indices out of ``range(count)``, evenly spread, first and last included."""
    if count <= 0 or k <= 0:
        return []
    if count <= k:
        return list(range(count))
    if k == 1:
        return [0]
    # rounded i*(count-1)/(k-1) in integers; distinct because count > k
    return [(i * (count - 1) + (k - 1) // 2) // (k - 1) for i in range(k)]


def reduction(width: int, height: int, min_side: int | None) -> int:
    """The largest power of two that keeps the shorter side >= min_side."""
    if min_side is None:
        return 1
    factor, short = 1, min(width, height)
    while short // (factor * 2) >= min_side:
        factor *= 2
    return factor


def frozen(rgb: np.ndarray) -> np.ndarray:
    """The pixels as a C-contiguous, read-only HxWx3 uint8 array; CorruptMedia for anything else."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CorruptMedia(f"decoding gave pixels of shape {rgb.shape} and type {rgb.dtype}")
    rgb = np.ascontiguousarray(rgb)
    rgb.flags.writeable = False
    return rgb
