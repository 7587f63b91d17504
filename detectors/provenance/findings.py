"""What a provenance finding is, and which IPTC/C2PA digital source types count.

The vocabulary shared by the readers of metadata (``metadata``), of Content Credentials
(``credentials``) and the scanner that turns both into findings (``scanner``).

Which IPTC digital source types count (``GENERATIVE_SOURCE_TYPES``):
``trainedAlgorithmicMedia`` (made by a trained model), ``compositeWithTrainedAlgorithmicMedia``
(a composite with generated parts, e.g. generative fill), ``compositeSynthetic`` (a
composite with synthetic parts, which includes generated ones), ``algorithmicMedia``
(made by software rather than captured; the term itself is for non-AI algorithms, so
the alert says so) and C2PA's ``trainedAlgorithmicData``. Not counted:
``algorithmicallyEnhanced`` (phones put it on ordinary photos after computational
clean-up), ``dataDrivenMedia``, ``digitalCreation``, captures, composites of captures,
screen captures, scans and human edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAX_GENERATOR_NAME = 80  # characters of an unknown tool name shown in an alert

SOURCES = ("c2pa", "xmp", "exif", "png-text")

# IPTC (cv.iptc.org/newscodes/digitalsourcetype/) and C2PA (c2pa.org/digitalsourcetype/)
# terms that count, with how an alert explains them. See the module docstring.
GENERATIVE_SOURCE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "trainedAlgorithmicMedia": "made by a generative AI model",
        "compositeWithTrainedAlgorithmicMedia": "edited with parts made by a generative AI model",
        "compositeSynthetic": "a composite that includes synthetic (possibly AI-made) parts",
        "algorithmicMedia": (
            "made by software rather than captured by a camera (the term is for "
            "algorithms other than trained AI models)"
        ),
        "trainedAlgorithmicData": "data made by a generative AI model",
    }
)


@dataclass(frozen=True)
class ProvenanceFinding:
    """One piece of evidence that a generative model made or altered the image."""

    source: str  # "c2pa" | "xmp" | "exif" | "png-text"
    signal: str  # e.g. "digitalSourceType=trainedAlgorithmicMedia", "generator=ComfyUI"
    detail: str  # short text for an admin alert; never prompt text
    generator: str | None


def source_type_term(value: str | None) -> str | None:
    """The generative term in a digitalSourceType URI or bare term, else None."""
    if not value:
        return None
    term = value.strip().rstrip("/").rsplit("/", 1)[-1]
    for known in GENERATIVE_SOURCE_TYPES:
        if term.casefold() == known.casefold():
            return known
    return None


def shortened(text: str) -> str:
    """A tool name or text for an alert: one line, at most ``MAX_GENERATOR_NAME`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_GENERATOR_NAME else text[: MAX_GENERATOR_NAME - 1] + "…"
