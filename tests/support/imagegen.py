"""Test images, animations and videos generated in memory, for any test in the project.

Everything returns ``bytes`` (or an RGB uint8 array) and touches no disk. Frames are
HxWx3 uint8 RGB arrays. ``index_frame(i)`` draws a frame that says which number it
is in a way that survives lossy codecs, palettes and downscaling; ``read_index``
reads the number back.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np
from PIL import Image

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"

# index_frame draws INDEX_BITS bits as a 4x4 grid of black/white cells
INDEX_BITS = 16


# --- photos ------------------------------------------------------------------


@cache
def _photo(name: str) -> np.ndarray:
    matches = sorted(IMAGES_DIR.glob(f"{name}.*")) if "." not in name else [IMAGES_DIR / name]
    if not matches or not matches[0].is_file():
        raise FileNotFoundError(f"no test photo named {name!r} in {IMAGES_DIR}")
    with Image.open(matches[0]) as im:
        rgb = np.asarray(im.convert("RGB"))
    rgb.flags.writeable = False
    return rgb


def photo(name: str) -> np.ndarray:
    """A photo from tests/images as RGB uint8 ("astronaut", "coffee", "chelsea", "rocket")."""
    return _photo(name)


def photo_bytes(name: str) -> bytes:
    """The stored file's bytes, e.g. ``photo_bytes("rocket.jpg")``."""
    return (IMAGES_DIR / name).read_bytes()


# --- encoders for still images -----------------------------------------------


def encode(image: Image.Image | np.ndarray, fmt: str, **params: object) -> bytes:
    """Any Pillow-writable format (plus "HEIF" through pillow-heif) as bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if fmt.upper() in ("HEIF", "HEIC"):
        import pillow_heif

        pillow_heif.register_heif_opener()
        fmt = "HEIF"
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def exif_orientation(orientation: int) -> bytes:
    """An EXIF block holding only the orientation tag (1..8)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, *, orientation: int | None = None, **params: object) -> bytes:
    if orientation is not None:
        params["exif"] = exif_orientation(orientation)
    return encode(rgb, "JPEG", quality=quality, **params)


def png_bytes(pixels: np.ndarray | Image.Image, **params: object) -> bytes:
    """PNG of an array (HxW grey, HxWx3 RGB, HxWx4 RGBA; uint16 grey gives a 16-bit PNG)."""
    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint16 and pixels.ndim == 2:
        pixels = Image.fromarray(pixels.astype("<u2"))
    return encode(pixels, "PNG", **params)


def webp_bytes(rgb: np.ndarray, *, lossless: bool = True, **params: object) -> bytes:
    return encode(rgb, "WEBP", lossless=lossless, **params)


