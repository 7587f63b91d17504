"""Safe decoding of images, animations and short videos from bytes in memory.

Everything here works on ``bytes``: nothing is written to disk, the content (never
a file name) decides the format, and the limits in ``MediaLimits`` are checked from
the header before any pixels are decoded, so a decompression bomb costs a header
parse. Only the formats Vigil needs are read (Pillow's other plugins, e.g. EPS which
would start Ghostscript, are never consulted). Every failure is a ``MediaError``.

``min_side`` rule: every frame is returned at the largest power-of-two reduction
(1, 2, 4, 8, ...) that keeps its *shorter* side >= ``min_side`` (sides round up).
JPEG gets most of it for free from libjpeg's DCT scaling (Pillow's draft mode, at
most 1/8); other formats and any remaining factor use a box-filter reduction, so
the same picture comes out at the same size whatever its format. The shorter side
is what matters because classifiers that centre-crop a square need it; detectors
that letterbox need less, so this is never too small for either.

Animations and videos: up to ``max_frames`` frames evenly spread over the frame
count, first and last included. Only those frames are converted; GIF, APNG and
animated WebP must still decode the frames in between (each builds on the last).
Video is demuxed once to learn every frame's timestamp and the keyframes, then
decoded from the keyframe before each sampled frame; when that would cost more
than ``MAX_DECODED_PIXELS`` the keyframes before the sampled frames are taken
instead (see ``_plan_samples``). Transparency is shown over white everywhere,
including VP8/VP9 video stickers.

Frames are read-only arrays: one decoded picture is shared by the hashers and the
detectors, and none of them may change it for the others.

Memory: besides the pixel count, the memory a picture takes once decoded is checked from
its header (``max_decoded_bytes``: width x height x the bytes per pixel of its colour mode,
twice that for animations that draw on the previous frame), so a small deflate file of deep
colour cannot take a gigabyte. The decodes running at once share that same budget (a decode
waits for its share), so the total stays bounded whatever the number of threads. Colour
conversion and reduction then run in strips of rows: the full-size picture is held once, never
in several converted copies.

Thread safety: no module state is written after import except the one-time HEIF
plugin registration and the shared decode budgets (under locks); Pillow's global limits are
never changed.

The package is cut by what each part has to know: ``guards`` (limits, the shared memory
budget, error translation) knows no format; ``still`` knows Pillow and ``video`` knows PyAV,
and neither knows the other; ``frames`` holds what both return and the size and sampling
rules they share. This module only sniffs and dispatches. Import from here: ``decode``,
``probe``, ``sample_indices``, ``Frame`` and ``DecodedMedia`` are the interface.
"""

from __future__ import annotations

from detectors.errors import UnsupportedFormat
from detectors.media.frames import DecodedMedia, Frame, sample_indices
from detectors.media.guards import (
    MAX_DECODED_PIXELS,
    MAX_TOTAL_FRAMES,
    check_bytes,
    check_pixels,
    decoding,
    describe_unknown,
)
from detectors.media.still import PILLOW_FORMATS, STRIP_ROWS, decode_image, open_image
from detectors.media.video import decode_video, open_video, video_kind, video_stream
from detectors.settings import MediaLimits

__all__ = [
    "MAX_DECODED_PIXELS",
    "MAX_TOTAL_FRAMES",
    "STRIP_ROWS",
    "DecodedMedia",
    "Frame",
    "decode",
    "probe",
    "sample_indices",
]


def probe(data: bytes, limits: MediaLimits) -> tuple[str, int, int]:
    """Format, width, height from the header only.

    Raises EmptyMedia, TooManyBytes, TooManyPixels, UnsupportedFormat or CorruptMedia.
    Width and height are as stored (EXIF orientation is not applied here).
    """
    check_bytes(data, limits)
    data = bytes(data)
    with decoding(limits):
        im = open_image(data, limits)
        if im is not None:
            with im:
                return PILLOW_FORMATS[im.format or ""], im.size[0], im.size[1]
        video = video_kind(data)
        if video is None:
            raise UnsupportedFormat(describe_unknown(data))
        with open_video(data, limits) as container:
            stream = video_stream(container)
            width, height = stream.codec_context.width, stream.codec_context.height
            check_pixels(width, height, limits)
            return video, width, height


def decode(data: bytes, limits: MediaLimits, *, min_side: int | None = None) -> DecodedMedia:
    """Decode all that Vigil needs from bytes in memory.

    ``min_side``: the smallest image side the caller needs; see the module docstring
    for the reduction rule. None: full size.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be a positive number of pixels or None, not {min_side}")
    check_bytes(data, limits)
    data = bytes(data)  # a bytearray or memoryview works too (copied once)
    with decoding(limits):
        im = open_image(data, limits)
        if im is not None:
            with im:
                return decode_image(im, data, limits, min_side)
        video = video_kind(data)
        if video is None:
            raise UnsupportedFormat(describe_unknown(data))
        return decode_video(data, video, limits, min_side)
