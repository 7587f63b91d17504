"""Verification: whether two fingerprints share a large region that lines up under one transform.

Descriptor matches pass Lowe's ratio test, then a RANSAC over 2-point similarity
hypotheses (rotation, uniform scale, translation) finds the transform most matches agree
with. A similarity, not an affine map or a homography: every edit Vigil must follow (crop,
resize, rotation, border, screenshot, overlay, replaced region) is a similarity of the
picture, mirrors are handled by the mirrored descriptors, and fewer degrees of freedom make
chance agreement among wrong matches rarer (a homography fits 4 random matches exactly). A
match must agree in position AND in keypoint orientation. The result is accepted only if
all of these hold:

* at least ``MIN_INLIERS`` inliers, with distinct points on both sides;
* the inliers span a region (convex hull) of at least ``MIN_REGION`` of both images;
* the scale lies within ``1/MAX_SCALE .. MAX_SCALE``;
* the agreement is sharp (``MIN_SHARPNESS``): of the matches that turn like the transform
  and land within ``PARALLAX_RANGE`` inlier distances of it, most land within half an
  inlier distance. An edited copy lines up to a pixel everywhere; two photos of one scene
  taken from different places (a stereo pair, a second shot of the same room) line up only
  at one depth, the rest spread around by parallax. Decision: such photos are not traced
  (they share content, not pixels); ``MIN_SHARPNESS`` sits between the two groups (the
  figures are in the README's "Speed and memory").

``match_fraction`` and ``source_fraction`` estimate the share of each image that the other
holds: the area of the frame that the transform puts inside the other frame, less the
cells (``COVER_CELLS`` along the long side) that hold keypoints of either image but, at the
rate inliers appear elsewhere, too few inliers: content that does not line up, such as a
replaced body or a pasted caption. Flat areas count as shared. How close the estimates came
to the truth (crops, borders, replaced halves) is in the README's "Speed and memory".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from detectors.localmatch.fingerprints import Fingerprint, check_fingerprint

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
MIN_SHARPNESS = 0.56  # below: another photo of the same scene (between the two groups, see the docstring)
HYPOTHESES = 600  # RANSAC samples when there are too many pairs to try them all


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

    Searches here are small: faiss's threads cost more than they save (bench/bench_lists.py
    measured it; the README has the figures) and fight the other scans for the cores."""
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


def verify_one(
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


def mirrored_points(fp: Fingerprint) -> tuple[np.ndarray, np.ndarray]:
    pts = fp.keypoints.copy()
    pts[:, 0] = fp.width - pts[:, 0]
    return pts, (180.0 - fp.angles) % 360.0


def verify(query: Fingerprint, candidate: Fingerprint, *, mirror: bool = True) -> RegionMatch | None:
    """Whether the query and the candidate share a large, geometrically consistent region.

    Tries the query as it is and, if it carries mirror descriptors and ``mirror`` is
    true, mirrored; returns the better verified match (``key`` = -1), or None.
    """
    check_fingerprint(query)
    check_fingerprint(candidate)
    if not len(query) or not len(candidate):
        return None
    with one_omp_thread():
        best = verify_one(query.keypoints, query.descriptors, query.angles, query, candidate, False)
        if mirror and query.mirror_descriptors is not None:
            mpts, mang = mirrored_points(query)
            other = verify_one(mpts, query.mirror_descriptors, mang, query, candidate, True)
            if other is not None and (best is None or other.inliers > best.inliers):
                best = other
    return best