def cmyk_jpeg_bytes(cmyk: np.ndarray, quality: int = 95) -> bytes:
    """A CMYK JPEG (HxWx4 uint8 C, M, Y, K ink amounts, 255 = full ink)."""
    return encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=quality)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16_rgb_bytes(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-sample RGB PNG (Pillow cannot write one), written by hand."""
    height, width, _ = rgb16.shape
    rows = rgb16.astype(">u2").reshape(height, width * 6 // 2).view(np.uint8).reshape(height, width * 6)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


# --- decompression bombs: huge declared size, tiny file --------------------------


def bomb_png(width: int, height: int) -> bytes:
    """A 1-bit grey PNG declaring width x height, with only its first rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def bomb_gif(width: int, height: int, *, screen: tuple[int, int] | None = None) -> bytes:
    """A GIF whose single frame declares width x height (at most 65535 each).

    ``screen``: a smaller logical screen for the frame to overhang (by default the
    screen is as large as the frame).
    """
    sw, sh = screen or (width, height)
    head = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02" + b"\x02\x44\x01" + b"\x00"  # code size; clear, one pixel, end; terminator
    return head + frame + lzw + b"\x3b"


def bomb_webp(width: int, height: int) -> bytes:
    """An extended-format WebP header declaring a width x height canvas (at most 16384 each)."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def many_frames_gif(count: int) -> bytes:
    """A 1x1 GIF with ``count`` frames, written directly (Pillow would take minutes)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame * count + b"\x3b"


def overhanging_gif(screen: tuple[int, int], frame_size: tuple[int, int]) -> bytes:
    """A valid two-frame GIF whose second frame is larger than the logical screen."""
    small = Image.new("P", screen, 0)
    small.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    first = encode(small, "GIF")
    body = first[: first.rindex(b"\x3b")]
    w, h = frame_size
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x02\x44\x01\x00"
    return body + frame + b"\x3b"


def multipage_tiff_bytes(frames: Sequence[np.ndarray]) -> bytes:
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "TIFF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def mpo_bytes(primary: np.ndarray, *others: np.ndarray) -> bytes:
    """A multi-picture JPEG as cameras write them (primary picture first)."""
    buf = io.BytesIO()
    Image.fromarray(primary).save(buf, "MPO", save_all=True, append_images=[Image.fromarray(o) for o in others])
    return buf.getvalue()


# --- frames that carry their own number -------------------------------------------


def index_frame(i: int, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A (width, height) frame showing ``i`` as 16 black/white cells in a 4x4 grid."""
    width, height = size
    bits = np.array([(i >> b) & 1 for b in range(INDEX_BITS)], dtype=np.uint8).reshape(4, 4) * 255
    cells = np.kron(bits, np.ones((height // 4 + 1, width // 4 + 1), dtype=np.uint8))[:height, :width]
    return np.ascontiguousarray(np.repeat(cells[:, :, None], 3, axis=2))


def read_index(rgb: np.ndarray) -> int:
    """The number drawn by ``index_frame``, from the middle of each cell."""
    height, width = rgb.shape[:2]
    grey = rgb.astype(np.float32).mean(axis=2)
    value = 0
    for b in range(INDEX_BITS):
        r, c = divmod(b, 4)
        y0, y1 = (r * height) // 4, ((r + 1) * height) // 4
        x0, x1 = (c * width) // 4, ((c + 1) * width) // 4
        dy, dx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
        if grey[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean() > 127:
            value |= 1 << b
    return value


def index_frames(count: int, size: tuple[int, int] = (64, 64)) -> list[np.ndarray]:
    return [index_frame(i, size) for i in range(count)]


# --- animations ---------------------------------------------------------------------


def animated_gif_bytes(frames: Sequence[np.ndarray], duration_ms: int = 40, **params: object) -> bytes:
    """An animated GIF. Pillow merges consecutive identical frames into one longer frame."""
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0, **params)
    return buf.getvalue()


def webp_animated_bytes(
    frames: Sequence[np.ndarray], duration_ms: int = 40, *, lossless: bool = True, **params: object
) -> bytes:
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf,
        "WEBP",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        lossless=lossless,
        method=0,
        **params,
    )
    return buf.getvalue()


def apng_bytes(frames: Sequence[np.ndarray], duration_ms: int = 40) -> bytes:
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, "PNG", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


# --- video (PyAV, in memory) ---------------------------------------------------------


def _even(rgb: np.ndarray) -> np.ndarray:
    """Crop to even sides: 4:2:0 video cannot hold odd ones."""
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2, :3])


def video_bytes(
    frames: Sequence[np.ndarray],
    fps: int = 25,
    *,
    container: str = "mp4",
    codec: str = "libx264",
    gop: int | None = None,
    options: dict[str, str] | None = None,
    rotation: int | None = None,
) -> bytes:
    """Frames encoded as a video in memory (frame i shown at i/fps seconds).

    ``rotation``: counter-clockwise degrees stored in the display matrix, as phones do.
    """
    first = _even(np.asarray(frames[0]))
    height, width = first.shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        stream.options = dict(options or {})
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(_even(np.asarray(rgb))[:height, :width], format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def mp4_bytes(
    frames: Sequence[np.ndarray], fps: int = 25, *, gop: int | None = None, rotation: int | None = None
) -> bytes:
    """H.264 in MP4, as Telegram sends "GIF" animations.

    ``gop``: a keyframe exactly every ``gop`` frames (no extra ones at scene cuts).
    """
    options = {"crf": "18"}
    if gop is not None:
        options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    return video_bytes(frames, fps, container="mp4", codec="libx264", gop=gop, options=options, rotation=rotation)


def webm_bytes(
    frames: Sequence[np.ndarray], fps: int = 25, *, codec: str = "libvpx-vp9", gop: int | None = None
) -> bytes:
    """VP9 (or "libvpx" for VP8) in WebM, as Telegram sends video stickers.

    ``gop``: a keyframe exactly every ``gop`` frames.
    """
    options = {"crf": "20", "b": "0"}
    if gop is not None:
        options["keyint_min"] = str(gop)
    return video_bytes(frames, fps, container="webm", codec=codec, gop=gop, options=options)


def audio_only_mp4(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """An MP4 holding only an AAC tone: a container Vigil opens but has no picture."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        samples = int(seconds * rate)
        t = np.arange(samples, dtype=np.float32) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def transparent_webm_bytes(frames_rgba: Sequence[np.ndarray], fps: int = 10, *, codec: str = "libvpx-vp9") -> bytes:
    """VP9 (or VP8) WebM with transparency, as Telegram's video stickers (HxWx4 RGBA frames)."""
    first = np.asarray(frames_rgba[0])
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = first.shape[0] - first.shape[0] % 2, first.shape[1] - first.shape[1] % 2
        stream.pix_fmt = "yuva420p"
        if codec == "libvpx":
            stream.options = {"auto-alt-ref": "0"}  # VP8 cannot carry alpha with alt-ref frames
        for rgba in frames_rgba:
            even = np.ascontiguousarray(np.asarray(rgba)[: stream.height, : stream.width])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(even, format="rgba")))
        out.mux(stream.encode(None))
    return buf.getvalue()


