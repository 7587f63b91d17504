"""Local-feature matching: find where an image comes from even when it was cropped,
captioned, screenshotted, mirrored or partly replaced.

Whole-image hashes (``detectors.hashing``) describe the picture as a whole, so a crop,
a caption bar, a screenshot frame or a replaced body moves them far from the original.
This module describes an image by a few hundred small patches instead and asks whether
two images share a large region that lines up under one geometric transform.

Fingerprint
    ORB keypoints (oriented FAST corners with rotated BRIEF descriptors, 32 bytes each)
    of a grey working copy with its long side scaled to ``WORK_SIDE`` pixels. Up to
    ``DETECT_KEYPOINTS`` corners are found and the strongest of each cell of a grid are
    kept in turn, so the kept points spread over the whole picture: a face and a
    background survive when a body is replaced, and a busy caption cannot take every
    point. Positions are kept in a normalised frame whose long side is ``FRAME`` (1000),
    with each point's orientation and pyramid level. Query fingerprints also carry the
    descriptors of the mirrored image at the mirrored points (ORB is not mirror
    invariant; recomputing descriptors at known points costs ~40 % of a detection).
    A fingerprint holds no pixels: ``to_bytes`` stores 38 bytes a point (70 with the
    mirror descriptors). SIFT was measured and rejected: 80-270 ms for a 1280x960
    photo against ORB's 8-17 ms on this machine (AKAZE is not in OpenCV 5's main
    package).

Verification (``verify``)
    Descriptor matches pass Lowe's ratio test, then a RANSAC over 2-point similarity
    hypotheses (rotation, uniform scale, translation) finds the transform most matches
    agree with. A similarity, not an affine map or a homography: every edit Vigil must
    follow (crop, resize, rotation, border, screenshot, overlay, replaced region) is a
    similarity of the picture, mirrors are handled by the mirrored descriptors, and
    fewer degrees of freedom make chance agreement among wrong matches rarer (a
    homography fits 4 random matches exactly). A match must agree in position AND in
    keypoint orientation. The result is accepted only if all of these hold:

    * at least ``MIN_INLIERS`` inliers, with distinct points on both sides;
    * the inliers span a region (convex hull) of at least ``MIN_REGION`` of both images;
    * the scale lies within ``1/MAX_SCALE .. MAX_SCALE``;
    * the agreement is sharp (``MIN_SHARPNESS``): of the matches that turn like the
      transform and land within ``PARALLAX_RANGE`` inlier distances of it, most land
      within half an inlier distance. An edited copy lines up to a pixel everywhere;
      two photos of one scene taken from different places (a stereo pair, a second shot
      of the same room) line up only at one depth, the rest spread around by parallax.
      Decision: such photos are not traced (they share content, not pixels). Measured:
      copies >= 0.62, the stereo pair 0.41 and 0.49.

    ``match_fraction`` and ``source_fraction`` estimate the share of each image that
    the other holds: the area of the frame that the transform puts inside the other
    frame, less the cells (``COVER_CELLS`` along the long side) that hold keypoints of
    either image but, at the rate inliers appear elsewhere, too few inliers: content
    that does not line up, such as a replaced body or a pasted caption. Flat areas
    count as shared. Measured against the truth (crop keeping 48 %: ~0.9 / 0.38-0.48;
    20 % border: 0.39-0.53 / 0.81-0.94; half the picture replaced: 0.37-0.6).

Index (``LocalIndex``)
    An inverted file over the descriptors of the known images, needing no training: in
    each of ``TABLES`` tables a descriptor is keyed by a 24-bit "word" (3 of its bytes)
    and carries a 16-bit "signature" (2 more bytes); tables use disjoint bytes. A query
    descriptor looks up its word in each table and keeps postings whose signature differs
    in at most ``SIGNATURE_BITS`` bits, which drops nearly all chance collisions while
    keeping most true correspondences (a copy's descriptors differ from the original's
    by a median of 4-17 of 256 bits over the transform families, so a 40-bit slice is
    often intact). Each known image gets one vote per query descriptor that hits it,
    in any table and either orientation; the ``SHORTLIST`` best-voted images are
    verified geometrically, most votes first. ORB's 256 tests were chosen for variance
    and low correlation, so plain byte slices are well-filled keys. A posting list
    longer than ``MAX_BUCKET`` (a corner found everywhere, or many copies of one image
    in a list) is read at an even stride: the cost stays bounded, chance votes spread
    thin, and copies present in every list of the image keep getting votes (skipping
    long lists instead would make an image listed many times unfindable).
    faiss's binary IVF was not used: it needs centroids trained on a corpus Vigil does
    not ship, and cannot remove entries; its binary hash indexes keep each 32-byte code
    a second time.

    Updates are log-structured, as in ``detectors.hashindex``: each add makes a small
    sorted segment and segments of similar size are merged, so an entry is re-sorted
    O(log n) times (``add_many`` builds one segment at once). Removal forgets the key
    (its postings are skipped) and a segment with a quarter of its postings dead is
    rebuilt. Known fingerprints are kept as their ``to_bytes`` form (38 bytes a point)
    and decoded for verification.

Measured with bench/bench_localmatch.py (2-core shared machine, one thread; figures
for the scene photos: people, an animal, objects, places):

* traced: 99.1 % of the hash-list edits (plain PDQ 39 %, pHash 43 %; PDQ then local
  99.1 %), 100 % of the undress-like edits (PDQ 0 %, pHash 4 %); misses are
  screenshots of a smooth photo shown at 0.43 scale. On sparse pictures (a blurred
  clock, microscopy, a retina, a star field) 96 % and 47 %: where the replaced centre
  holds all the detail nothing is left to match.
* false matches: none in 22,542 edit x other-image pairs, 4,624 undress-like x
  unrelated photo pairs, 1,224 flat or repetitive queries, 12 same-scene pairs.
* fingerprint of a 1280x960 photo: 11.5 ms (8.7 without the mirror descriptors, 8.2 for
  a known image); a verify ~1.1 ms; a search among 100,000 known images: median 9.6 ms,
  p95 14.5 ms (6.8 ms without the mirror), 12.8 ms each with two searches at once;
  ~21.5 KB of memory per known image at that size (fingerprint 11.4 KB, postings 9 KB,
  word tables 1.9 KB).

Threads: searches never lock. All index state is in an immutable snapshot that writers
(one lock) replace with one assignment; a search sees the index after some complete
add or remove.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import faiss
import numpy as np

from detectors.errors import BadEntryIds, BadFingerprint, BadImageArray

# --- fingerprint parameters (chosen with bench/bench_localmatch.py) ---------------

FRAME = 1000  # long side of the normalised frame keypoints are expressed in
WORK_SIDE = 640  # long side of the grey working copy features are detected on
DETECT_KEYPOINTS = 1500  # corners ORB looks for before the grid keeps a spread subset
QUERY_KEYPOINTS = 600  # kept in a query fingerprint
KNOWN_KEYPOINTS = 300  # kept for a known image (a prefix of the query's: the spread order)
GRID = 8  # cells along the long side for spreading keypoints
MIN_SIDE = 24  # smaller images get an empty fingerprint (nothing to match)
ORB_PATCH = 31
ORB_FAST_THRESHOLD = 12
ORB_LOW_FAST_THRESHOLD = 5  # second try for pictures with fewer than LOW_TEXTURE_KEYPOINTS corners
LOW_TEXTURE_KEYPOINTS = 500

# --- verification parameters -----------------------------------------------------

RATIO = 0.85  # Lowe's ratio test on Hamming distances
MAX_DISTANCE = 80  # of 256 bits; unrelated ORB descriptors differ by ~100-130
MIN_INLIERS = 12
MIN_REGION = 0.02  # inliers' hull, as a fraction of each image
COVER_CELLS = 8  # cells along the long side for measuring the shared region
CONTRADICTED_INLIERS = 3.0  # expected inliers in a cell that shows none: content that does not line up
MAX_SCALE = 8.0
ANGLE_TOLERANCE = 25.0  # degrees between a match's orientation change and the transform's
RESIDUAL_PIXELS = 3.0  # inlier distance, in working-copy pixels of the coarser image
PARALLAX_RANGE = 8.0  # sharpness looks at matches within this many inlier distances
MIN_SHARPNESS = 0.56  # below: another photo of the same scene (copies: >= 0.62 measured)
HYPOTHESES = 600  # RANSAC samples when there are too many pairs to try them all

# --- index parameters --------------------------------------------------------------

TABLES = 3  # a 24-bit word and a 16-bit signature per table, from disjoint bytes of the descriptor
SIGNATURE_BITS = 2  # a posting counts if its signature differs in at most this many bits
MAX_BUCKET = 32  # postings read from one list at most (longer ones are read at a stride)
SHORTLIST = 8  # best-voted known images (or their mirror images) verified per search
MIN_VOTES = 4

_VERSION = 1
_MAGIC = b"VLF"
_HEADER = struct.Struct("<3sBBHHII")  # magic, version, flags, width, height, source_side, n
_POS_SCALE = 32.0  # positions are stored as multiples of 1/32 frame unit (uint16)
_ANGLE_STEP = 360.0 / 256.0


# --- fingerprints -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Keypoints and descriptors of one image; never its pixels.

    ``keypoints`` are (x, y) in a frame whose long side is ``FRAME`` and whose size is
    ``width`` x ``height``; row ``i`` of ``descriptors``, ``angles`` (ORB orientation in
    degrees, 0..360) and ``octaves`` (pyramid level) belong to point ``i``. Points come
    in spread order: any prefix is spread over the picture. ``source_side`` is the long
    side in pixels of the image it came from (its resolution sets how precisely points
    can line up). ``mirror_descriptors`` (queries only) are the descriptors of the
    mirrored image at the mirrored points. A fingerprint with no points matches nothing
    (flat or tiny images).
    """

    keypoints: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8
    width: int
    height: int
    angles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n,) float32
    octaves: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (n,) uint8
    source_side: int = FRAME
    mirror_descriptors: np.ndarray | None = None  # (n, 32) uint8

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def pixel(self) -> float:
        """One working-copy pixel, in frame units."""
        return FRAME / max(1, min(self.source_side, WORK_SIDE))

    def as_known(self, keypoints: int = KNOWN_KEYPOINTS) -> Fingerprint:
        """What an index keeps of a known image: the first ``keypoints`` points, no mirror."""
        n = min(len(self), keypoints)
        if n == len(self) and self.mirror_descriptors is None:
            return self
        return Fingerprint(
            self.keypoints[:n],
            self.descriptors[:n],
            self.width,
            self.height,
            self.angles[:n],
            self.octaves[:n],
            self.source_side,
            None,
        )

    def to_bytes(self) -> bytes:
        """A compact, versioned encoding: 38 bytes a point, 70 with mirror descriptors."""
        n = len(self)
        flags = 1 if self.mirror_descriptors is not None else 0
        head = _HEADER.pack(_MAGIC, _VERSION, flags, self.width, self.height, self.source_side, n)
        pos = np.round(self.keypoints * _POS_SCALE).astype("<u2")
        ang = (np.round(self.angles / _ANGLE_STEP).astype(np.int64) % 256).astype(np.uint8)
        parts = [
            head,
            pos.tobytes(),
            ang.tobytes(),
            self.octaves.astype(np.uint8).tobytes(),
            np.ascontiguousarray(self.descriptors, np.uint8).tobytes(),
        ]
        if self.mirror_descriptors is not None:
            parts.append(np.ascontiguousarray(self.mirror_descriptors, np.uint8).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadFingerprint(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise BadFingerprint(f"{len(data)} bytes is shorter than the {_HEADER.size}-byte header")
        magic, version, flags, width, height, side, n = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise BadFingerprint("the bytes do not start with a fingerprint's marker")
        if version != _VERSION:
            raise BadFingerprint(f"version {version} is not the version {_VERSION} this Vigil reads")
        if flags & ~1:
            raise BadFingerprint(f"unknown flags {flags:#x}")
        per_point = 4 + 1 + 1 + 32 + (32 if flags & 1 else 0)
        if len(data) != _HEADER.size + n * per_point:
            raise BadFingerprint(
                f"{len(data)} bytes, but the header announces {n} points ({_HEADER.size + n * per_point} bytes)"
            )
        if max(width, height) > FRAME or min(width, height) < 1 or side < 1:
            raise BadFingerprint(f"frame {width}x{height} from a {side}-pixel image is out of range")
        off = _HEADER.size

        def take(count: int, dtype: str) -> np.ndarray:
            nonlocal off
            size = count * np.dtype(dtype).itemsize
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=off)
            off += size
            return arr

        pos = take(2 * n, "<u2").reshape(n, 2).astype(np.float32) / _POS_SCALE
        if n and (pos[:, 0].max() > width or pos[:, 1].max() > height):
            raise BadFingerprint("a keypoint lies outside the frame")
        ang = take(n, "u1").astype(np.float32) * _ANGLE_STEP
        octv = take(n, "u1").copy()
        desc = take(32 * n, "u1").reshape(n, 32).copy()
        mirror = take(32 * n, "u1").reshape(n, 32).copy() if flags & 1 else None
        return cls(pos, desc, int(width), int(height), ang, octv, int(side), mirror)


def empty_fingerprint(width: int = FRAME, height: int = FRAME, source_side: int = FRAME) -> Fingerprint:
    return Fingerprint(
        np.zeros((0, 2), np.float32),
        np.zeros((0, 32), np.uint8),
        width,
        height,
        np.zeros(0, np.float32),
        np.zeros(0, np.uint8),
        source_side,
        None,
    )


def _check_rgb(rgb: object) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise BadImageArray(f"expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise BadImageArray(f"the array's dtype is {rgb.dtype}, not uint8")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        what = "a grey image" if rgb.ndim == 2 else f"shape {rgb.shape}"
        raise BadImageArray(f"{what}, not height x width x 3 RGB")
    if rgb.size == 0:
        raise BadImageArray(f"the array is empty (shape {rgb.shape})")
    return rgb


_local = threading.local()


def _orb(fast_threshold: int = ORB_FAST_THRESHOLD) -> cv2.ORB:
    # ORB objects keep state between calls: one per thread and threshold
    cache = getattr(_local, "orbs", None)
    if cache is None:
        cache = _local.orbs = {}
    orb = cache.get(fast_threshold)
    if orb is None:
        orb = cache[fast_threshold] = cv2.ORB.create(
            nfeatures=DETECT_KEYPOINTS,
            scaleFactor=1.2,
            nlevels=8,
            edgeThreshold=ORB_PATCH,
            patchSize=ORB_PATCH,
            fastThreshold=fast_threshold,
        )
    return orb


def _spread_order(xy: np.ndarray, response: np.ndarray, width: int, height: int) -> np.ndarray:
    """Indices of the points, the strongest of every grid cell first, then the second..."""
    cell = max(width, height) / GRID
    cx = np.minimum((xy[:, 0] / cell).astype(np.int64), GRID - 1)
    cy = np.minimum((xy[:, 1] / cell).astype(np.int64), GRID - 1)
    cells = cy * GRID + cx
    by_cell = np.lexsort((-response, cells))  # by cell, strongest first within a cell
    sorted_cells = cells[by_cell]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    rank = np.arange(len(by_cell)) - np.repeat(starts, np.diff(np.r_[starts, len(by_cell)]))
    order = np.lexsort((-response[by_cell], rank))
    return by_cell[order]


def fingerprint(rgb: np.ndarray, *, query: bool = True, mirror: bool | None = None) -> Fingerprint:
    """The local-feature fingerprint of an RGB uint8 image (H, W, 3).

    ``query=True`` keeps ``QUERY_KEYPOINTS`` points and the mirror descriptors (for
    images to look up); ``query=False`` keeps ``KNOWN_KEYPOINTS`` points and no mirror
    (for images to store: a quarter of the bytes, and ~40 % less time). ``mirror``
    overrides whether mirror descriptors are computed (without them, mirrored copies
    are not found). An image smaller than
    ``MIN_SIDE`` pixels on a side, or without corners (flat), gets an empty fingerprint.
    Raises ``BadImageArray`` for anything but a non-empty uint8 RGB array.
    """
    rgb = _check_rgb(rgb)
    mirror_too = mirror
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    k = FRAME / long_side
    fw, fh = max(1, round(w * k)), max(1, round(h * k))
    if min(h, w) < MIN_SIDE:
        return empty_fingerprint(fw, fh, long_side)
    scale = WORK_SIDE / long_side
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 1:
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    else:  # small pictures are enlarged, so ORB's pyramid sees them at the usual scale
        grey = cv2.resize(
            cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_LINEAR
        )
    gh, gw = grey.shape
    orb = _orb()
    kps = orb.detect(grey, None)
    if len(kps) < LOW_TEXTURE_KEYPOINTS:  # a smooth picture: look for fainter corners too
        orb = _orb(ORB_LOW_FAST_THRESHOLD)
        kps = orb.detect(grey, None)
    if not kps:
        return empty_fingerprint(fw, fh, long_side)
    xy = np.array([kp.pt for kp in kps], np.float32)
    response = np.array([kp.response for kp in kps], np.float32)
    keep = _spread_order(xy, response, gw, gh)[: QUERY_KEYPOINTS if query else KNOWN_KEYPOINTS]
    kept = []
    for i, j in enumerate(keep):
        kp = kps[j]
        # quantised as to_bytes stores it, so a round trip gives back the same fingerprint
        angle = (round(kp.angle / _ANGLE_STEP) % 256) * _ANGLE_STEP
        kept.append(cv2.KeyPoint(kp.pt[0], kp.pt[1], kp.size, angle, kp.response, kp.octave, i))
    chosen, desc = orb.compute(grey, kept)
    if desc is None or not chosen:
        return empty_fingerprint(fw, fh, long_side)
    mirror_desc: np.ndarray | None = None
    if query if mirror_too is None else mirror_too:
        flipped = np.ascontiguousarray(grey[:, ::-1])
        flipped_points = [
            cv2.KeyPoint(
                gw - 1 - kp.pt[0], kp.pt[1], kp.size, (180.0 - kp.angle) % 360.0, kp.response, kp.octave, kp.class_id
            )
            for kp in chosen
        ]
        mirrored, mdesc = orb.compute(flipped, flipped_points)
        if mdesc is None:
            mirrored, mdesc = [], np.zeros((0, 32), np.uint8)
        # keep the points described in both orientations, in the same rows
        ids = np.array([kp.class_id for kp in chosen])
        mids = np.array([kp.class_id for kp in mirrored], dtype=ids.dtype)
        both = np.isin(ids, mids)
        row_of = {c: r for r, c in enumerate(mids.tolist())}
        desc = desc[both]
        chosen = [kp for kp, b in zip(chosen, both, strict=False) if b]
        mirror_desc = mdesc[[row_of[kp.class_id] for kp in chosen]] if chosen else np.zeros((0, 32), np.uint8)
    to_frame = FRAME / max(gw, gh)
    pts = np.array([kp.pt for kp in chosen], np.float32).reshape(-1, 2) * to_frame
    pts = np.clip(np.round(pts * _POS_SCALE) / _POS_SCALE, 0, [fw, fh]).astype(np.float32)
    angles = np.array([kp.angle for kp in chosen], np.float32)
    octaves = np.array([kp.octave for kp in chosen], np.uint8)
    return Fingerprint(
        pts,
        np.ascontiguousarray(desc, np.uint8),
        fw,
        fh,
        angles,
        octaves,
        long_side,
        None if mirror_desc is None else np.ascontiguousarray(mirror_desc, np.uint8),
    )


def with_inset(
    outer: Fingerprint, inner: Fingerprint, box: tuple[int, int, int, int], size: tuple[int, int]
) -> Fingerprint:
    """The query fingerprint of a frame (``outer``) with the points of a picture inside it
    (``inner``, the fingerprint of the frame's ``box`` = x, y, width, height in pixels of
    a ``size`` = (width, height) frame) added after its own, in the frame's coordinates.

    A screenshot or a wide border shows the picture small: in the frame's working copy
    it has few points, found at a coarse scale (and recompression leaves little of its
    fine detail). The inset's points were found at the working copy's full size; they
    keep the frame's pixel size (so their tolerance is, if anything, looser). The
    frame's own points come first, so a known-image prefix (``as_known``) is unchanged.
    """
    if not len(inner):
        return outer
    w, h = size
    x, y, bw, bh = box
    k = FRAME / max(w, h)
    pts = inner.keypoints * (max(bw, bh) / FRAME) * k + np.array([x * k, y * k], np.float32)
    pts = np.clip(np.round(pts * _POS_SCALE) / _POS_SCALE, 0, [outer.width, outer.height]).astype(np.float32)
    both = outer.mirror_descriptors is not None and inner.mirror_descriptors is not None
    return Fingerprint(
        np.concatenate([outer.keypoints, pts]),
        np.concatenate([outer.descriptors, inner.descriptors]),
        outer.width,
        outer.height,
        np.concatenate([outer.angles, inner.angles]),
        np.concatenate([outer.octaves, inner.octaves]),
        outer.source_side,
        np.concatenate([outer.mirror_descriptors, inner.mirror_descriptors]) if both else None,
    )


# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegionMatch:
    """A verified shared region between a query and a known image."""

    key: int  # the candidate's id in the index (-1 from verify)
    inliers: int
    match_fraction: float  # share of the QUERY's area covered by the matched region
    source_fraction: float  # share of the CANDIDATE's area covered
    transform: tuple[float, ...]  # 2x3 affine (a similarity), flattened, query frame -> candidate frame
    mirrored: bool  # the query is a mirror image of the candidate

    @property
    def fraction(self) -> float:
        """The larger of the two shares: a crop covers much of the query, a collage or
        screenshot much of the candidate."""
        return max(self.match_fraction, self.source_fraction)


@contextmanager
def one_omp_thread() -> Iterator[None]:
    """faiss on one OpenMP thread for the block (the setting belongs to the calling thread).

    Searches here are small: faiss's threads cost more than they save (5.1 ms against
    0.7 ms per image in bench/bench_lists.py) and fight the other scans for the cores."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _matches(qd: np.ndarray, cd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query and candidate rows of the descriptor pairs that pass the ratio test."""
    if len(qd) < 2 or len(cd) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, idx = faiss.knn_hamming(np.ascontiguousarray(qd), np.ascontiguousarray(cd), 2)
    d0, d1 = dist[:, 0].astype(np.float32), dist[:, 1].astype(np.float32)
    ok = (d0 <= MAX_DISTANCE) & (d0 < RATIO * d1)
    qi = np.flatnonzero(ok)
    return qi, idx[qi, 0].astype(np.int64)


def _hull_fraction(pts: np.ndarray, width: int, height: int) -> float:
    if len(pts) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(pts.astype(np.float32)))) / float(width * height)


