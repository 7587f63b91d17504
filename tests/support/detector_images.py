"""Benign pictures for the model parity tests and benchmarks, as RGB uint8 arrays.

Every file in tests/images/ (public-domain photos) plus variants generated in
memory from scikit-image's bundled samples: the astronaut at several sizes,
aspect ratios and rotations, face close-ups, and a crowd-like mosaic of the
bundled LFW face crops. Nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps
from skimage import data

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def file_images() -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(IMAGES_DIR.glob("*")):
        if path.suffix.lower() not in _SUFFIXES:
            continue
        with Image.open(path) as im:
            out[f"file:{path.name}"] = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return out


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def face_mosaic(rows: int = 4, cols: int = 5, cell: int = 96, start: int = 0) -> np.ndarray:
    """A crowd-like grid of the bundled LFW face crops (grey, so R = G = B)."""
    faces = data.lfw_subset()  # 200 x 25 x 25 floats in 0..1; the first 100 are faces
    tiles = []
    for r in range(rows):
        row = []
        for c in range(cols):
            face = (faces[(start + r * cols + c) % 100] * 255).astype(np.uint8)
            row.append(cv2.resize(face, (cell, cell), interpolation=cv2.INTER_CUBIC))
        tiles.append(np.hstack(row))
    grey = np.vstack(tiles)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


@lru_cache(maxsize=1)
def _generated() -> tuple[tuple[str, np.ndarray], ...]:
    astro = data.astronaut()
    face = astro[20:260, 120:330]  # head and shoulders
    items = {
        "astronaut": astro,
        "astronaut_1024": _resize(astro, 1024, 1024),
        "astronaut_320": _resize(astro, 320, 320),
        "astronaut_200": _resize(astro, 200, 200),
        "astronaut_96": _resize(astro, 96, 96),
        "astronaut_wide": _resize(astro, 900, 400),
        "astronaut_tall": _resize(astro, 260, 700),
        "astronaut_rot90": np.ascontiguousarray(np.rot90(astro)),
        "astronaut_rot180": np.ascontiguousarray(np.rot90(astro, 2)),
        "astronaut_mirror": np.ascontiguousarray(astro[:, ::-1]),
        "astronaut_rot30": np.asarray(
            Image.fromarray(astro).rotate(30, resample=Image.Resampling.BILINEAR, expand=True)
        ),
        "astronaut_face": np.ascontiguousarray(face),
        "astronaut_face_big": _resize(face, 630, 720),
        "astronaut_face_padded": np.ascontiguousarray(np.pad(face, ((0, 0), (300, 300), (0, 0)), constant_values=230)),
        "astronaut_odd_size": _resize(astro, 333, 517),
        "faces_4x5": face_mosaic(4, 5, 96),
        "faces_3x3_big": face_mosaic(3, 3, 160, start=20),
        "faces_6x8_small": face_mosaic(6, 8, 48, start=40),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "hubble": _resize(data.hubble_deep_field(), 600, 480),
        "grey_camera": np.ascontiguousarray(np.repeat(data.camera()[:, :, None], 3, axis=2)),
        "flat_grey": np.full((240, 320, 3), 128, np.uint8),
        "one_pixel": np.full((1, 1, 3), 200, np.uint8),
        "thin_strip": _resize(astro, 512, 3),
    }
    return tuple(items.items())


def generated_images() -> dict[str, np.ndarray]:
    return {name: rgb.copy() for name, rgb in _generated()}


def benign_images() -> dict[str, np.ndarray]:
    """tests/images/* then the generated variants, by name."""
    return {**file_images(), **generated_images()}
