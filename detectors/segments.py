"""Log-structured segments: the update scheme both in-memory indexes follow.

``detectors.hashindex`` (exact Hamming search over list hashes) and
``detectors.localmatch.index`` (the inverted file of known images' local features) both keep
their entries in immutable sorted segments and change them the same way:

* an add makes a new small segment (or, in the Hamming index, fills a flat buffer first);
* segments are merged like a binary counter (``merge_tail``): the newest is merged into the
  one before it while that one is less than twice its size, so an entry is re-sorted O(log n)
  times and a long list is loaded in one segment;
* a removal marks entries dead; a segment is rebuilt from its live entries once a quarter of
  it is dead (``compaction_due``), so dead entries never cost more than a third more work;
* the whole index state is one immutable snapshot (``Snapshots``) that writers, serialised
  by its lock, replace with a single assignment: a search never locks and sees the index
  after some complete add or remove.

Decision: the scheme is shared, the segments are not. A Hamming segment holds its codes and
their ids and is searched by multi-index hashing over substrings of the codes; a local-feature
segment holds postings (word, signature, slot) that point into one slot table shared by all
segments, and is searched by voting. A common segment type would have to carry both layouts
or give one of them the other's indirection on every search, the one path whose speed
matters; the rules that decide when to build, merge and rebuild are the same, and live here
once. bench/bench_index_updates.py measures both indexes' adds, removes, loads and searches,
and compares source trees in one run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")

DEAD_SHARE = 4  # a segment is rebuilt once 1/DEAD_SHARE of its entries are dead
GROWTH = 2  # merge while the older segment is less than GROWTH times the newer one


def merge_tail(segments: list[S], size: Callable[[S], int], merge: Callable[[S, S], S]) -> list[S]:
    """Merges the last (newest) segment into the one before it while that one is less than
    ``GROWTH`` times its size, like the carries of a binary counter (segments of equal size
    merge; a segment twice the newest's size waits for the next carry); ``merge(older, newer)``
    makes the merged segment. Changes ``segments`` in place and returns it."""
    while len(segments) >= 2 and size(segments[-2]) < GROWTH * size(segments[-1]):
        newer = segments.pop()
        older = segments.pop()
        segments.append(merge(older, newer))
    return segments


def compaction_due(dead: int, total: int) -> bool:
    """Whether a segment with ``dead`` of its ``total`` entries dead is to be rebuilt from its live ones."""
    return total > 0 and dead * DEAD_SHARE >= total


class Snapshots(Generic[T]):
    """An index's current state: read without a lock, replaced whole by one writer at a time.

    ``current`` is the snapshot searches use; a writer holds ``lock`` while it builds the next
    one from ``current`` and ``publish``es it with one assignment, so readers see the old or the
    new state, never a mix. (A plain lock, not a generator context: a removal from the local
    index takes tens of microseconds, and the writers' path is not to grow.)"""

    __slots__ = ("current", "lock")

    def __init__(self, first: T) -> None:
        self.current = first
        self.lock = threading.Lock()

    def publish(self, snapshot: T) -> T:
        self.current = snapshot  # one assignment: searches see the old or the new snapshot, whole
        return snapshot