def _complex(pts: np.ndarray) -> np.ndarray:
    return pts[:, 0].astype(np.float64) + 1j * pts[:, 1]


def _shared_share(
    own: np.ndarray,
    other: np.ndarray,
    inliers: np.ndarray,
    to_other: tuple[complex, complex],
    from_other: tuple[complex, complex],
    own_fp: Fingerprint,
    other_fp: Fingerprint,
) -> float:
    """The share of this image's area that the other image holds too.

    The area of this frame that the transform puts inside the other frame, less the
    contradicted cells (``COVER_CELLS`` along the long side): a cell inside the overlap
    with no inlier where, at the rate inliers appear among the keypoints of the cells
    that have inliers, its keypoints (of either image, the other's mapped here) should
    show ``CONTRADICTED_INLIERS`` or more (the chance of none in a truly shared cell is
    5 %). Its content does not line up, as where a body was replaced. Cells without
    keypoints are flat in both images and count as shared. ``own`` and ``inliers`` are
    points of this image; ``other`` holds the other image's points, mapped here by
    ``from_other``.
    """
    w, h = own_fp.width, own_fp.height
    cell = max(w, h) / COVER_CELLS
    nx, ny = max(1, int(np.ceil(w / cell - 1e-9))), max(1, int(np.ceil(h / cell - 1e-9)))
    xs, ys = np.arange(nx) * cell, np.arange(ny) * cell
    cw, ch = np.minimum(cell, w - xs), np.minimum(cell, h - ys)
    centre = ((xs + cw / 2)[None, :] + 1j * (ys + ch / 2)[:, None]).ravel()
    a, b = to_other
    there = a * centre + b
    inside = (there.real >= 0) & (there.real <= other_fp.width) & (there.imag >= 0) & (there.imag <= other_fp.height)

    def counts(z: np.ndarray) -> np.ndarray:
        ok = (z.real >= 0) & (z.real < w) & (z.imag >= 0) & (z.imag < h)
        cx = np.minimum((z.real[ok] / cell).astype(np.int64), nx - 1)
        cy = np.minimum((z.imag[ok] / cell).astype(np.int64), ny - 1)
        return np.bincount(cy * nx + cx, minlength=nx * ny)

    fa, fb = from_other
    mine, theirs, hits = counts(_complex(own)), counts(fa * _complex(other) + fb), counts(_complex(inliers))
    confirmed = hits > 0
    # how many inliers a shared cell with these keypoints would show, at the rate inliers
    # appear among each image's keypoints in the cells that have inliers
    shown = hits[confirmed].sum()
    expect = np.maximum(mine * shown / max(1, mine[confirmed].sum()), theirs * shown / max(1, theirs[confirmed].sum()))
    contradicted = inside & ~confirmed & (expect >= CONTRADICTED_INLIERS)
    area = (ch[:, None] * cw[None, :]).ravel()
    overlap = _overlap_area(w, h, other_fp.width, other_fp.height, from_other)
    return float(np.clip((overlap - area[contradicted].sum()) / (w * h), 0.0, 1.0))


