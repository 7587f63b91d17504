"""pHash and dHash as the imagehash package computes them (its default 8x8 sizes), without SciPy.

imagehash takes SciPy's DCT for pHash, and SciPy (with PyWavelets, which imagehash also
requires) was about 60 MB of the container image for this one call. pHash needs only the
8x8 lowest frequencies of a 32x32 grey image: a product with a fixed cosine matrix gives
them. The hex strings are imagehash's, so hashes stored by earlier versions of Vigil or made
with imagehash elsewhere stay comparable; tests/test_perceptual.py checks that both give the
same hashes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
PHASH_SIDE = 32  # HASH_SIZE times imagehash's highfreq_factor of 4
ROUND_DECIMALS = 6


def _dct_matrix() -> np.ndarray:
    """Rows of the unnormalised DCT-II (scipy.fftpack.dct's default) for the first frequencies."""
    k = np.arange(HASH_SIZE, dtype=np.float64)[:, None]
    n = np.arange(PHASH_SIDE, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * PHASH_SIDE))


_DCT = _dct_matrix()


def _hex(bits: np.ndarray) -> str:
    """imagehash's text form: the bits row by row, most significant first, in hex."""
    return np.packbits(bits.astype(np.uint8).ravel()).tobytes().hex()


def phash(image: Image.Image) -> str:
    """imagehash.phash(image), as 16 hex digits."""
    grey = image.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = _DCT @ pixels @ _DCT.T  # DCT along the columns, then the rows; 8x8 lowest frequencies
    # Rounding error (about 1e-12 here) would decide the bits of coefficients that are exactly 0
    # (flat areas, stripes); SciPy gets those as 0, and so does this once rounded.
    low = np.round(low, ROUND_DECIMALS)
    return _hex(low > np.median(low))


def dhash(image: Image.Image) -> str:
    """imagehash.dhash(image), as 16 hex digits: is each pixel darker than its right neighbour."""
    grey = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey)
    return _hex(pixels[:, 1:] > pixels[:, :-1])
