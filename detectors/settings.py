"""Detector settings as frozen values; ``bot.config`` builds them from TOML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# NudeNet 3.x classes, in the model's output order.
NUDENET_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)

# Classes that count as nudity by default, with their delete thresholds.
# Faces, feet, belly, armpits, covered parts and a male chest never count.
DEFAULT_CLASS_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        "FEMALE_GENITALIA_EXPOSED": 0.45,
        "MALE_GENITALIA_EXPOSED": 0.45,
        "FEMALE_BREAST_EXPOSED": 0.5,
        "BUTTOCKS_EXPOSED": 0.55,
        "ANUS_EXPOSED": 0.45,
    }
)


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_frames: int = 8  # frames sampled from an animation or video
    # memory one file may take once decoded (width x height x bytes per pixel of its colour
    # mode, x2 for animations that draw on the previous frame); also the budget all the
    # decodes running at once share
    max_decoded_bytes: int = 128 * 2**20


@dataclass(frozen=True)
class ModelSource:
    """Where a model file comes from: None means the file a package ships."""

    path: Path | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DetectorSettings:
    limits: MediaLimits = MediaLimits()
    nudity_model: ModelSource = ModelSource()
    nsfw_model: ModelSource = ModelSource()
    nsfw_enabled: bool = True
    # per-class delete thresholds; a class absent here never counts
    class_thresholds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_CLASS_THRESHOLDS)
    # a score this far below a class's delete threshold asks the admins
    review_band: float = 0.2
    # Open-NSFW alone never deletes: at or above this it asks the admins
    nsfw_review: float = 0.85
    # threads onnxruntime may use per session (0: one, the scans run in parallel instead)
    threads: int = 0
    # provenance metadata (C2PA, XMP, EXIF, PNG text): evidence of a generative model
    provenance: bool = True
    c2pa: bool = True
    generator_files: tuple[Path, ...] = ()  # operator's extra generator names (TOML)
    # an operator's learned detector of AI-made images (detectors.synthetic.ClassifierSpec)
    synthetic: object | None = None