def _overlap_area(w: float, h: float, ow: float, oh: float, from_other: tuple[complex, complex]) -> float:
    """Area of this frame covered by the other frame mapped here."""
    a, b = from_other
    corners = a * np.array([0, ow, ow + 1j * oh, 1j * oh]) + b
    theirs = np.stack([corners.real, corners.imag], axis=1).astype(np.float32)
    mine = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    area, _ = cv2.intersectConvexConvex(mine, theirs)
    return float(max(area, 0.0))


def _fit_similarity(w: np.ndarray, z: np.ndarray) -> tuple[complex, complex]:
    """Least-squares z = a * w + b over complex points."""
    wm, zm = w.mean(), z.mean()
    dw = w - wm
    den = float(np.sum(np.abs(dw) ** 2))
    a = complex(np.sum(np.conj(dw) * (z - zm)) / den) if den > 0 else 1 + 0j
    return a, zm - a * wm


_LEVEL_SCALE = 1.2 ** np.arange(256, dtype=np.float64)  # pixel size of each ORB pyramid level
_COS_TOLERANCE = float(np.cos(np.radians(ANGLE_TOLERANCE)))


@dataclass(frozen=True)
class _Geometry:
    inliers: int
    a: complex  # z = a * w + b, points as complex numbers
    b: complex
    qpts: np.ndarray
    cpts: np.ndarray
    sharpness: float  # see _ransac


