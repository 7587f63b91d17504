"""Image hashes: PDQ (with its quality), pHash, dHash and SHA-256.

Perceptual hashes are computed from one shared working copy of the image, scaled so
its long side is at most ``WORK_SIDE`` pixels. PDQ reduces every image to 64x64 and
pHash to 32x32 anyway, so this makes the hashes of a full decode and of a reduced
(draft) decode agree, and saves most of the time PDQ spends filtering a full photo.
Decision: a 320-pixel working copy. On benign photos and their edited copies it was several
times faster for PDQ than 512, copies stayed as close and distinct images as far apart, and
the hash stayed within a few bits of PDQ on the full-size image, which matters for lists
hashed elsewhere (the figures are in the README's "Speed and memory").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import pdqhash
from PIL import Image

from detectors import perceptual

WORK_SIDE = 320

# PDQ's canonical text form (ThreatExchange) is 64 hex digits, most significant first.
# pdqhash returns its 256 bits in exactly that order, so packing them MSB-first gives it.


@dataclass(frozen=True)
class ImageHashes:
    pdq: str  # 64 hex digits
    pdq_quality: int  # 0..100; below ~50 PDQ is unreliable (flat or tiny images)
    phash: str  # 16 hex digits (as imagehash writes them)
    dhash: str  # 16 hex digits (as imagehash writes them)
    sha256: str  # of the file's bytes: exact copies only


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def working_copy(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """The image with its long side at most ``side``, area-averaged (no aliasing)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq_hash(rgb: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return bits_to_hex(bits), int(quality)


def pdq_dihedral(rgb: np.ndarray) -> tuple[tuple[str, ...], int]:
    """The eight PDQ hashes of the image's rotations and mirrors, original first."""
    vectors, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    return tuple(bits_to_hex(v) for v in vectors), int(quality)


def perceptual_hashes(rgb: np.ndarray) -> tuple[str, int, str, str]:
    """PDQ, its quality, pHash and dHash of one RGB frame."""
    work = working_copy(rgb)
    pdq, quality = pdq_hash(work)
    gray = Image.fromarray(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY))
    return pdq, quality, perceptual.phash(gray), perceptual.dhash(gray)


def compute_hashes(data: bytes, rgb: np.ndarray) -> ImageHashes:
    pdq, quality, phash, dhash = perceptual_hashes(rgb)
    return ImageHashes(pdq=pdq, pdq_quality=quality, phash=phash, dhash=dhash, sha256=sha256_hex(data))


def hamming_hex(a: str, b: str) -> int:
    """Bit distance between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {len(a)} and {len(b)} hex digits")
    return (int(a, 16) ^ int(b, 16)).bit_count()