# --- synthetic photos ----------------------------------------------------------

SCENES = ("meadow", "raindrops", "flowers", "pebbles", "city", "foliage")


def _noise_field(rng: np.random.Generator, h: int, w: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Smooth random field in 0..1 made of a few octaves of upscaled noise (clouds, shading)."""
    import cv2

    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        small = rng.random((cells, max(1, cells * w // h))).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / max(1e-6, float(out.max() - out.min()))


def _grain(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """Sensor-like grain, then a slight lens blur: what every camera photo has."""
    import cv2

    out = img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32)
    out = cv2.GaussianBlur(out, (3, 3), 0.7)
    return np.clip(out, 0, 255).astype(np.uint8)


def scene(kind: str, seed: int, size: tuple[int, int] = (2000, 1500)) -> np.ndarray:
    """A synthetic photo-like picture (RGB uint8, width x height ``size``) of one of
    ``SCENES``: a meadow under a sky, raindrops on a window, a flower bed, pebbles, a
    street of buildings, leaves. Detail at many scales, as in a camera photo, and large
    (a phone photo's size) so that edits can downscale it as chat apps do. Deterministic
    in ``seed``; distinct seeds share no content."""
    import cv2

    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}; one of {SCENES}")
    rng = np.random.default_rng(seed * 7919 + SCENES.index(kind))
    w, h = size
    img = np.zeros((h, w, 3), np.float32)
    if kind == "meadow":
        horizon = int(h * rng.uniform(0.25, 0.45))
        sky = _noise_field(rng, horizon, w, 4, 2)[..., None]
        top, cloud = np.array([70, 130, 215], np.float32), np.array([240, 242, 245], np.float32)
        img[:horizon] = top * (1 - sky) + cloud * sky
        ground = _noise_field(rng, h - horizon, w, 6, 3)[..., None]
        dark, light = np.array([40, 90, 30], np.float32), np.array([140, 170, 60], np.float32)
        img[horizon:] = dark * (1 - ground) + light * ground
        for _ in range(int(w * h / 250)):  # grass blades, longer towards the viewer
            x, y = rng.uniform(0, w), rng.uniform(horizon, h)
            depth = (y - horizon) / max(1, h - horizon)
            length = 4 + 40 * depth * rng.uniform(0.5, 1.5)
            a = rng.uniform(-0.5, 0.5) - np.pi / 2
            g = rng.uniform(0.5, 1.3)
            colour = tuple(float(c) for c in np.clip(np.array([50, 120, 35]) * g, 0, 255))
            cv2.line(
                img,
                (int(x), int(y)),
                (int(x + length * np.cos(a)), int(y + length * np.sin(a))),
                colour,
                1 + int(depth * 2),
                cv2.LINE_AA,
            )
        for _ in range(int(w * h / 6000)):  # flowers in the grass
            x, y = int(rng.uniform(0, w)), int(rng.uniform(horizon, h))
            r = 2 + int(8 * (y - horizon) / max(1, h - horizon))
            palette = [(240, 240, 240), (250, 220, 40), (220, 60, 90), (160, 90, 200)]
            colour = tuple(float(c) for c in rng.choice(palette))
            cv2.circle(img, (x, y), r, colour, -1, cv2.LINE_AA)
    elif kind == "raindrops":
        bg = np.stack([_noise_field(rng, h, w, 3, 2) for _ in range(3)], axis=2)
        img[:] = 40 + 180 * bg
        for _ in range(60):  # out-of-focus lights behind the glass
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            radius = int(rng.uniform(15, 60))
            light = tuple(float(v) for v in rng.uniform(120, 255, 3))
            cv2.circle(img, c, radius, light, -1, cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (0, 0), 12)
        base = img.copy()
        for _ in range(int(w * h / 3000)):  # drops: a flipped, shrunk view of what is behind, a dark rim, a glint
            r = int(rng.uniform(4, 28) * (1.6 if rng.random() < 0.1 else 1))
            x, y = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
            y0, y1, x0, x1 = max(0, y - 3 * r), min(h, y + 3 * r), max(0, x - 3 * r), min(w, x + 3 * r)
            patch = cv2.resize(base[y0:y1, x0:x1][::-1, ::-1], (2 * r, 2 * r), interpolation=cv2.INTER_AREA)
            mask = np.zeros((2 * r, 2 * r), np.float32)
            cv2.circle(mask, (r, r), r - 1, 1.0, -1, cv2.LINE_AA)
            dst = img[y - r : y + r, x - r : x + r]
            dst[:] = dst * (1 - mask[..., None]) + patch * mask[..., None] * 1.1
            cv2.circle(img, (x, y), r, (20, 20, 25), max(1, r // 6), cv2.LINE_AA)
            cv2.circle(img, (x - r // 3, y - r // 3), max(1, r // 5), (250, 250, 250), -1, cv2.LINE_AA)
    elif kind == "flowers":
        f = _noise_field(rng, h, w, 5, 3)[..., None]
        img[:] = np.array([15, 45, 15], np.float32) * (1 - f) + np.array([60, 110, 40], np.float32) * f
        for _ in range(int(w * h / 400)):  # leaves
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            ax = (int(rng.uniform(6, 30)), int(rng.uniform(2, 8)))
            g = rng.uniform(0.6, 1.4)
            leaf = tuple(float(v) for v in np.array([40, 100, 30]) * g)
            cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, leaf, -1, cv2.LINE_AA)
        for _ in range(int(w * h / 9000)):  # blossoms: petals around a centre
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(10, 45)
            petal = np.clip(rng.uniform(80, 255, 3), 0, 255)
            n = int(rng.integers(5, 9))
            turn = rng.uniform(0, 2 * np.pi)
            for k in range(n):
                a = turn + 2 * np.pi * k / n
                c = (int(cx + 0.6 * r * np.cos(a)), int(cy + 0.6 * r * np.sin(a)))
                shade = tuple(float(v) for v in petal * rng.uniform(0.8, 1.1))
                cv2.ellipse(img, c, (int(0.6 * r), int(0.28 * r)), np.degrees(a), 0, 360, shade, -1, cv2.LINE_AA)
            cv2.circle(img, (int(cx), int(cy)), int(0.22 * r), (230, 190, 30), -1, cv2.LINE_AA)
    elif kind == "pebbles":
        img[:] = 90 + 60 * _noise_field(rng, h, w, 6, 4)[..., None]
        for _ in range(int(w * h / 1500)):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            ax = (int(rng.uniform(8, 40)), int(rng.uniform(6, 30)))
            tone = rng.uniform(60, 220) * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 1.0)])
            cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, tuple(float(v) for v in tone * 0.6), -1, cv2.LINE_AA)
            cv2.ellipse(
                img,
                (c[0] - 2, c[1] - 2),
                (max(1, ax[0] - 3), max(1, ax[1] - 3)),
                rng.uniform(0, 180),
                0,
                360,
                tuple(float(v) for v in tone),
                -1,
                cv2.LINE_AA,
            )
    elif kind == "city":
        sky = _noise_field(rng, h, w, 3, 2)[..., None]
        img[:] = np.array([150, 180, 220], np.float32) * (1 - sky) + np.array([235, 235, 240], np.float32) * sky
        x = 0
        while x < w:  # buildings of windows
            bw, top = int(rng.uniform(w / 14, w / 5)), int(rng.uniform(0.05, 0.6) * h)
            wall = rng.uniform(70, 210, 3)
            cv2.rectangle(img, (x, top), (x + bw, h), tuple(float(v) for v in wall), -1)
            ww, wh = int(rng.uniform(8, 22)), int(rng.uniform(12, 30))
            for yy in range(top + 10, h - wh, wh + int(rng.uniform(8, 20))):
                for xx in range(x + 8, x + bw - ww, ww + int(rng.uniform(6, 16))):
                    lit = rng.random() < 0.3
                    colour = (250, 230, 150) if lit else tuple(float(v) for v in wall * rng.uniform(0.25, 0.5))
                    cv2.rectangle(img, (xx, yy), (xx + ww, yy + wh), colour, -1)
            x += bw + int(rng.uniform(0, 30))
        img *= (0.75 + 0.35 * _noise_field(rng, h, w, 3, 2))[..., None]
    else:  # foliage
        img[:] = 30
        for _ in range(int(w * h / 350)):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            ax = (int(rng.uniform(10, 40)), int(rng.uniform(4, 16)))
            tone = np.array([rng.uniform(60, 140), rng.uniform(110, 200), rng.uniform(20, 60)]) * rng.uniform(0.5, 1.2)
            leaf, vein = tuple(float(v) for v in np.clip(tone, 0, 255)), tuple(float(v) for v in tone * 0.7)
            cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, leaf, -1, cv2.LINE_AA)
            cv2.line(img, (c[0] - ax[0] // 2, c[1]), (c[0] + ax[0] // 2, c[1]), vein, 1, cv2.LINE_AA)
        img *= (0.6 + 0.6 * _noise_field(rng, h, w, 4, 2))[..., None]
    return _grain(rng, np.clip(img, 0, 255), 3.0)
