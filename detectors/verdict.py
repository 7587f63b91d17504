"""Turning detector outputs into one label: a pure function, shared by the scanner and the bot's policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CLEAN, REVIEW, NUDITY = "clean", "review", "nudity"
_RANK = {CLEAN: 0, REVIEW: 1, NUDITY: 2}
# Bounds of a shifted threshold (``Thresholds.shifted``): a sensitivity never moves one outside.
THRESHOLD_FLOOR, THRESHOLD_CEILING = 0.05, 0.99


@dataclass(frozen=True)
class Thresholds:
    classes: Mapping[str, float]  # delete threshold per sensitive class
    review_band: float  # how far below a class threshold still asks the admins
    nsfw_review: float  # an Open-NSFW score at or above this asks the admins (never deletes alone)

    def shifted(self, delta: float) -> Thresholds:
        """Every class threshold moved by ``delta`` (sensitivity), kept within (0, 1)."""
        return Thresholds(
            classes={k: _clamp(v + delta) for k, v in self.classes.items()},
            review_band=self.review_band,
            nsfw_review=_clamp(self.nsfw_review + delta),
        )

    def loosest(self) -> Thresholds:
        """The least sensitive thresholds a caller can judge with: these, or any ``shifted``
        from them (every class threshold at the higher of its own value and the ceiling)."""
        return Thresholds(
            classes={k: max(v, THRESHOLD_CEILING) for k, v in self.classes.items()},
            review_band=self.review_band,
            nsfw_review=max(self.nsfw_review, THRESHOLD_CEILING),
        )


def _clamp(value: float) -> float:
    return min(THRESHOLD_CEILING, max(THRESHOLD_FLOOR, value))


@dataclass(frozen=True)
class Hit:
    label: str  # NudeNet class
    score: float
    level: str  # REVIEW or NUDITY


def worst(labels: Iterable[str]) -> str:
    return max(labels, key=_RANK.__getitem__, default=CLEAN)


def judge(
    detections: Iterable[tuple[str, float]], nsfw: float | None, thresholds: Thresholds
) -> tuple[str, tuple[Hit, ...]]:
    """The label of one frame and the detections that earned it.

    ``detections`` are (class, score) pairs; classes without a threshold never count.
    """
    hits: list[Hit] = []
    for cls, score in detections:
        limit = thresholds.classes.get(cls)
        if limit is None:
            continue
        if score >= limit:
            hits.append(Hit(cls, score, NUDITY))
        elif score >= limit - thresholds.review_band:
            hits.append(Hit(cls, score, REVIEW))
    label = worst(h.level for h in hits)
    if nsfw is not None and nsfw >= thresholds.nsfw_review:
        label = worst((label, REVIEW))
    hits.sort(key=lambda h: (-_RANK[h.level], -h.score))
    return label, tuple(hits)


def judge_frames(
    frames: Sequence[tuple[Iterable[tuple[str, float]], float | None]], thresholds: Thresholds
) -> tuple[str, tuple[Hit, ...]]:
    """An animation is as bad as its worst sampled frame."""
    label = CLEAN
    hits: list[Hit] = []
    for dets, nsfw in frames:
        frame_label, frame_hits = judge(dets, nsfw, thresholds)
        label = worst((label, frame_label))
        hits.extend(frame_hits)
    hits.sort(key=lambda h: (-_RANK[h.level], -h.score))
    return label, tuple(hits)


def nsfw_can_matter(frames: Sequence[Iterable[tuple[str, float]]], thresholds: Thresholds) -> bool:
    """Whether the Open-NSFW score could change the label of an image with these detections
    (one iterable of (class, score) per frame), under these thresholds or any shifted from them.

    Decision (why the second model may be skipped): the NSFW score can only raise a label
    to ``review`` (``judge``: at or above ``nsfw_review`` the label becomes at least review,
    it never deletes). So it is irrelevant exactly when the detections alone already give
    ``review`` or ``nudity``. Judged with ``loosest()`` thresholds, a label reached there is
    reached under every sensitivity a group can set (judging is monotone in the thresholds),
    so a scan made once stays right for every group it is judged for. The table:

    ======================================  ==========================  ===================
    detections (loosest thresholds)         NSFW score                  label
    ======================================  ==========================  ===================
    none, or below every review band        needed: it decides          clean or review
    a class in its review band or above     cannot change the label     review or nudity
    ======================================  ==========================  ===================
    """
    label = CLEAN
    loose = thresholds.loosest()
    for dets in frames:
        label = worst((label, judge(dets, None, loose)[0]))
    return label == CLEAN
