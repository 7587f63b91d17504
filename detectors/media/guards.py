"""The limits every decode is held to, checked before pixels are decoded, and error translation.

Byte, pixel and frame limits are checked from the header; the memory a picture takes once
decoded is checked from its header too (``max_decoded_bytes``: width x height x the bytes
per pixel of its colour mode, twice that for animations that draw on the previous frame),
so a small deflate file of deep colour cannot take a gigabyte. The decodes running at once
share that same budget (``budget_for``: a decode waits for its share), so the total stays
bounded whatever the number of threads. Whatever a decoding library raises becomes the
matching ``MediaError`` (``decoding``).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import av
import av.error
from PIL import Image

from detectors.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    OversizedRegion,
    TooManyBytes,
    TooManyDecodedBytes,
    TooManyFrames,
    TooManyPixels,
)
from detectors.settings import MediaLimits

# Frames an animation, multi-page image or video may have at all. Beyond this a
# file is refused without decoding anything (counting is cheap, decoding is not).
MAX_TOTAL_FRAMES = 20_000
# Pixels Vigil decodes for one file. GIF, APNG and animated WebP frames build on
# each other, so sampling the last frame means decoding every frame before it;
# video decodes from the keyframe before each sampled frame. At the decoding speeds
# measured on one shared core (README, "Speed and memory") that is a few seconds at
# most; e.g. 3000 frames of 400x400, or 250 frames of 1080p.
MAX_DECODED_PIXELS = 500_000_000

# Errors that libraries raise for broken input; all of them become CorruptMedia.
_BROKEN = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
    zlib.error,
    av.error.FFmpegError,
    Warning,  # a library warning that the process turned into an error
)


def bytes_per_pixel(mode: str, animated: bool) -> int:
    """What Pillow holds per pixel in memory: 1 byte for 1/L/P, 2 for 16-bit grey, 4 otherwise
    (RGB is stored in 4 bytes too). Animated frames after the first are held as RGB(A)."""
    if animated:
        return 4
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


class _Budget:
    """Decoded bytes that the decodes running at once may hold together (one per limit value)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.capacity)  # the caller refused anything larger
        with self._cond:
            self._cond.wait_for(lambda: self.used + amount <= self.capacity)
            self.used += amount
        try:
            yield
        finally:
            with self._cond:
                self.used -= amount
                self._cond.notify_all()


_budgets: dict[int, _Budget] = {}
_budgets_lock = threading.Lock()


def budget_for(limits: MediaLimits) -> _Budget:
    with _budgets_lock:
        found = _budgets.get(limits.max_decoded_bytes)
        if found is None:
            found = _budgets[limits.max_decoded_bytes] = _Budget(limits.max_decoded_bytes)
        return found


def check_decoded(width: int, height: int, mode: str, held: int, limits: MediaLimits) -> int:
    """The bytes the decoded picture will take; refuses it above ``max_decoded_bytes``."""
    if held > limits.max_decoded_bytes:
        raise TooManyDecodedBytes(width, height, mode, held, limits.max_decoded_bytes)
    return held


def check_bytes(data: bytes, limits: MediaLimits) -> None:
    if len(data) == 0:
        raise EmptyMedia()
    if len(data) > limits.max_bytes:
        raise TooManyBytes(len(data), limits.max_bytes)


def check_pixels(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptMedia(f"the header declares an impossible size {width}x{height}")
    if width * height > limits.max_pixels:
        raise TooManyPixels(width, height, limits.max_pixels)


def check_work(frames: int, width: int, height: int, decoded_frames: int | None = None) -> None:
    """Refuse a file with too many frames, or whose sampling decodes too many pixels."""
    if frames > MAX_TOTAL_FRAMES:
        raise TooManyFrames(frames, MAX_TOTAL_FRAMES, width, height)
    affordable = max(1, MAX_DECODED_PIXELS // max(1, width * height))
    if (frames if decoded_frames is None else decoded_frames) > affordable:
        raise TooManyFrames(frames, min(affordable, MAX_TOTAL_FRAMES), width, height)


@contextmanager
def decoding(limits: MediaLimits) -> Iterator[None]:
    """Turn whatever a decoding library raises into the matching MediaError."""
    try:
        yield
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fired inside the file (a GIF frame or TIFF tile larger
        # than the picture); its message carries the pixel count.
        pixels = next((int(w) for w in str(exc).replace("(", " ").split() if w.isdigit()), 0)
        raise OversizedRegion(pixels, min(limits.max_pixels, Image.MAX_IMAGE_PIXELS or limits.max_pixels)) from exc
    except _BROKEN as exc:
        raise CorruptMedia(f"{type(exc).__name__}: {exc}") from exc


def describe_unknown(data: bytes) -> str:
    """A short, specific description of bytes that are not a supported format."""
    head = data[:256]
    text = head.lstrip().lower()
    if head.startswith(b"PK\x03\x04"):
        return "the content is a ZIP archive (or a document/package built on ZIP)"
    if head.startswith(b"%PDF"):
        return "the content is a PDF document"
    if text.startswith((b"<!doctype html", b"<html")):
        return "the content is an HTML page"
    if text.startswith(b"<?xml") or b"<svg" in text:
        return "the content is XML or SVG (vector images are not read)"
    try:
        sample = head.decode("utf-8")
    except UnicodeDecodeError:
        sample = None
    if sample is not None and all(c.isprintable() or c.isspace() for c in sample):
        return "the content is plain text"
    return f"unknown content starting with bytes {head[:8].hex(' ')}"