def _ransac(
    qp: np.ndarray, cp: np.ndarray, turn: np.ndarray, qpix: np.ndarray, cpix: np.ndarray, seed: int
) -> _Geometry | None:
    """The similarity most matches agree with, in position and orientation.

    ``turn`` holds each match's change of keypoint orientation as a unit complex number;
    a match agrees with a transform when it turns the way the transform turns. A match
    lies on the transform when it lands within ``RESIDUAL_PIXELS`` pixels of the coarser
    of its two keypoints: ``qpix`` and ``cpix`` hold, per match, one pixel of the
    pyramid level each keypoint was found at, in frame units (the query's is scaled by
    the transform).
    """
    m = len(qp)
    w = qp[:, 0].astype(np.float64) + 1j * qp[:, 1]
    z = cp[:, 0].astype(np.float64) + 1j * cp[:, 1]
    if m * (m - 1) // 2 <= HYPOTHESES:
        i, j = np.triu_indices(m, 1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, m, HYPOTHESES)
        j = (i + rng.integers(1, m, HYPOTHESES)) % m
    dw, dz = w[j] - w[i], z[j] - z[i]
    ok = (np.abs(dw) > 4 * RESIDUAL_PIXELS * qpix[i]) & (np.abs(dz) > 4 * RESIDUAL_PIXELS * cpix[i])
    i, j, dw, dz = i[ok], j[ok], dw[ok], dz[ok]
    a = dz / dw
    s = np.abs(a)
    u = a / np.where(s > 0, s, 1)  # the hypothesis's rotation, as a unit complex number
    # both sample matches must turn as the hypothesis does
    ok = (s > 1 / MAX_SCALE) & (s < MAX_SCALE)
    ok &= ((turn[i] * np.conj(u)).real > _COS_TOLERANCE) & ((turn[j] * np.conj(u)).real > _COS_TOLERANCE)
    a, u, i, s = a[ok], u[ok], i[ok], s[ok]
    if not len(a):
        return None
    b = z[i] - a * w[i]
    thr = RESIDUAL_PIXELS * np.maximum(qpix[None, :] * s[:, None], cpix[None, :])
    err = a[:, None] * w[None, :] + (b[:, None] - z[None, :])
    good = (err.real**2 + err.imag**2 < thr * thr) & ((np.conj(u)[:, None] * turn[None, :]).real > _COS_TOLERANCE)
    best = int(np.argmax(good.sum(axis=1)))
    inl = good[best]
    ab = (complex(a[best]), complex(b[best]))
    for _ in range(4):  # refine on the inliers, then take the inliers again
        if inl.sum() < 3:
            return None
        ab = _fit_similarity(w[inl], z[inl])
        thr = RESIDUAL_PIXELS * np.maximum(qpix * abs(ab[0]), cpix)
        r = np.abs(ab[0] * w + ab[1] - z)
        agree = (turn * np.conj(ab[0] / max(abs(ab[0]), 1e-12))).real > _COS_TOLERANCE
        new = (r < thr) & agree
        if np.array_equal(new, inl):
            break
        inl = new
    if not (1 / MAX_SCALE < abs(ab[0]) < MAX_SCALE) or inl.sum() < 3:
        return None
    # sharpness: of the matches that turn like the transform and land near it, the share
    # that lands very close. An edited copy lines up to a pixel; another photo of the
    # same scene lines up only at one depth, with the rest of it spread around.
    close = int(np.sum(agree & (r < thr / 2)))
    around = int(np.sum(agree & (r < PARALLAX_RANGE * thr)))
    # a point may count once on each side (repeated patterns match many-to-one)
    n = min(int(inl.sum()), len(np.unique(qp[inl], axis=0)), len(np.unique(cp[inl], axis=0)))
    return _Geometry(n, ab[0], ab[1], qp[inl], cp[inl], close / max(1, around))


