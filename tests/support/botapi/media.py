"""Images and videos, for photo sizes and thumbnails: sizes, scaled JPEGs, a video's first frame."""

from __future__ import annotations

import io
from collections.abc import Iterable

# --- images and videos (for photo sizes and thumbnails) -------------------------------------


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # not an image Pillow can read: the caller falls back
        return None


def _scaled_jpegs(data: bytes, sides: Iterable[int]) -> list[tuple[bytes, int, int]]:
    """Downscaled JPEG copies (largest side = each of ``sides``), smallest first."""
    from PIL import Image, ImageOps

    results: list[tuple[bytes, int, int]] = []
    if not sides:
        return results
    try:
        with Image.open(io.BytesIO(data)) as src:
            if src.width * src.height > 50_000_000:  # keep tests fast with huge images
                return []
            img = ImageOps.exif_transpose(src.convert("RGB"))
    except Exception:
        return []
    for side in sorted(sides, reverse=True):
        img = img.copy()
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        results.append((buf.getvalue(), img.width, img.height))
    return results[::-1]


def _probe_video(data: bytes) -> tuple[int, int, int, bytes | None] | None:
    """(width, height, whole seconds, first frame as PNG) of a video or GIF, or None."""
    try:
        import av

        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            seconds = int(container.duration / 1_000_000) if container.duration else 0
            frame = next(container.decode(video=0)).to_image()
            buf = io.BytesIO()
            frame.save(buf, "PNG")
            return width, height, seconds, buf.getvalue()
    except Exception:  # not a video PyAV can read
        pass
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            frames = getattr(img, "n_frames", 1)
            total_ms = 0
            for k in range(frames):
                img.seek(k)
                total_ms += img.info.get("duration", 0) or 0
            img.seek(0)
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "PNG")
            return img.width, img.height, total_ms // 1000, buf.getvalue()
    except Exception:
        return None
