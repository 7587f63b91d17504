"""Local-feature fingerprints: a few hundred small patches of an image, never its pixels.

Where this module sits: ``detectors.localmatch`` describes an image by its patches
(here), decides whether two images share a region (``verification``) and finds the
known images a query may share one with (``index``). The three are apart because each
has its own parameters, its own reasons and its own readers: a change to how points are
found must not need reading the RANSAC, and the index only stores and votes on what
this module produces.

ORB keypoints (oriented FAST corners with rotated BRIEF descriptors, 32 bytes each) of a
grey working copy with its long side scaled to ``WORK_SIDE`` pixels. Up to
``DETECT_KEYPOINTS`` corners are found and the strongest of each cell of a grid are kept
in turn, so the kept points spread over the whole picture: a face and a background
survive when a body is replaced, and a busy caption cannot take every point. Positions
are kept in a normalised frame whose long side is ``FRAME`` (1000), with each point's
orientation and pyramid level. Query fingerprints also carry the descriptors of the
mirrored image at the mirrored points (ORB is not mirror invariant, and recomputing
descriptors at known points costs much less than a second detection). A fingerprint
holds no pixels: ``to_bytes`` stores 38 bytes a point (70 with the mirror descriptors).

Decision: ORB, not SIFT: SIFT was measured several times slower on a 1280x960 photo for
no gain Vigil needs (figures in the README, "Speed and memory"); AKAZE is not in OpenCV
5's main package.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from detectors.errors import BadFingerprint, BadImageArray

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

_VERSION = 1
_MAGIC = b"VLF"
_HEADER = struct.Struct("<3sBBHHII")  # magic, version, flags, width, height, source_side, n
_POS_SCALE = 32.0  # positions are stored as multiples of 1/32 frame unit (uint16)
_ANGLE_STEP = 360.0 / 256.0
# bytes of the header, and of each point of a known fingerprint (no mirror descriptors)
HEADER_BYTES = _HEADER.size
KNOWN_POINT_BYTES = 38


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


def fingerprint(
    rgb: np.ndarray, *, query: bool = True, mirror: bool | None = None, work_side: int = WORK_SIDE
) -> Fingerprint:
    """The local-feature fingerprint of an RGB uint8 image (H, W, 3).

    ``query=True`` keeps ``QUERY_KEYPOINTS`` points and the mirror descriptors (for
    images to look up); ``query=False`` keeps ``KNOWN_KEYPOINTS`` points and no mirror
    (for images to store: a quarter of the bytes, and less time). ``mirror``
    overrides whether mirror descriptors are computed (without them, mirrored copies
    are not found). ``work_side``: the working copy's long side (another scale of the
    same picture: see ``detectors.matching.fingerprint_of``). An image smaller than
    ``MIN_SIDE`` pixels on a side, or without corners (flat), gets an empty fingerprint.
    Raises ``BadImageArray`` for anything but a non-empty uint8 RGB array.
    """
    rgb = _check_rgb(rgb)
    if isinstance(work_side, bool) or not isinstance(work_side, int) or not MIN_SIDE <= work_side <= FRAME:
        raise ValueError(f"work_side must be a whole number of pixels from {MIN_SIDE} to {FRAME}, not {work_side!r}")
    mirror_too = mirror
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    k = FRAME / long_side
    fw, fh = max(1, round(w * k)), max(1, round(h * k))
    if min(h, w) < MIN_SIDE:
        return empty_fingerprint(fw, fh, long_side)
    scale = work_side / long_side
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


def check_fingerprint(fp: object) -> Fingerprint:
    """``fp`` itself if it is a well-formed ``Fingerprint``, else ``BadFingerprint``."""
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
