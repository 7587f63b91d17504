"""Hostile media files, generated on demand (never committed): what a member could post to stop,
slow or crash Vigil's decoder. Small on disk, huge once decoded, or lying about what they are.

``write_hostile_folder(folder)`` writes them all and returns their names; the test checks that
`vigil scan` answers every one, the bench measures the peak resident memory while it does.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 6300  # 6300 x 6300 = 39.7 Mpx, just under the default pixel limit (40 Mpx)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(side: int = SIDE, *, bit_depth: int = 8, colour: int = 6) -> bytes:
    """A PNG of ``side`` x ``side`` filled with zeros: a few hundred kB that decode to the full size.
    ``colour``: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA; ``bit_depth`` 8 or 16."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" + bytes(side * channels * bit_depth // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def tiff_bomb(side: int = SIDE, mode: str = "F") -> bytes:
    """A deflate TIFF of ``side`` x ``side`` (mode F: 32-bit float, I: 32-bit int, I;16: 16-bit,
    RGBA: 4 x 8 bits), written by Pillow in strips so the writer itself stays small."""
    im = Image.new(mode, (side, side))
    buf = io.BytesIO()
    im.save(buf, "TIFF", compression="tiff_adobe_deflate")
    del im
    return buf.getvalue()


def _moving_square(i: int, side: int, mode: str) -> Image.Image:
    im = Image.new(mode, (side, side), 0 if mode == "P" else (255, 255, 255, 255))
    x = (i * 3) % (side - 8)
    im.paste(1 + i % 200 if mode == "P" else (i % 256, 0, 0, 255), (x, x, x + 8, x + 8))
    return im


def gif_many_frames(frames: int = 5000, side: int = 64) -> bytes:
    """An animated GIF with thousands of small frames, each different."""
    pics = [_moving_square(i, side, "P") for i in range(frames)]
    buf = io.BytesIO()
    pics[0].save(buf, "GIF", save_all=True, append_images=pics[1:], duration=20, loop=0)
    return buf.getvalue()


def gif_growing_canvas() -> bytes:
    """A GIF whose logical screen is tiny and whose frame declares a huge overhanging size."""
    small = io.BytesIO()
    Image.new("P", (8, 8), 1).save(small, "GIF")
    data = bytearray(small.getvalue())
    pos = data.index(b"\x2c")  # image descriptor: left, top, width, height
    struct.pack_into("<HH", data, pos + 5, 65000, 65000)
    return bytes(data)


def apng_many_frames(frames: int = 3000, side: int = 128) -> bytes:
    pics = [_moving_square(i, side, "RGBA") for i in range(frames)]
    buf = io.BytesIO()
    pics[0].save(buf, "PNG", save_all=True, append_images=pics[1:], duration=20)
    return buf.getvalue()


def tiff_many_pages(pages: int = 3000, side: int = 64) -> bytes:
    pics = [Image.new("L", (side, side), i % 256) for i in range(pages)]
    buf = io.BytesIO()
    pics[0].save(buf, "TIFF", save_all=True, append_images=pics[1:], compression="tiff_adobe_deflate")
    return buf.getvalue()


def jpeg_bytes(side: int = 256) -> bytes:
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def lying_types() -> dict[str, bytes]:
    """Names that lie about the content, and content that lies about itself."""
    png = png_bomb(64)
    return {
        "zip_named.jpg": b"PK\x03\x04" + bytes(200),
        "html_named.png": b"<!doctype html><html><body>hi</body></html>",
        "png_named.gif": png,
        "truncated.png": png[: len(png) // 2],
        "jpeg_header_only.jpg": jpeg_bytes()[:300],
        "gif_header_garbage.gif": b"GIF89a" + bytes(range(256)) * 4,
        "tiff_header_garbage.tif": b"II*\x00" + b"\xff" * 400,
        "mp4_header_garbage.mp4": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000,
        "empty.png": b"",
    }


HOSTILE: dict[str, Callable[[], bytes]] = {
    "png_rgba_8bit_6300.png": lambda: png_bomb(colour=6, bit_depth=8),
    "png_rgba_16bit_6300.png": lambda: png_bomb(colour=6, bit_depth=16),
    "png_grey_16bit_6300.png": lambda: png_bomb(colour=0, bit_depth=16),
    "png_rgb_16bit_6300.png": lambda: png_bomb(colour=2, bit_depth=16),
    "png_over_limit_7000.png": lambda: png_bomb(7000, colour=6),
    # just under the default decoded-bytes limit (128 MiB): decoded, two at once share the budget
    "png_rgba_8bit_5600.png": lambda: png_bomb(5600, colour=6, bit_depth=8),
    "png_rgba_16bit_5600.png": lambda: png_bomb(5600, colour=6, bit_depth=16),
    "tiff_float32_5600.tif": lambda: tiff_bomb(5600, mode="F"),
    "tiff_float32_6300.tif": lambda: tiff_bomb(mode="F"),
    "tiff_int32_6300.tif": lambda: tiff_bomb(mode="I"),
    "tiff_int16_6300.tif": lambda: tiff_bomb(mode="I;16"),
    "tiff_rgba_6300.tif": lambda: tiff_bomb(mode="RGBA"),
    "gif_5000_frames.gif": gif_many_frames,
    "gif_growing_canvas.gif": gif_growing_canvas,
    "apng_3000_frames.png": apng_many_frames,
    "tiff_3000_pages.tif": tiff_many_pages,
}


def write_hostile_folder(folder: Path) -> list[str]:
    """Writes every hostile file into ``folder``; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, make in HOSTILE.items():
        (folder / name).write_bytes(make())
        names.append(name)
    for name, data in lying_types().items():
        (folder / name).write_bytes(data)
        names.append(name)
    return names