def _verify_one(
    qpts: np.ndarray,
    qdesc: np.ndarray,
    qang: np.ndarray,
    query: Fingerprint,
    cand: Fingerprint,
    mirrored: bool,
    notes: dict[str, float] | None = None,
) -> RegionMatch | None:
    qi, ci = _matches(qdesc, cand.descriptors)
    if notes is not None:
        notes.update(matches=len(qi))
    if len(qi) < MIN_INLIERS:
        return None
    qp, cp = qpts[qi], cand.keypoints[ci]
    turn = np.exp(1j * np.radians(cand.angles[ci].astype(np.float64) - qang[qi]))
    qpix = query.pixel * _LEVEL_SCALE[query.octaves[qi]]
    cpix = cand.pixel * _LEVEL_SCALE[cand.octaves[ci]]
    geo = _ransac(qp, cp, turn, qpix, cpix, seed=len(qi))
    if geo is None:
        return None
    hq = _hull_fraction(geo.qpts, query.width, query.height)
    hc = _hull_fraction(geo.cpts, cand.width, cand.height)
    if notes is not None:
        notes.update(inliers=geo.inliers, sharpness=geo.sharpness, scale=abs(geo.a), hull_query=hq, hull_candidate=hc)
    if geo.inliers < MIN_INLIERS or geo.sharpness < MIN_SHARPNESS or min(hq, hc) < MIN_REGION:
        return None
    a, b = geo.a, geo.b
    ia, ib = 1 / a, -b / a  # candidate -> query
    mf = _shared_share(qpts, cand.keypoints, geo.qpts, (a, b), (ia, ib), query, cand)
    sf = _shared_share(cand.keypoints, qpts, geo.cpts, (ia, ib), (a, b), cand, query)
    if notes is not None:
        notes.update(match_fraction=mf, source_fraction=sf)
    t = (a.real, -a.imag, b.real, a.imag, a.real, b.imag)
    if mirrored:  # the query's points were mirrored first: x -> width - x
        t = (-t[0], t[1], t[0] * query.width + t[2], -t[3], t[4], t[3] * query.width + t[5])
    return RegionMatch(-1, geo.inliers, min(mf, 1.0), min(sf, 1.0), tuple(float(v) for v in t), mirrored)


