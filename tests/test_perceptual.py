"""detectors/perceptual.py gives the same pHash and dHash as the imagehash package (the reference,
in the test extras): hashes stored before Vigil dropped SciPy, or made with imagehash elsewhere,
must stay comparable bit for bit."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
import skimage.data
from PIL import Image

from detectors import perceptual
from detectors.hashing import perceptual_hashes

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "text",
    "horse",
    "clock",
    "coins",
    "grass",
    "gravel",
    "brick",
    "retina",
    "logo",
    "colorwheel",
    "cell",
)


def _as_image(a: np.ndarray) -> Image.Image:
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
    return Image.fromarray(a)


def photos() -> list[tuple[str, Image.Image]]:
    out = [(p.name, Image.open(p).convert("RGB")) for p in sorted((ROOT / "bot" / "samples").glob("*.jpg"))]
    out += [(p.name, Image.open(p).convert("RGB")) for p in sorted((ROOT / "tests" / "images").glob("*.jpg"))]
    out += [(name, _as_image(getattr(skimage.data, name)())) for name in PHOTOS]
    return out


def synthetic() -> list[tuple[str, Image.Image]]:
    """Flat pictures, gradients, stripes and checkerboards: DCT coefficients that are exactly 0."""
    out = []
    for v in (0, 1, 127, 254, 255):
        out.append((f"grey {v}", Image.new("L", (64, 48), v)))
        out.append((f"colour {v}", Image.new("RGB", (33, 97), (v, 255 - v, v // 2))))
    for w, h in ((32, 32), (100, 37), (7, 300)):
        x = np.arange(w)[None, :].repeat(h, 0)
        y = np.arange(h)[:, None].repeat(w, 1)
        for name, a in (
            ("h-gradient", x * 255 // max(1, w - 1)),
            ("v-gradient", y * 255 // max(1, h - 1)),
            ("stripes", (x // 4 % 2) * 255),
            ("h-stripes", (y // 3 % 2) * 200),
            ("checkerboard", ((x // 8 + y // 8) % 2) * 255),
            ("diagonal", (x + y) % 256),
        ):
            out.append((f"{name} {w}x{h}", Image.fromarray(a.astype(np.uint8))))
    return out


def crops_and_noise() -> list[tuple[str, Image.Image]]:
    rng = np.random.default_rng(7)
    out = []
    for name, im in photos():
        w, h = im.size
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            box = (x0, y0, x0 + int(rng.integers(16, w - x0 + 1)), y0 + int(rng.integers(16, h - y0 + 1)))
            out.append((f"{name} crop {box}", im.crop(box)))
    for i in range(40):
        shape = (int(rng.integers(8, 200)), int(rng.integers(8, 200)), 3)
        out.append((f"noise {i}", Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))))
    return out


@pytest.mark.parametrize("kind", [photos, synthetic, crops_and_noise], ids=lambda f: f.__name__)
def test_phash_and_dhash_are_imagehash_s_bit_for_bit(kind):
    images = kind()
    assert len(images) >= 25
    differ = [
        (name, str(imagehash.phash(im)), perceptual.phash(im), str(imagehash.dhash(im)), perceptual.dhash(im))
        for name, im in images
    ]
    differ = [d for d in differ if d[1] != d[2] or d[3] != d[4]]
    assert not differ, differ


def test_the_scanner_s_hashes_of_a_frame_are_imagehash_s():
    rgb = np.asarray(Image.open(ROOT / "bot" / "samples" / "coffee.jpg").convert("RGB"))
    _, _, phash, dhash = perceptual_hashes(rgb)
    from detectors.hashing import working_copy

    grey = Image.fromarray(working_copy(rgb)).convert("L")
    assert (phash, dhash) == (str(imagehash.phash(grey)), str(imagehash.dhash(grey)))
    assert len(phash) == len(dhash) == 16 and int(phash, 16) and int(dhash, 16)


def test_the_package_does_not_import_imagehash_or_scipy():
    import subprocess
    import sys

    code = (
        "import sys, detectors.scanner, detectors.matching, bot.cli.scan; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('imagehash', 'scipy', 'pywt')]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
