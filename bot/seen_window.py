"""The seen-images window: what Vigil keeps of every image it scanned, so that a block entry or a
protected photo added later can find the copies already posted (bot/sweep.py).

Kept per image, for ``[sweep] window_hours`` after it was seen: the chat, message and sender ids,
when it was posted, the file's SHA-256, each frame's PDQ and pHash, each frame's local-feature
fingerprint cut to ``fingerprint_points`` keypoints (positions and descriptors, never pixels), and
the post's durable form (``MediaPosted.payload``: ids, the sender's name, the platform's file
reference) so that a hit can be handled again as if just posted. Images Vigil deleted at once are
not kept: there is nothing left to sweep. Pruned by the retention pass (bot/retention.py) and now
and then here, by age and by the bounds per chat and in total.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.config import SweepConfig
from bot.events import MediaPosted
from bot.store.protocol import SeenStore
from bot.store.seen import SeenFrame
from detectors.localmatch import Fingerprint
from detectors.scanner import Scan

log = logging.getLogger("vigil.seen")

PRUNE_EVERY = 1000  # images recorded between two prunes here (the retention pass prunes hourly too)
SWEEP_PREFIX = "sweep-"  # the variant of a work item a sweep recorded (bot/sweep.py)


def is_swept(variant: str) -> bool:
    """Whether a work item was recorded by a sweep (its image is in the window already)."""
    return variant.startswith(SWEEP_PREFIX)


def compact(fp: Fingerprint, points: int) -> Fingerprint:
    """The first ``points`` keypoints of a query fingerprint, with their mirror descriptors (points
    come in spread order, so a prefix still covers the whole picture)."""
    n = min(len(fp), points)
    if n == len(fp):
        return fp
    mirror = None if fp.mirror_descriptors is None else fp.mirror_descriptors[:n]
    return Fingerprint(
        fp.keypoints[:n], fp.descriptors[:n], fp.width, fp.height, fp.angles[:n], fp.octaves[:n], fp.source_side, mirror
    )


def frames_of(scan: Scan, points: int) -> list[SeenFrame]:
    """What the window keeps of a scan's frames: hashes, and the fingerprint when there is one."""
    out = []
    for f in scan.frames:
        fp = getattr(f, "fingerprint", None)
        kept = compact(fp, points).to_bytes() if fp is not None and points and len(fp) else None
        h = f.hashes
        out.append(SeenFrame(f.index, h.pdq or None, h.pdq_quality, h.phash or None, kept))
    return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SeenWindow:
    """Records scanned images in the store's window and prunes it."""

    def __init__(self, store: SeenStore, settings: SweepConfig, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._since_prune = 0

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def since(self) -> datetime:
        """The oldest moment the window holds."""
        return self.clock() - timedelta(hours=self.settings.window_hours)

    async def record(self, event: MediaPosted, scan: Scan) -> int | None:
        """Keeps one scanned image; returns its row id (None: the window is off, or the item was a
        sweep's, whose image is kept already)."""
        if not self.enabled or is_swept(event.variant) or not scan.frames:
            return None
        row = await self.store.add_seen(
            event.chat.platform,
            event.chat.chat_id,
            event.message_id,
            variant=event.variant,
            sender_id=event.sender.user_id,
            posted_at=event.posted_at,
            sha256=scan.hashes.sha256 or None,
            frames=frames_of(scan, self.settings.fingerprint_points),
            event=event.payload(),
        )
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            await self.prune()
        return row

    async def prune(self) -> int:
        """Deletes what is older than the window and the oldest beyond its bounds."""
        removed = await self.store.prune_seen(
            self.since(), per_chat=self.settings.max_per_chat, total=self.settings.max_total
        )
        if removed:
            log.info("seen-images window: %d images pruned", removed)
        return removed