def _mirrored_points(fp: Fingerprint) -> tuple[np.ndarray, np.ndarray]:
    pts = fp.keypoints.copy()
    pts[:, 0] = fp.width - pts[:, 0]
    return pts, (180.0 - fp.angles) % 360.0


def verify(query: Fingerprint, candidate: Fingerprint, *, mirror: bool = True) -> RegionMatch | None:
    """Whether the query and the candidate share a large, geometrically consistent region.

    Tries the query as it is and, if it carries mirror descriptors and ``mirror`` is
    true, mirrored; returns the better verified match (``key`` = -1), or None.
    """
    _check_fp(query)
    _check_fp(candidate)
    if not len(query) or not len(candidate):
        return None
    with one_omp_thread():
        best = _verify_one(query.keypoints, query.descriptors, query.angles, query, candidate, False)
        if mirror and query.mirror_descriptors is not None:
            mpts, mang = _mirrored_points(query)
            other = _verify_one(mpts, query.mirror_descriptors, mang, query, candidate, True)
            if other is not None and (best is None or other.inliers > best.inliers):
                best = other
    return best


# --- index ------------------------------------------------------------------------------

MIN_FRACTION = 0.25  # search default: the shared region must cover this much of the query or the known image
_KNOWN_POINT_BYTES = 38  # to_bytes per point without mirror descriptors
_TABLE_BYTES = 5  # descriptor bytes per table: a 3-byte word, a 2-byte signature
_WORDS = 1 << 24
# Segments with this many postings per table get a direct word table (64 MiB, under 8
# bytes a posting); smaller ones binary-search their sorted words.
_DIRECTORY_MIN = 1 << 23
_NO_KEY = -1


def _words(desc: np.ndarray, table: int) -> tuple[np.ndarray, np.ndarray]:
    """The 24-bit word and 16-bit signature of each descriptor in one table."""
    d = desc[:, _TABLE_BYTES * table : _TABLE_BYTES * (table + 1)].astype(np.uint32)
    word = d[:, 0] | (d[:, 1] << 8) | (d[:, 2] << 16)
    return word, (d[:, 3] | (d[:, 4] << 8)).astype(np.uint16)


