"""Decoding parity between the development environment and the container image, for
scripts/container-check: the image's libraries are stripped, shared and partly stubbed
(scripts/slim-libs), and this shows that Vigil still decodes every kind of media it takes to
the same pixels and the same hashes.

    python scripts/lib/media_parity.py make DIR    # in the repository's venv: writes DIR/*.bin
                                                   # (made with tests/support/imagegen.py) and
                                                   # DIR/expected.json (what decoding them gives)
    python media_parity.py check DIR               # in the image: decodes them, compares

Only detectors/ is imported to check, so the image (which has no tests/) can run it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

# Transparent WebM decodes to pixels that vary from one decode to the next in the venv as well
# (the transparency comes from a second, libvpx, decoder): for these only what was decoded, not the
# pixels, is compared. Other files found to vary while making the expectations join them.
UNSTABLE = {"webm-vp8-transparent", "webm-vp9-transparent"}


def corpus() -> dict[str, bytes]:
    """One file of each kind Vigil decodes, made with the test suite's generators."""
    import numpy as np

    from tests.support import imagegen as gen

    photo = gen.photo("coffee")
    frames = [np.roll(photo, 9 * i, axis=1) for i in range(12)]
    rgba = [np.dstack([f, np.full(f.shape[:2], 255 if i % 2 else 90, np.uint8)]) for i, f in enumerate(frames[:6])]
    files = {
        "jpeg": gen.jpeg_bytes(photo, 85),
        "jpeg-rotated": gen.jpeg_bytes(photo, 85, orientation=6),
        "png": gen.png_bytes(photo),
        "webp": gen.webp_bytes(photo),
        "webp-lossy": gen.webp_bytes(photo, lossless=False, quality=80),
        "webp-animated": gen.webp_animated_bytes(frames[:6]),
        "gif-animated": gen.animated_gif_bytes(frames[:6]),
        "apng": gen.apng_bytes(frames[:4]),
        "tiff-pages": gen.multipage_tiff_bytes(frames[:3]),
        "bmp": gen.encode(photo, "BMP"),
        "heif": gen.encode(photo, "HEIF", quality=90),
        "mp4-h264": gen.mp4_bytes(frames),
        "mp4-h264-rotated": gen.mp4_bytes(frames, rotation=90),
        "webm-vp8": gen.webm_bytes(frames, codec="libvpx"),
        "webm-vp9": gen.webm_bytes(frames),
        "webm-vp9-transparent": gen.transparent_webm_bytes(rgba),
        "webm-vp8-transparent": gen.transparent_webm_bytes(rgba, codec="libvpx"),
        "mp4-audio-only": gen.audio_only_mp4(),
    }
    from PIL import features

    if features.check("avif"):
        files["avif"] = gen.encode(photo, "AVIF", quality=90)
    try:
        files["mkv-av1"] = gen.video_bytes(frames[:4], 10, container="matroska", codec="libsvtav1")
    except Exception:  # an FFmpeg build without that encoder: the AV1 decoder goes unchecked
        pass
    return files


def outcome(data: bytes) -> dict[str, object]:
    """What Vigil makes of a file: its format, size and frames, each frame's pixels (SHA-256)
    and perceptual hashes; or the error's class and message."""
    from detectors.hashing import perceptual_hashes
    from detectors.media import decode
    from detectors.settings import MediaLimits

    try:
        media = decode(data, MediaLimits())
    except Exception as e:  # the same refusal in both places is parity too
        return {"error": f"{type(e).__name__}: {e}"}
    return {
        "format": media.format,
        "size": [media.width, media.height],
        "frame_count": media.frame_count,
        "animated": media.animated,
        "frames": [
            [f.index, hashlib.sha256(f.rgb.tobytes()).hexdigest(), *perceptual_hashes(f.rgb)] for f in media.frames
        ],
    }


def structure(result: dict[str, object]) -> dict[str, object]:
    """An outcome without the pixels and hashes: the format, sizes and which frames."""
    if "error" in result:
        return result
    return {**result, "frames": [frame[0] for frame in result["frames"]]}  # type: ignore[union-attr]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("make", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[1])
    if argv[0] == "make":
        folder.mkdir(parents=True, exist_ok=True)
        expected = {}
        for name, data in corpus().items():
            (folder / f"{name}.bin").write_bytes(data)
            runs = [outcome(data) for _ in range(3)]
            stable = name not in UNSTABLE and runs.count(runs[0]) == 3
            expected[name] = runs[0] if stable else {**structure(runs[0]), "unstable": True}
        (folder / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
        print(f"media-parity: {len(expected)} files in {folder}")
        return 0
    expected = json.loads((folder / "expected.json").read_text())
    differ = []
    for name, want in sorted(expected.items()):
        got = json.loads(json.dumps(outcome((folder / f"{name}.bin").read_bytes())))
        if want.pop("unstable", False):
            got = structure(got)
        if got != want:
            differ.append(name)
            print(f"media-parity: {name}: expected {json.dumps(want)[:300]}, got {json.dumps(got)[:300]}")
    decoded = sum(1 for want in expected.values() if "error" not in want)
    print(
        f"media-parity: {len(expected) - len(differ)} of {len(expected)} files as expected, {decoded} decoded "
        f"({', '.join(sorted(expected))})"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
