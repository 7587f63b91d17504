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
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
import av.error
import numpy as np
from av.video.codeccontext import VideoCodecContext

# Importing a plugin registers it with Pillow; these are the formats Vigil reads.
from PIL import (  # noqa: F401
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from detectors.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    OversizedRegion,
    TooManyBytes,
    TooManyDecodedBytes,
    TooManyFrames,
    TooManyPixels,
    UnsupportedFormat,
)
from detectors.settings import MediaLimits

try:  # Pillow >= 11.2 reads AVIF itself
    from PIL import AvifImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover - older Pillow
    pass

# Frames an animation, multi-page image or video may have at all. Beyond this a
# file is refused without decoding anything (counting is cheap, decoding is not).
MAX_TOTAL_FRAMES = 20_000
# Pixels Vigil decodes for one file. GIF, APNG and animated WebP frames build on
# each other, so sampling the last frame means decoding every frame before it;
# video decodes from the keyframe before each sampled frame. Measured at 90-300
# Mpx/s (GIF) and 25-300 Mpx/s (H.264) on one shared core, so a few seconds at
# most; e.g. 3000 frames of 400x400, or 250 frames of 1080p.
MAX_DECODED_PIXELS = 500_000_000

# Pillow format id -> the name Vigil reports, in the order they are tried. An MPO
# is a camera JPEG with extra pictures (previews, depth maps) that chat clients
# never show; only its primary picture is read.
_PILLOW_FORMATS: dict[str, str] = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WEBP",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
}
# Signatures too short to tell a broken file from other content ("BM" starts text too).
_WEAK_SIGNATURES = {"BMP"}
# Formats whose frame N can only be decoded after frames 0..N-1.
_SEQUENTIAL = {"GIF", "PNG", "WEBP"}
# EXIF orientation -> the transpose that shows the picture upright.
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Transparent pixels are shown over white: the default (light) theme of Telegram
# and Element, what image tools use when they flatten a PNG to JPEG (so a
# transparent copy and its flattened copy hash alike), and dark-on-transparent
# content stays visible to the detectors.
_WHITE = (255, 255, 255)
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

_heif_lock = threading.Lock()
_heif_registered = False

# Rows converted and reduced at a time: the temporaries of a colour conversion stay a strip
# high, whatever the picture's height (a multiple of the reduction factor is used).
STRIP_ROWS = 256


def _bytes_per_pixel(mode: str, animated: bool) -> int:
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


def _budget(limits: MediaLimits) -> _Budget:
    with _budgets_lock:
        found = _budgets.get(limits.max_decoded_bytes)
        if found is None:
            found = _budgets[limits.max_decoded_bytes] = _Budget(limits.max_decoded_bytes)
        return found


def _check_decoded(width: int, height: int, mode: str, held: int, limits: MediaLimits) -> int:
    """The bytes the decoded picture will take; refuses it above ``max_decoded_bytes``."""
    if held > limits.max_decoded_bytes:
        raise TooManyDecodedBytes(width, height, mode, held, limits.max_decoded_bytes)
    return held


@dataclass(frozen=True)
class Frame:
    """One decoded picture."""

    rgb: np.ndarray  # HxWx3 uint8, RGB, C-contiguous, read-only, orientation applied
    index: int  # frame index in the source (0 for a still image)


@dataclass(frozen=True)
class DecodedMedia:
    format: str  # "JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF", "MP4", "MOV", "WEBM", "MKV"
    width: int  # of the full source picture, after orientation
    height: int
    frame_count: int  # frames in the source (1 for a still); best effort for video
    # sampled: <= max_frames, spread evenly, first and last included (a long video
    # with costly seeks: the keyframes before those frames, see _plan_samples)
    frames: tuple[Frame, ...]
    animated: bool


