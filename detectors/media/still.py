"""Still images and animations, decoded with Pillow from bytes in memory.

Only the formats Vigil needs are read: each format's reader is called directly (Pillow's
other plugins, e.g. EPS which would start Ghostscript, are never consulted). JPEG gets most
of the ``min_side`` reduction for free from libjpeg's DCT scaling (Pillow's draft mode, at
most 1/8); other formats and any remaining factor use a box-filter reduction. GIF, APNG and
animated WebP must decode the frames between the sampled ones (each builds on the last).
Colour conversion and reduction run in strips of rows: the full-size picture is held once,
never in several converted copies. Transparency is shown over white.
"""

from __future__ import annotations

import io
import struct
import threading

import numpy as np

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
    UnsupportedFormat,
)
from detectors.media.frames import DecodedMedia, Frame, frozen, reduction, sample_indices
from detectors.media.guards import (
    MAX_TOTAL_FRAMES,
    budget_for,
    bytes_per_pixel,
    check_decoded,
    check_pixels,
    check_work,
)
from detectors.settings import MediaLimits

try:  # Pillow >= 11.2 reads AVIF itself
    from PIL import AvifImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover - older Pillow
    pass

# Pillow format id -> the name Vigil reports, in the order they are tried. An MPO
# is a camera JPEG with extra pictures (previews, depth maps) that chat clients
# never show; only its primary picture is read.
PILLOW_FORMATS: dict[str, str] = {
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

_heif_lock = threading.Lock()
_heif_registered = False

# Rows converted and reduced at a time: the temporaries of a colour conversion stay a strip
# high, whatever the picture's height (a multiple of the reduction factor is used).
STRIP_ROWS = 256


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


def open_image(data: bytes, limits: MediaLimits) -> Image.Image | None:
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
    for fmt in PILLOW_FORMATS:
        opener = Image.OPEN.get(fmt)
        if opener is None:
            continue
        factory, accept = opener
        verdict = accept(prefix) if accept else False
        if not verdict or isinstance(verdict, str):
            continue
        if fmt == "WEBP" and (canvas := _webp_canvas(data)) is not None:
            check_pixels(*canvas, limits)
        try:
            im = factory(io.BytesIO(data), "")
        except (SyntaxError, ValueError, struct.error, IndexError, TypeError, EOFError, OSError) as exc:
            if fmt not in _WEAK_SIGNATURES:
                failures.append(f"{fmt}: {exc}")  # right signature, broken header
            continue
        check_pixels(im.size[0], im.size[1], limits)
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
        check_pixels(width, height, limits)
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
    factor = reduction(width, height, min_side)
    step = factor * max(1, STRIP_ROWS // factor)
    out = np.empty((-(-height // factor), -(-width // factor), 3), np.uint8)
    for top in range(0, height, step):
        strip = _as_rgb(im.crop((0, top, width, min(height, top + step))))
        if factor > 1:
            strip = strip.reduce(factor)
        out[top // factor : top // factor + strip.height] = np.asarray(strip)
        del strip
    if orientation in _ORIENT:
        return frozen(np.asarray(Image.fromarray(out, "RGB").transpose(_ORIENT[orientation])))
    return frozen(out)


def decode_image(im: Image.Image, data: bytes, limits: MediaLimits, min_side: int | None) -> DecodedMedia:
    fmt = im.format or ""
    width, height = im.size
    count, canvas_w, canvas_h = _frame_count(im, fmt, data, limits)
    check_work(count, canvas_w, canvas_h, count if fmt in _SEQUENTIAL else min(count, limits.max_frames))
    if min_side is not None and fmt in ("JPEG", "MPO"):
        # DCT scaling: decode at 1/2, 1/4 or 1/8 straight away
        im.draft(None, (min_side, min_side))
    animated = count > 1 and fmt in _SEQUENTIAL
    held_w, held_h = (canvas_w, canvas_h) if count > 1 else im.size
    per_frame = held_w * held_h * bytes_per_pixel(im.mode, animated)
    held = check_decoded(held_w, held_h, im.mode, per_frame * (2 if animated else 1), limits)
    frames = []
    with budget_for(limits).hold(held):
        im.load()  # before reading EXIF: PNG keeps it after the pixels
        orientation = _orientation(im)
        for index in sample_indices(count, max(1, limits.max_frames)):
            if index:
                im.seek(index)
                check_pixels(im.size[0], im.size[1], limits)  # a GIF frame may grow the canvas
                im.load()
            frames.append(Frame(_frame_pixels(im, orientation, min_side), index))
        im.close()  # the full-size picture goes before the budget is given back
    if orientation >= 5:
        width, height = height, width
    return DecodedMedia(
        format=PILLOW_FORMATS[fmt],
        width=width,
        height=height,
        frame_count=count,
        frames=tuple(frames),
        animated=count > 1,
    )
