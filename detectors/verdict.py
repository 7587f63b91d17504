"""Turning detector outputs into one label: a pure function, shared by the scanner and the bot's policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

CLEAN, REVIEW, NUDITY = "clean", "review", "nudity"
_RANK = {CLEAN: 0, REVIEW: 1, NUDITY: 2}


@dataclass(frozen=True)
class Thresholds:
    classes: Mapping[str, float]  # delete threshold per sensitive class
    review_band: float  # how far below a class threshold still asks the admins
    nsfw_review: float  # an Open-NSFW score at or above this asks the admins (never deletes alone)

    def shifted(self, delta: float) -> "Thresholds":
        """Every class threshold moved by ``delta`` (sensitivity), kept within (0, 1)."""
        return Thresholds(
            classes={k: min(0.99, max(0.05, v + delta)) for k, v in self.classes.items()},
            review_band=self.review_band,
            nsfw_review=min(0.99, max(0.05, self.nsfw_review + delta)),
        )


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
    label, hits = CLEAN, []
    for dets, nsfw in frames:
        frame_label, frame_hits = judge(dets, nsfw, thresholds)
        label = worst((label, frame_label))
        hits.extend(frame_hits)
    hits.sort(key=lambda h: (-_RANK[h.level], -h.score))
    return label, tuple(hits)
