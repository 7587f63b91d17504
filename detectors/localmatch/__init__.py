"""Local-feature matching: find where an image comes from even when it was cropped,
captioned, screenshotted, mirrored or partly replaced.

Whole-image hashes (``detectors.hashing``) describe the picture as a whole, so a crop, a
caption bar, a screenshot frame or a replaced body moves them far from the original. This
package describes an image by a few hundred small patches instead and asks whether two
images share a large region that lines up under one geometric transform.

It is cut along the three questions it answers, each in its own module with its own
parameters and reasons:

``fingerprints``  what is kept of an image: ORB keypoints and descriptors (``Fingerprint``,
                  ``fingerprint``, ``with_inset``), and their compact byte form;
``verification``  whether two fingerprints share a region under one similarity (``verify``,
                  ``RegionMatch``);
``index``         which known images a query may share one with (``LocalIndex``): an inverted
                  file that votes, then verification of the best-voted.

Import from here: the names below are the package's interface. How well and how fast it
traces copies (recall, false matches, fingerprint and search times, memory per known image)
is printed by bench/bench_localmatch.py and summarised in the README's "Speed and memory".
"""

from __future__ import annotations

from detectors.localmatch.fingerprints import (
    DETECT_KEYPOINTS,
    FRAME,
    KNOWN_KEYPOINTS,
    MIN_SIDE,
    QUERY_KEYPOINTS,
    WORK_SIDE,
    Fingerprint,
    empty_fingerprint,
    fingerprint,
    with_inset,
)
from detectors.localmatch.index import MAX_BUCKET, MIN_FRACTION, MIN_VOTES, SHORTLIST, LocalIndex
from detectors.localmatch.verification import MIN_INLIERS, RegionMatch, one_omp_thread, verify

__all__ = [
    "DETECT_KEYPOINTS",
    "FRAME",
    "KNOWN_KEYPOINTS",
    "MAX_BUCKET",
    "MIN_FRACTION",
    "MIN_INLIERS",
    "MIN_SIDE",
    "MIN_VOTES",
    "QUERY_KEYPOINTS",
    "SHORTLIST",
    "WORK_SIDE",
    "Fingerprint",
    "LocalIndex",
    "RegionMatch",
    "empty_fingerprint",
    "fingerprint",
    "one_omp_thread",
    "verify",
    "with_inset",
]