def sample_indices(count: int, k: int) -> list[int]:
    """Up to ``k`` indices out of ``range(count)``, evenly spread, first and last included."""
    if count <= 0 or k <= 0:
        return []
    if count <= k:
        return list(range(count))
    if k == 1:
        return [0]
    # rounded i*(count-1)/(k-1) in integers; distinct because count > k
    return [(i * (count - 1) + (k - 1) // 2) // (k - 1) for i in range(k)]


def probe(data: bytes, limits: MediaLimits) -> tuple[str, int, int]:
    """Format, width, height from the header only.

    Raises EmptyMedia, TooManyBytes, TooManyPixels, UnsupportedFormat or CorruptMedia.
    Width and height are as stored (EXIF orientation is not applied here).
    """
    _check_bytes(data, limits)
    data = bytes(data)
    with _decoding(limits):
        im = _open_image(data, limits)
        if im is not None:
            with im:
                return _PILLOW_FORMATS[im.format or ""], im.size[0], im.size[1]
        video = _video_kind(data)
        if video is None:
            raise UnsupportedFormat(_describe_unknown(data))
        with _open_video(data, limits) as container:
            stream = _video_stream(container)
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_pixels(width, height, limits)
            return video, width, height


def decode(data: bytes, limits: MediaLimits, *, min_side: int | None = None) -> DecodedMedia:
    """Decode all that Vigil needs from bytes in memory.

    ``min_side``: the smallest image side the caller needs; see the module docstring
    for the reduction rule. None: full size.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be a positive number of pixels or None, not {min_side}")
    _check_bytes(data, limits)
    data = bytes(data)  # a bytearray or memoryview works too (copied once)
    with _decoding(limits):
        im = _open_image(data, limits)
        if im is not None:
            with im:
                return _decode_image(im, data, limits, min_side)
        video = _video_kind(data)
        if video is None:
            raise UnsupportedFormat(_describe_unknown(data))
        return _decode_video(data, video, limits, min_side)


# --- checks and error translation ---------------------------------------------


def _check_bytes(data: bytes, limits: MediaLimits) -> None:
    if len(data) == 0:
        raise EmptyMedia()
    if len(data) > limits.max_bytes:
        raise TooManyBytes(len(data), limits.max_bytes)


def _check_pixels(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptMedia(f"the header declares an impossible size {width}x{height}")
    if width * height > limits.max_pixels:
        raise TooManyPixels(width, height, limits.max_pixels)


def _check_work(frames: int, width: int, height: int, decoded_frames: int | None = None) -> None:
    """Refuse a file with too many frames, or whose sampling decodes too many pixels."""
    if frames > MAX_TOTAL_FRAMES:
        raise TooManyFrames(frames, MAX_TOTAL_FRAMES, width, height)
    affordable = max(1, MAX_DECODED_PIXELS // max(1, width * height))
    if (frames if decoded_frames is None else decoded_frames) > affordable:
        raise TooManyFrames(frames, min(affordable, MAX_TOTAL_FRAMES), width, height)


@contextmanager
def _decoding(limits: MediaLimits) -> Iterator[None]:
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


def _describe_unknown(data: bytes) -> str:
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


# --- still images and animations (Pillow) -------------------------------------


def _ensure_heif() -> None:
    """Register pillow-heif's opener once, the first time a HEIF-like file arrives."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def _webp_canvas(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (Pillow's WebP reader allocates it at open)."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _open_image(data: bytes, limits: MediaLimits) -> Image.Image | None:
    """Open with the first of Vigil's formats whose signature matches; None if none does.

    Calls the format's reader directly instead of ``Image.open``: that keeps the
    other plugins out and skips Pillow's global bomb check (which warns, or raises
    without the dimensions) in favour of ``limits.max_pixels``, checked here before
    any pixel is decoded.
    """
    if data[4:8] == b"ftyp":
        _ensure_heif()
    prefix = data[:16]
    failures: list[str] = []
    for fmt in _PILLOW_FORMATS:
        opener = Image.OPEN.get(fmt)
        if opener is None:
            continue
        factory, accept = opener
        verdict = accept(prefix) if accept else False
        if not verdict or isinstance(verdict, str):
            continue
        if fmt == "WEBP" and (canvas := _webp_canvas(data)) is not None:
            _check_pixels(*canvas, limits)
        try:
            im = factory(io.BytesIO(data), "")
        except (SyntaxError, ValueError, struct.error, IndexError, TypeError, EOFError, OSError) as exc:
            if fmt not in _WEAK_SIGNATURES:
                failures.append(f"{fmt}: {exc}")  # right signature, broken header
            continue
        _check_pixels(im.size[0], im.size[1], limits)
        return im
    if failures:
        raise CorruptMedia("; ".join(failures))
    return None


def _frame_count(im: Image.Image, fmt: str, data: bytes, limits: MediaLimits) -> tuple[int, int, int]:
    """Frames in the file and the canvas they are drawn on, checked before decoding."""
    width, height = im.size
    if fmt == "MPO" or not getattr(im, "is_animated", False):
        return 1, width, height
    if fmt == "GIF":
        # Pillow counts GIF frames by parsing them all in Python, and grows the
        # canvas for frames that overhang it only when it reaches them: look first.
        declared, width, height = _gif_layout(data, MAX_TOTAL_FRAMES + 1)
        _check_pixels(width, height, limits)
        if declared > MAX_TOTAL_FRAMES:
            return declared, width, height
    elif fmt == "TIFF":
        # Pages form a linked list: walk it page by page and stop at the limit
        # (one long seek would leave Pillow with a wrong page count).
        pages = 1
        while pages <= MAX_TOTAL_FRAMES:
            try:
                im.seek(pages)
            except EOFError:
                break
            pages += 1
        im.seek(0)
        return pages, width, height
    return int(getattr(im, "n_frames", 1)), width, height


def _gif_layout(gif: bytes, stop: int) -> tuple[int, int, int]:
    """Image descriptors in a GIF (counted up to ``stop``) and the canvas that holds them all.

    As lenient as Pillow's reader: unknown bytes are skipped, a missing trailer ends
    the file; damage inside the frames is left for the decoder to report.
    """
    width, height = struct.unpack_from("<HH", gif, 6)
    pos = 13
    if gif[10] & 0x80:  # global colour table
        pos += 3 << ((gif[10] & 7) + 1)
    frames = 0
    while frames < stop and pos < len(gif):
        block = gif[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then data sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size
            if pos + 10 > len(gif):
                break
            left, top, w, h, flags = struct.unpack_from("<HHHHB", gif, pos + 1)
            width, height = max(width, left + w), max(height, top + h)
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
            frames += 1
        else:
            pos += 1
            continue
        while pos < len(gif) and gif[pos]:  # data sub-blocks, up to the empty one
            pos += gif[pos] + 1
        pos += 1
    return frames, width, height


def _orientation(im: Image.Image) -> int:
    """EXIF (or XMP) orientation 1..8; a damaged EXIF block counts as upright, as in viewers."""
    try:
        value = im.getexif().get(0x0112, 1)
    except (SyntaxError, ValueError, struct.error, IndexError, KeyError, TypeError, OSError, EOFError, Warning):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _reduction(width: int, height: int, min_side: int | None) -> int:
    """The largest power of two that keeps the shorter side >= min_side."""
    if min_side is None:
        return 1
    factor, short = 1, min(width, height)
    while short // (factor * 2) >= min_side:
        factor *= 2
    return factor


def _over_white(rgba: Image.Image) -> Image.Image:
    alpha = rgba.getchannel("A")
    rgb = rgba.convert("RGB")
    if alpha.getextrema()[0] == 255:  # fully opaque: nothing to composite
        return rgb
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgb, mask=alpha)
    return out


def _as_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB, with transparency shown over white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or ("transparency" in im.info and mode in ("P", "L", "RGB", "1")):
        return _over_white(im if mode == "RGBA" else im.convert("RGBA"))
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples: keep the high byte (Pillow's own conversion would clip).
        wide = np.asarray(im).astype(np.int64 if mode == "I" else np.uint16)
        grey = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        # float samples, nominally 0..1 (as in scientific TIFFs)
        grey = np.clip(np.nan_to_num(np.asarray(im)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise UnsupportedFormat(f"colour mode {mode} cannot be shown as RGB ({exc})") from exc


def _frame_pixels(im: Image.Image, orientation: int, min_side: int | None) -> np.ndarray:
    """The frame as reduced RGB, converted strip by strip: the full-size picture is never copied
    whole (a strip's height is a multiple of the factor, so the reduction is the same as in one go)."""
    width, height = im.size
    factor = _reduction(width, height, min_side)
    step = factor * max(1, STRIP_ROWS // factor)
    out = np.empty((-(-height // factor), -(-width // factor), 3), np.uint8)
    for top in range(0, height, step):
        strip = _as_rgb(im.crop((0, top, width, min(height, top + step))))
        if factor > 1:
            strip = strip.reduce(factor)
        out[top // factor : top // factor + strip.height] = np.asarray(strip)
        del strip
    if orientation in _ORIENT:
        return _frozen(np.asarray(Image.fromarray(out, "RGB").transpose(_ORIENT[orientation])))
    return _frozen(out)


def _frozen(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CorruptMedia(f"decoding gave pixels of shape {rgb.shape} and type {rgb.dtype}")
    rgb = np.ascontiguousarray(rgb)
    rgb.flags.writeable = False
    return rgb


def _decode_image(im: Image.Image, data: bytes, limits: MediaLimits, min_side: int | None) -> DecodedMedia:
    fmt = im.format or ""
    width, height = im.size
    count, canvas_w, canvas_h = _frame_count(im, fmt, data, limits)
    _check_work(count, canvas_w, canvas_h, count if fmt in _SEQUENTIAL else min(count, limits.max_frames))
    if min_side is not None and fmt in ("JPEG", "MPO"):
        # DCT scaling: decode at 1/2, 1/4 or 1/8 straight away
        im.draft(None, (min_side, min_side))
    animated = count > 1 and fmt in _SEQUENTIAL
    held_w, held_h = (canvas_w, canvas_h) if count > 1 else im.size
    per_frame = held_w * held_h * _bytes_per_pixel(im.mode, animated)
    held = _check_decoded(held_w, held_h, im.mode, per_frame * (2 if animated else 1), limits)
    frames = []
    with _budget(limits).hold(held):
        im.load()  # before reading EXIF: PNG keeps it after the pixels
        orientation = _orientation(im)
        for index in sample_indices(count, max(1, limits.max_frames)):
            if index:
                im.seek(index)
                _check_pixels(im.size[0], im.size[1], limits)  # a GIF frame may grow the canvas
                im.load()
            frames.append(Frame(_frame_pixels(im, orientation, min_side), index))
        im.close()  # the full-size picture goes before the budget is given back
    if orientation >= 5:
        width, height = height, width
    return DecodedMedia(
        format=_PILLOW_FORMATS[fmt],
        width=width,
        height=height,
        frame_count=count,
        frames=tuple(frames),
        animated=count > 1,
    )


# --- video (PyAV) ----------------------------------------------------------------


def _video_kind(data: bytes) -> str | None:
    """The container Vigil reports, from the first bytes; None if not a video it reads."""
    if data[4:8] == b"ftyp":
        return "MOV" if data[8:12] == b"qt  " else "MP4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM, named by its DocType
        return "WEBM" if b"webm" in data[:64] else "MKV"
    return None


def _open_video(data: bytes, limits: MediaLimits) -> av.container.InputContainer:
    # The demuxer is forced from the sniffed signature, so FFmpeg never probes for
    # formats that read other files or URLs (HLS playlists, concat lists). The
    # decoders' own max_pixels guard covers frames the header did not announce.
    demuxer = "mp4" if data[4:8] == b"ftyp" else "matroska"
    return av.open(io.BytesIO(data), mode="r", format=demuxer, options={"max_pixels": str(limits.max_pixels)})


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise UnsupportedFormat("the file has no video track (audio only?)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedFormat(f"no decoder for the video codec of this file ({stream.codec_tag or 'unknown'})")
    return stream


def _decode_video(data: bytes, kind: str, limits: MediaLimits, min_side: int | None) -> DecodedMedia:
    with _open_video(data, limits) as container:
        stream = _video_stream(container)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width or height:
            _check_pixels(width, height, limits)
        stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
        stamps, keyframes = _frame_stamps(container, stream, width, height)
        targets = _plan_samples(stamps, keyframes, max(1, limits.max_frames), width, height)
        # a decoded frame, and its RGB(A) conversion: about 4 bytes a pixel (size unknown: the cap)
        held = _check_decoded(width, height, "video", 4 * width * height, limits) if width and height else None
        with _budget(limits).hold(held if held is not None else limits.max_decoded_bytes):
            frames, shown = _decode_at(container, stream, stamps, keyframes, targets, limits, min_side)
        return DecodedMedia(
            format=kind,
            width=shown[0],
            height=shown[1],
            frame_count=len(stamps),
            frames=tuple(frames),
            animated=len(stamps) > 1,
        )


def _frame_stamps(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, width: int, height: int
) -> tuple[list[int], list[int]]:
    """Every frame's timestamp and the keyframes', in display order, from demuxing alone."""
    stamps: list[int] = []
    keyframes: list[int] = []
    for packet in container.demux(stream):
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            continue  # the end-of-stream marker
        stamps.append(pts)
        if packet.is_keyframe:
            keyframes.append(pts)
        if len(stamps) > MAX_TOTAL_FRAMES:
            raise TooManyFrames(len(stamps), MAX_TOTAL_FRAMES, width, height)
    if not stamps:
        raise CorruptMedia("the video track holds no frames")
    return sorted(stamps), sorted(keyframes)


def _plan_samples(stamps: list[int], keyframes: list[int], k: int, width: int, height: int) -> list[int]:
    """The timestamps to sample.

    Evenly spread frames, first and last included, if decoding up to them is
    affordable. Otherwise the keyframe at or before each of those frames (a keyframe
    decodes on its own), so that a long video with a keyframe every second or two is
    still checked along its whole length; the last frame is then the last keyframe.
    A video that would have to be decoded through (too few keyframes) is refused.
    """
    exact = [stamps[i] for i in sample_indices(len(stamps), k)]
    if not width or not height:
        return exact  # size unknown until decoded: the hard stop in _decode_at applies
    affordable = max(1, MAX_DECODED_PIXELS // (width * height))
    if _decode_cost(stamps, keyframes, exact) <= affordable:
        return exact
    nearest = sorted({key for t in exact if (key := _at_or_before(keyframes, t)) is not None})
    if len(nearest) >= min(k, 2) and _decode_cost(stamps, keyframes, nearest) <= affordable:
        return nearest
    raise TooManyFrames(len(stamps), affordable, width, height)


def _decode_cost(stamps: list[int], keyframes: list[int], targets: list[int]) -> int:
    """Frames decoded to reach each target in turn, jumping to a keyframe when that is ahead."""
    cost, position = 0, None
    for target in targets:
        key = _at_or_before(keyframes, target)
        if position is None or (key is not None and key > position):
            start = bisect_left(stamps, key if key is not None else stamps[0])
        else:
            start = bisect_right(stamps, position)
        cost += max(0, bisect_right(stamps, target) - start)
        position = target
    return cost


def _decode_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    stamps: list[int],
    keyframes: list[int],
    targets: list[int],
    limits: MediaLimits,
    min_side: int | None,
) -> tuple[list[Frame], tuple[int, int]]:
    """The first frame at or after each target time, and the picture's size as shown."""
    picked: list[Frame] = []
    shown = (0, 0)
    alpha = _alpha_decoder(stream, limits)
    # a hard stop in case the file's timestamps misled the plan
    budget = 2 * MAX_DECODED_PIXELS
    decoded_pixels = 0
    position = stamps[0] - 1  # pts of the last decoded frame
    pending: Iterator[av.VideoFrame] | None = None
    last: av.VideoFrame | None = None
    taken: av.VideoFrame | None = None
    for target in targets:
        key = _at_or_before(keyframes, target)
        if pending is None or (key is not None and key > position):
            # pass 1 left the demuxer at the end, so the first decode seeks too
            container.seek(key if key is not None else stamps[0], stream=stream, backward=True)
            pending = _decoded_frames(container, stream, alpha)
        found = None
        for frame in pending:
            decoded_pixels += frame.width * frame.height
            if decoded_pixels > budget:
                affordable = MAX_DECODED_PIXELS // max(1, frame.width * frame.height)
                raise TooManyFrames(len(stamps), affordable, frame.width, frame.height)
            last = frame
            position = frame.pts if frame.pts is not None else position + 1
            if position >= target:
                found = frame
                break
        if found is None:
            found = last  # the track ended before this time: its last frame stands in
        if found is None or found is taken:
            continue
        taken = found
        _check_pixels(found.width, found.height, limits)
        index = _index_of(stamps, found.pts) if found.pts is not None else len(picked)
        turns = _quarter_turns(found)
        if not picked:
            shown = (found.height, found.width) if turns % 2 else (found.width, found.height)
        factor = _reduction(found.width, found.height, min_side)
        picked.append(Frame(_video_pixels(found, turns, factor), index))
    if not picked:
        raise CorruptMedia("no frame of the video track could be decoded")
    return picked, shown


def _alpha_decoder(stream: av.video.stream.VideoStream, limits: MediaLimits) -> VideoCodecContext | None:
    """A decoder that reads the transparency VP8/VP9 in WebM keep beside the picture.

    Telegram's video stickers are VP9 with transparency; FFmpeg's own VP9 decoder
    drops it, leaving whatever colour the transparent area happens to hold. Only
    libvpx's decoder reads it; None when the stream has none (or libvpx is missing).
    """
    name = stream.codec_context.name
    if name not in ("vp8", "vp9") or stream.metadata.get("alpha_mode") != "1":
        return None
    try:
        decoder = av.CodecContext.create("libvpx" if name == "vp8" else "libvpx-vp9", "r")
    except (ValueError, av.error.FFmpegError):
        return None
    if not isinstance(decoder, VideoCodecContext):  # a video codec's context always is one
        return None
    decoder.options = {"max_pixels": str(limits.max_pixels)}
    return decoder


def _decoded_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, alpha: VideoCodecContext | None
) -> Iterator[av.VideoFrame]:
    """Frames from the demuxer's current position (it was just seeked)."""
    if alpha is None:
        yield from container.decode(stream)
        return
    alpha.flush_buffers()  # the seek flushed only the stream's own decoder
    for packet in container.demux(stream):
        yield from alpha.decode(packet)


def _at_or_before(sorted_values: list[int], value: int) -> int | None:
    i = bisect_right(sorted_values, value)
    return sorted_values[i - 1] if i else None


def _index_of(sorted_values: list[int], value: int) -> int:
    return min(bisect_left(sorted_values, value), len(sorted_values) - 1)


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns the display matrix asks for (phone videos)."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):
        return 0
    return round((degrees or 0) / 90) % 4


def _frame_array(frame: av.VideoFrame, pixel_format: str, factor: int) -> np.ndarray:
    """The frame's pixels in ``pixel_format``, shrunk ``factor`` times (area averaging) when above 1."""
    if factor > 1:
        width, height = -(-frame.width // factor), -(-frame.height // factor)
        return frame.to_ndarray(format=pixel_format, width=width, height=height, interpolation="AREA")
    return frame.to_ndarray(format=pixel_format)


def _video_pixels(frame: av.VideoFrame, quarter_turns: int, factor: int) -> np.ndarray:
    transparent = any(c.is_alpha for c in frame.format.components)
    rgb: np.ndarray
    if transparent:
        rgba = _frame_array(frame, "rgba", factor).astype(np.uint16)
        alpha = rgba[..., 3:4]
        # over white, as for images: (c * a + 255 * (255 - a)) / 255, rounded
        rgb = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    else:
        rgb = _frame_array(frame, "rgb24", factor)
    if quarter_turns:
        rgb = np.rot90(rgb, quarter_turns)
    return _frozen(rgb)