@dataclass(frozen=True, eq=False)
class _Segment:
    """Postings of a run of slots [first, last), sorted by word in each table."""

    first: int
    last: int
    words: tuple[np.ndarray, ...]  # per table, sorted uint32 (24-bit words)
    slots: tuple[np.ndarray, ...]  # per table, uint32, in the words' order
    sigs: tuple[np.ndarray, ...]  # per table, uint16
    directory: tuple[np.ndarray, ...] | None  # per table, 2**24 + 1 offsets (large segments only)

    @property
    def postings(self) -> int:
        return int(self.words[0].shape[0]) if self.words else 0

    @property
    def nbytes(self) -> int:
        arrays = [*self.words, *self.slots, *self.sigs, *(self.directory or ())]
        return sum(a.nbytes for a in arrays)

    @classmethod
    def build(
        cls, first: int, last: int, words: list[np.ndarray], slots: list[np.ndarray], sigs: list[np.ndarray]
    ) -> _Segment:
        ws, ss, gs, ds = [], [], [], []
        for w, s, g in zip(words, slots, sigs, strict=False):
            order = np.argsort(w, kind="stable")
            ws.append(w[order])
            ss.append(s[order])
            gs.append(g[order])
            if len(w) >= _DIRECTORY_MIN:  # large: a direct table of where each word starts
                ds.append(np.searchsorted(ws[-1], np.arange(_WORDS + 1, dtype=np.uint32), "left").astype(np.uint32))
        return cls(first, last, tuple(ws), tuple(ss), tuple(gs), tuple(ds) if ds else None)

    @classmethod
    def merge(cls, parts: list[_Segment], alive: np.ndarray | None = None) -> _Segment:
        """One segment holding the parts' postings (of live slots only, if ``alive``)."""
        words, slots, sigs = [], [], []
        for t in range(TABLES):
            w = np.concatenate([p.words[t] for p in parts])
            s = np.concatenate([p.slots[t] for p in parts])
            g = np.concatenate([p.sigs[t] for p in parts])
            if alive is not None:
                keep = alive[s]
                w, s, g = w[keep], s[keep], g[keep]
            words.append(w)
            slots.append(s)
            sigs.append(g)
        return cls.build(parts[0].first, parts[-1].last, words, slots, sigs)

    def lookup(self, table: int, qwords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each (sorted) query word's postings start and end."""
        if self.directory is not None:
            d = self.directory[table]
            return d[qwords].astype(np.int64), d[qwords + 1].astype(np.int64)
        w = self.words[table]
        return np.searchsorted(w, qwords, "left"), np.searchsorted(w, qwords, "right")


@dataclass(frozen=True, eq=False)
class _Snapshot:
    segments: tuple[_Segment, ...]
    slot_keys: np.ndarray  # int64, slot -> key or _NO_KEY; removal writes into it in place
    slots: int  # slots handed out so far


def _postings_of(desc: np.ndarray, slot: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    words, slots, sigs = [], [], []
    for t in range(TABLES):
        w, g = _words(desc, t)
        words.append(w)
        sigs.append(g)
        slots.append(np.full(len(w), slot, np.uint32))
    return words, slots, sigs


class LocalIndex:
    """Known images' local fingerprints; finds the ones a query shares a region with.

    ``add`` keeps ``fp.as_known()`` (``KNOWN_KEYPOINTS`` points, no mirror descriptors)
    in its compact byte form; ``search`` votes through the inverted file, verifies the
    best-voted candidates with ``verify``'s checks and returns the verified matches, best
    (most inliers) first. Safe for concurrent searches with occasional adds and removes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = _Snapshot((), np.full(1024, _NO_KEY, np.int64), 0)
        self._fps: dict[int, bytes] = {}  # key -> known fingerprint bytes
        self._slot_of: dict[int, int] = {}  # key -> slot (writers only)
        self._dead: dict[int, int] = {}  # segment first slot -> dead postings (writers only)

    # -- updates --------------------------------------------------------------------

    def add(self, key: int, fp: Fingerprint) -> None:
        """Adds (or replaces) the known image ``key``."""
        self.add_many([(key, fp)])

    def add_many(self, items: Iterable[tuple[int, Fingerprint]]) -> None:
        """Adds many known images at once (one segment: much faster than one by one)."""
        checked = []
        for key, fp in items:
            checked.append((_check_key(key), _check_fp(fp).as_known()))
        if not checked:
            return
        with self._lock:
            for key, _ in checked:
                if key in self._slot_of:
                    self._remove_locked(key)
            snap = self._snap
            first = snap.slots
            slot_keys = snap.slot_keys
            need = first + len(checked)
            if need > len(slot_keys):
                grown = np.full(max(need, 2 * len(slot_keys)), _NO_KEY, np.int64)
                grown[: len(slot_keys)] = slot_keys
                slot_keys = grown
            words: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            slots: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            sigs: list[list[np.ndarray]] = [[] for _ in range(TABLES)]
            last_by_key: dict[int, int] = {}
            for i, (key, _fp) in enumerate(checked):
                last_by_key[key] = i  # the same key twice in one call: the last one wins
            for i, (key, fp) in enumerate(checked):
                slot = first + i
                if last_by_key[key] != i:
                    continue
                w, s, g = _postings_of(fp.descriptors, slot)
                for t in range(TABLES):
                    words[t].append(w[t])
                    slots[t].append(s[t])
                    sigs[t].append(g[t])
                self._fps[key] = fp.to_bytes()
                self._slot_of[key] = slot
                slot_keys[slot] = key
            seg = _Segment.build(
                first,
                need,
                [np.concatenate(x) for x in words],
                [np.concatenate(x) for x in slots],
                [np.concatenate(x) for x in sigs],
            )
            segments = [*snap.segments, seg]
            # merge like a binary counter: each posting is re-sorted O(log n) times
            while len(segments) >= 2 and segments[-2].postings <= 2 * segments[-1].postings:
                b, a = segments.pop(), segments.pop()
                dead = self._dead.pop(a.first, 0) + self._dead.pop(b.first, 0)
                merged = _Segment.merge([a, b], slot_keys != _NO_KEY if dead else None)
                segments.append(merged)
            self._snap = _Snapshot(tuple(segments), slot_keys, need)

    def remove(self, key: int) -> bool:
        """Forgets the known image ``key``; False if it was not there."""
        key = _check_key(key)
        with self._lock:
            return self._remove_locked(key)

    def _remove_locked(self, key: int) -> bool:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return False
        snap = self._snap
        snap.slot_keys[slot] = _NO_KEY
        data = self._fps.pop(key, b"")
        removed_points = max(0, len(data) - _HEADER.size) // _KNOWN_POINT_BYTES
        segments = list(snap.segments)
        for i, seg in enumerate(segments):
            if seg.first <= slot < seg.last:
                dead = self._dead.get(seg.first, 0) + removed_points * TABLES
                if dead * 4 >= seg.postings:  # a quarter dead: rebuild it from its live slots
                    self._dead.pop(seg.first, None)
                    segments[i] = _Segment.merge([seg], snap.slot_keys != _NO_KEY)
                    self._snap = _Snapshot(tuple(segments), snap.slot_keys, snap.slots)
                else:
                    self._dead[seg.first] = dead
                break
        return True

    # -- queries ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._fps)

    def __contains__(self, key: object) -> bool:
        return key in self._fps

    @property
    def memory_bytes(self) -> int:
        """Bytes held: fingerprints, postings, slot table and per-key bookkeeping (estimated)."""
        snap = self._snap
        fps = sum(len(b) + 33 for b in list(self._fps.values()))
        return fps + sum(s.nbytes for s in snap.segments) + snap.slot_keys.nbytes + 200 * len(self._fps)

    def fingerprint_of(self, key: int) -> Fingerprint | None:
        data = self._fps.get(key)
        return None if data is None else Fingerprint.from_bytes(data)

    def candidates(self, query: Fingerprint, *, shortlist: int = SHORTLIST) -> list[tuple[int, bool, int]]:
        """The best-voted known images as (key, mirrored, votes), most votes first; unverified."""
        _check_fp(query)
        snap = self._snap
        slots, mirrored, votes = _votes(snap, query)
        keep = votes >= MIN_VOTES
        slots, mirrored, votes = slots[keep], mirrored[keep], votes[keep]
        if len(slots) > shortlist:
            top = np.argpartition(-votes, shortlist - 1)[:shortlist]
            slots, mirrored, votes = slots[top], mirrored[top], votes[top]
        out = []
        for slot, m, v in zip(slots.tolist(), mirrored.tolist(), votes.tolist(), strict=False):
            key = int(snap.slot_keys[slot])
            if key != _NO_KEY:
                out.append((key, bool(m), int(v)))
        out.sort(key=lambda c: (-c[2], c[0], c[1]))
        return out

    def search(self, query: Fingerprint, *, min_fraction: float = MIN_FRACTION, limit: int = 5) -> list[RegionMatch]:
        """Verified matches of the query, most inliers first, at most ``limit``.

        A match counts if its region covers at least ``min_fraction`` of the query or of
        the known image (``RegionMatch.fraction``): a crop fills much of the query, a
        screenshot or collage holds much of the known image. The ``SHORTLIST`` best-voted
        known images are verified, most votes first, until ``limit`` are found.
        """
        _check_fp(query)
        number = isinstance(min_fraction, (int, float)) and not isinstance(min_fraction, bool)
        if not number or not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be a number from 0 to 1, not {min_fraction!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, not {limit!r}")
        if not len(query) or not self._fps:
            return []
        found: dict[int, RegionMatch] = {}
        with one_omp_thread():
            mirrored_pts = None
            for key, mirrored, _ in self.candidates(query):
                if len(found) >= limit:
                    break
                data = self._fps.get(key)
                if data is None:  # removed meanwhile
                    continue
                cand = Fingerprint.from_bytes(data)
                if mirrored:
                    if query.mirror_descriptors is None:  # never: mirrored votes come from them
                        continue
                    if mirrored_pts is None:
                        mirrored_pts = _mirrored_points(query)
                    match = _verify_one(mirrored_pts[0], query.mirror_descriptors, mirrored_pts[1], query, cand, True)
                else:
                    match = _verify_one(query.keypoints, query.descriptors, query.angles, query, cand, False)
                if match is None or match.fraction < min_fraction:
                    continue
                old = found.get(key)
                if old is None or match.inliers > old.inliers:
                    found[key] = RegionMatch(
                        key, match.inliers, match.match_fraction, match.source_fraction, match.transform, match.mirrored
                    )
        return sorted(found.values(), key=lambda m: (-m.inliers, -m.fraction, m.key))[:limit]


_EMPTY = np.zeros(0, np.int64)


def _votes(snap: _Snapshot, query: Fingerprint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slots hit by the query's descriptors, whether through the mirror descriptors, and
    their votes: one per query descriptor that hits the slot in any table."""
    desc = query.descriptors
    if query.mirror_descriptors is not None:
        desc = np.concatenate([desc, query.mirror_descriptors])
    n, direct = len(desc), len(query)
    if not n or not snap.segments:
        return _EMPTY, _EMPTY.astype(bool), _EMPTY
    hits = []
    for t in range(TABLES):
        qw, qs = _words(desc, t)
        order = np.argsort(qw)  # sorted keys make searchsorted walk memory in order
        qw, qs = qw[order], qs[order]
        for seg in snap.segments:
            lo, hi = seg.lookup(t, qw)
            size = hi - lo
            # a long list (a common corner, or many copies of one image) is read at an
            # even stride: at most MAX_BUCKET postings, spread over the whole list
            step = np.maximum(1, -(-size // MAX_BUCKET))
            cnt = -(-size // step)
            total = int(cnt.sum())
            if not total:
                continue
            qrow = np.repeat(np.arange(n), cnt)
            pos = np.repeat(lo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)) * np.repeat(step, cnt)
            ok = np.bitwise_count(seg.sigs[t][pos] ^ qs[qrow]) <= SIGNATURE_BITS
            if ok.any():
                hits.append(seg.slots[t][pos[ok]].astype(np.int64) * n + order[qrow[ok]])
    if not hits:
        return _EMPTY, _EMPTY.astype(bool), _EMPTY
    pairs = np.unique(np.concatenate(hits))  # one vote per (slot, query descriptor)
    ids, votes = np.unique((pairs // n) * 2 + (pairs % n >= direct), return_counts=True)
    return ids // 2, (ids % 2).astype(bool), votes


def _check_key(key: object) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise BadEntryIds(f"a key must be an integer, not {type(key).__name__}")
    key = int(key)
    if not 0 <= key < (1 << 63):
        raise BadEntryIds(f"key {key} is out of range: keys are 0 to 2**63 - 1")
    return key


def _check_fp(fp: object) -> Fingerprint:
    if not isinstance(fp, Fingerprint):
        raise BadFingerprint(f"expected a Fingerprint, got {type(fp).__name__}")
    n = len(fp.descriptors)
    shapes = {
        "keypoints": (fp.keypoints, (n, 2)),
        "descriptors": (fp.descriptors, (n, 32)),
        "angles": (fp.angles, (n,)),
        "octaves": (fp.octaves, (n,)),
    }
    if fp.mirror_descriptors is not None:
        shapes["mirror_descriptors"] = (fp.mirror_descriptors, (n, 32))
    for name, (arr, shape) in shapes.items():
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = arr.shape if isinstance(arr, np.ndarray) else type(arr).__name__
            raise BadFingerprint(f"{name} is {got}, expected shape {shape}")
    mirror = fp.mirror_descriptors
    if fp.descriptors.dtype != np.uint8 or (mirror is not None and mirror.dtype != np.uint8):
        raise BadFingerprint("descriptors must be uint8")
    return fp
