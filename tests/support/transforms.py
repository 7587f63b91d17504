"""Edits that people make to images before re-posting them, for tests and benches.

Everything is deterministic: each edit is a fixed function of its input (random choices
come from a seed fixed in the edit), so a test or a benchmark sees the same pixels on
every run. Images are RGB uint8 arrays (H, W, 3); nothing touches the disk.

* ``variants()``: the transform families of the matching benchmarks, each a list of
  named edits: ``jpeg``, ``resize``, ``mirror``, ``rotate90``, ``small_rotation``,
  ``crop_small`` (5-10 %), ``crop_large`` (20-30 %), ``border`` (a 20 % border or a
  letterbox), ``screenshot`` (the picture scaled inside phone or desktop chrome),
  ``overlay`` (caption bars, text, emoji-like blocks), ``colour``, ``webp`` and
  ``undress`` (see ``undress_like``).
* ``undress_like``: replaces a torso-shaped or central 25-50 % of the picture with other
  content (another photo's texture, a smooth skin-like fill, or noise), then
  recompresses and resizes it as a chat app would. This is the geometry of the AI
  "undress" edits: face, hair, pose and background kept, the body replaced.
* ``photos()``, ``filler_textures()``, ``hard_negatives()``, ``stereo_pair()``: the
  pictures to run them on: benign photos (tests/images and scikit-image's bundled
  samples), textures reserved as fillers, flat and repetitive images, and two views of
  one scene taken from different places.

"Crop of p" removes p of the width and p of the height (so a 10 % crop keeps 81 % of
the area), split between the two sides by the edit's seed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.support.detector_images import face_mosaic, file_images

Edit = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Variant:
    family: str
    name: str
    apply: Edit

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = self.apply(np.ascontiguousarray(rgb))
        return np.ascontiguousarray(out, dtype=np.uint8)


# --- codecs and geometry ---------------------------------------------------------


def encode_decode(rgb: np.ndarray, fmt: str = "JPEG", quality: int = 80) -> np.ndarray:
    """The image after a round trip through a lossy codec, in memory."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    return encode_decode(rgb, "JPEG", quality)


def webp(rgb: np.ndarray, quality: int) -> np.ndarray:
    return encode_decode(rgb, "WEBP", quality)


def resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interp)


def resize_long_side(rgb: np.ndarray, side: int) -> np.ndarray:
    return resize(rgb, side / max(rgb.shape[:2]))


def chat_recompress(rgb: np.ndarray, side: int = 1280, quality: int = 80) -> np.ndarray:
    """What a chat app sends on: long side scaled to ``side``, then JPEG."""
    return jpeg(resize_long_side(rgb, side), quality)


def mirror(rgb: np.ndarray) -> np.ndarray:
    return rgb[:, ::-1]


def rotate90(rgb: np.ndarray, quarter_turns: int) -> np.ndarray:
    return np.rot90(rgb, quarter_turns)


def rotate_small(rgb: np.ndarray, degrees: float, *, trim: bool) -> np.ndarray:
    """Rotated by a few degrees; ``trim`` crops to the largest upright box without corners."""
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb).rotate(degrees, resample=Image.Resampling.BICUBIC, expand=not trim)
    out = np.asarray(im)
    if trim:
        a = np.radians(abs(degrees))
        # the axis-aligned box of this aspect that fits inside the rotated frame
        k = 1.0 / (np.cos(a) + np.sin(a) * max(w / h, h / w))
        cw, ch = int(w * k), int(h * k)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        out = out[y0 : y0 + ch, x0 : x0 + cw]
    return out


def crop(rgb: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Removes ``fraction`` of the width and of the height, split between sides at random."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    cut_w, cut_h = round(w * fraction), round(h * fraction)
    left, top = round(cut_w * rng.uniform()), round(cut_h * rng.uniform())
    return rgb[top : h - (cut_h - top), left : w - (cut_w - left)]


def crop_side(rgb: np.ndarray, fraction: float, side: str) -> np.ndarray:
    """Removes ``fraction`` of the picture from one side only ("left", "right", "top", "bottom")."""
    h, w = rgb.shape[:2]
    cut_w, cut_h = round(w * fraction), round(h * fraction)
    if side == "left":
        return rgb[:, cut_w:]
    if side == "right":
        return rgb[:, : w - cut_w]
    if side == "top":
        return rgb[cut_h:]
    if side == "bottom":
        return rgb[: h - cut_h]
    raise ValueError(f"unknown side {side!r}; one of left, right, top, bottom")


def border(rgb: np.ndarray, fraction: float, colour: tuple[int, int, int]) -> np.ndarray:
    """A uniform border ``fraction`` of the size wide on every side."""
    h, w = rgb.shape[:2]
    py, px = round(h * fraction), round(w * fraction)
    return cv2.copyMakeBorder(rgb, py, py, px, px, cv2.BORDER_CONSTANT, value=colour)


def letterbox(rgb: np.ndarray, aspect: float, colour: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Bars added to reach ``aspect`` (width / height), as a video or story frame."""
    h, w = rgb.shape[:2]
    if w / h < aspect:
        total = round(h * aspect) - w
        return cv2.copyMakeBorder(rgb, 0, 0, total // 2, total - total // 2, cv2.BORDER_CONSTANT, value=colour)
    total = round(w / aspect) - h
    return cv2.copyMakeBorder(rgb, total // 2, total - total // 2, 0, 0, cv2.BORDER_CONSTANT, value=colour)


def colour_shift(
    rgb: np.ndarray,
    *,
    brightness: float = 0.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    gamma: float = 1.0,
    hue: int = 0,
) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    x = np.clip((x - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    out = (x * 255).round().astype(np.uint8)
    if saturation != 1.0 or hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + hue) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return out


# --- drawing ---------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, size))


def caption_bars(rgb: np.ndarray, top: str, bottom: str) -> np.ndarray:
    """Meme-style white bars above and below the picture, with black text."""
    h, w = rgb.shape[:2]
    bar = max(24, h // 6)
    im = Image.new("RGB", (w, h + 2 * bar), "white")
    im.paste(Image.fromarray(rgb), (0, bar))
    draw = ImageDraw.Draw(im)
    font = _font(bar * 2 // 3)
    draw.text((w // 20, bar // 6), top, fill="black", font=font)
    draw.text((w // 20, h + bar + bar // 6), bottom, fill="black", font=font)
    return np.asarray(im)


def text_overlay(rgb: np.ndarray, text: str, seed: int) -> np.ndarray:
    """Outlined white text over the picture (lower third), as a sticker or caption."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    size = max(12, h // 10)
    font = _font(size)
    y = int(h * rng.uniform(0.62, 0.8))
    draw.text((w // 12, y), text, fill="white", font=font, stroke_width=max(1, size // 12), stroke_fill="black")
    return np.asarray(im)


def emoji_overlay(rgb: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Bright discs and rounded blocks pasted over the picture, as emoji or stickers."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    side = max(8, min(h, w) // 7)
    palette = [(255, 204, 0), (255, 80, 80), (80, 200, 255), (120, 220, 90), (250, 140, 200)]
    for i in range(count):
        x, y = int(rng.uniform(0, w - side)), int(rng.uniform(0, h - side))
        colour = palette[i % len(palette)]
        if i % 2:
            draw.ellipse((x, y, x + side, y + side), fill=colour, outline=(60, 40, 0), width=2)
            eye = side // 6
            draw.ellipse((x + side // 4, y + side // 3, x + side // 4 + eye, y + side // 3 + eye), fill="black")
            draw.ellipse((x + side * 3 // 5, y + side // 3, x + side * 3 // 5 + eye, y + side // 3 + eye), fill="black")
        else:
            draw.rounded_rectangle((x, y, x + side, y + side), radius=side // 5, fill=colour)
    return np.asarray(im)


def screenshot(rgb: np.ndarray, *, kind: str = "phone", dark: bool = False) -> np.ndarray:
    """The picture as seen in a screenshot of a chat app: status bar, title bar, margins,
    message bubbles and an input box around it, the picture scaled to fit."""
    bg, fg, chrome = (
        ((18, 18, 22), (235, 235, 235), (40, 40, 48)) if dark else ((245, 245, 245), (20, 20, 20), (0, 120, 200))
    )
    if kind == "phone":
        cw, ch, margin, status, title, inputh = 1080, 2340, 36, 72, 150, 140
    else:  # desktop window
        cw, ch, margin, status, title, inputh = 1920, 1080, 340, 30, 70, 90
    im = Image.new("RGB", (cw, ch), bg)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, cw, status), fill=(0, 0, 0) if kind == "phone" else (200, 200, 200))
    draw.text((30, 8), "9:41", fill="white" if kind == "phone" else "black", font=_font(status * 2 // 3))
    for i in range(3):  # signal, wifi and battery icons
        draw.rectangle((cw - 60 - 50 * i, status // 4, cw - 30 - 50 * i, status * 3 // 4), fill=(220, 220, 220))
    draw.rectangle((0, status, cw, status + title), fill=chrome)
    draw.ellipse((20, status + 20, 20 + title - 40, status + title - 20), fill=(250, 180, 90))
    draw.text((title + 10, status + title // 4), "Family group", fill="white", font=_font(title // 3))
    draw.rounded_rectangle(
        (20, ch - inputh + 15, cw - 20, ch - 15), radius=inputh // 3, fill=(255, 255, 255) if not dark else (50, 50, 60)
    )
    draw.text((60, ch - inputh + inputh // 3), "Message", fill=(150, 150, 150), font=_font(inputh // 4))
    top, bottom = status + title + 40, ch - inputh - 40
    draw.rounded_rectangle(
        (margin - 10, top, cw // 2, top + 80), radius=20, fill=(225, 240, 220) if not dark else (40, 60, 45)
    )
    draw.text((margin + 10, top + 20), "look at this!", fill=fg, font=_font(30))
    top += 110
    box_w, box_h = cw - 2 * margin, bottom - top - 120
    h, w = rgb.shape[:2]
    scale = min(box_w / w, box_h / h)
    pic = Image.fromarray(resize(rgb, scale))
    x = margin if kind == "phone" else (cw - pic.width) // 2
    im.paste(pic, (x, top))
    draw.text((x, top + pic.height + 20), "12:03", fill=(120, 120, 120), font=_font(26))
    return np.asarray(im)


# --- undress-like edits ----------------------------------------------------------

REGIONS = ("torso", "trunk", "centre", "blob")
FILLS = ("texture", "smooth", "noise")


def region_mask(h: int, w: int, region: str, share: float) -> np.ndarray:
    """A float mask in 0..1 covering ``share`` of the frame: a torso-like ellipse
    (``torso``), a shoulders-to-hips polygon (``trunk``), both in the lower centre, or a
    central rectangle (``centre``). Scaled by bisection to the share after clipping."""

    def draw(k: float) -> np.ndarray:
        mask = np.zeros((h, w), np.uint8)
        if region == "torso":
            centre = (round(w * 0.5), round(h * (1.0 - 0.42 * k)))
            axes = (max(1, round(w * 0.36 * k)), max(1, round(h * 0.5 * k)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
        elif region == "trunk":
            top = h * (1.0 - 0.95 * k)
            pts = np.array(
                [
                    (w * (0.5 - 0.42 * k), top + h * 0.08 * k),  # shoulders
                    (w * (0.5 + 0.42 * k), top + h * 0.08 * k),
                    (w * (0.5 + 0.30 * k), h * 1.0),  # hips, running off the bottom
                    (w * (0.5 - 0.30 * k), h * 1.0),
                ],
                np.int32,
            )
            cv2.fillPoly(mask, [pts], 1)
            cv2.ellipse(
                mask,
                (round(w * 0.5), round(top + h * 0.08 * k)),
                (round(w * 0.42 * k), round(h * 0.08 * k)),
                0,
                180,
                360,
                1,
                -1,
            )
        elif region == "blob":  # a rounded irregular shape: a body in an unusual pose, a pasted object
            for cx, cy, ax, ay in (
                (0.5, 0.55, 0.3, 0.28),
                (0.38, 0.4, 0.16, 0.2),
                (0.63, 0.68, 0.18, 0.16),
                (0.55, 0.3, 0.12, 0.14),
            ):
                axes = (max(1, round(w * ax * k)), max(1, round(h * ay * k)))
                cv2.ellipse(mask, (round(w * cx), round(h * cy)), axes, 30, 0, 360, 1, -1)
        elif region == "centre":
            rw, rh = w * 0.5 * k, h * 0.5 * k
            cv2.rectangle(mask, (round(w / 2 - rw), round(h / 2 - rh)), (round(w / 2 + rw), round(h / 2 + rh)), 1, -1)
        else:
            raise ValueError(f"unknown region {region!r}; one of {REGIONS}")
        return mask

    lo, hi = 0.0, 2.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if draw(mid).mean() < share:
            lo = mid
        else:
            hi = mid
    return draw(hi).astype(np.float32)


def _fill(h: int, w: int, fill: str, texture: np.ndarray | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if fill == "texture":
        if texture is None:
            raise ValueError("fill='texture' needs a texture image")
        th, tw = texture.shape[:2]
        reps = (-(-h // th), -(-w // tw), 1)
        return np.tile(texture, reps)[:h, :w]
    if fill == "smooth":  # a skin-toned gradient with soft shading
        base = np.array(rng.choice([(224, 172, 140), (198, 134, 100), (241, 194, 167), (141, 85, 60)]), np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        shade = 0.85 + 0.15 * np.cos((xx / w - 0.5) * np.pi) * np.cos((yy / h - 0.5) * np.pi * 0.7)
        return np.clip(base[None, None] * shade[..., None], 0, 255).astype(np.uint8)
    if fill == "noise":
        noise = rng.normal(128, 50, (max(1, h // 4), max(1, w // 4), 3)).clip(0, 255).astype(np.uint8)
        return cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    raise ValueError(f"unknown fill {fill!r}; one of {FILLS}")


def undress_like(
    rgb: np.ndarray,
    *,
    region: str = "torso",
    share: float = 0.4,
    fill: str = "smooth",
    texture: np.ndarray | None = None,
    side: int = 1280,
    quality: int = 80,
    seed: int = 0,
) -> np.ndarray:
    """``share`` of the picture (a torso-shaped or central region) replaced with other
    content, blended over a few pixels as inpainting does, then scaled to long side
    ``side`` and saved as JPEG ``quality``, as a chat app would."""
    h, w = rgb.shape[:2]
    mask = region_mask(h, w, region, share)
    feather = max(1, min(h, w) // 100) * 2 + 1
    mask = cv2.GaussianBlur(mask, (feather, feather), 0)[..., None]
    content = _fill(h, w, fill, texture, seed).astype(np.float32)
    out = rgb.astype(np.float32) * (1 - mask) + content * mask
    return chat_recompress(out.round().astype(np.uint8), side, quality)


def blur_replace(
    rgb: np.ndarray,
    *,
    region: str = "centre",
    share: float = 0.4,
    blur: float = 0.03,
    scale: float = 0.6,
    quality: int = 75,
) -> np.ndarray:
    """``share`` of the picture (a central or torso-shaped region) replaced by a heavy
    blur of itself (Gaussian, sigma ``blur`` of the long side), then scaled by ``scale``
    and saved as JPEG ``quality``: an undress edit whose new body is smooth, on a large
    original that a chat app shrinks. The ring around the region is the photo unchanged."""
    h, w = rgb.shape[:2]
    mask = region_mask(h, w, region, share)
    feather = max(1, min(h, w) // 100) * 2 + 1
    mask = cv2.GaussianBlur(mask, (feather, feather), 0)[..., None]
    # blurred on a reduced copy (the same look; a sigma of 100 pixels at full size is slow)
    k = max(1, round(blur * max(h, w) / 8))
    small = cv2.resize(rgb, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, blur * max(h, w) / k))
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    out = rgb.astype(np.float32) * (1 - mask) + smooth * mask
    return jpeg(resize(out.round().astype(np.uint8), scale), quality)


# --- the families ----------------------------------------------------------------


def _v(family: str, name: str, edit: Edit) -> Variant:
    return Variant(family, name, edit)


def variants(*, fillers: tuple[np.ndarray, ...] | None = None) -> dict[str, list[Variant]]:
    """Every transform family, each a list of named deterministic edits."""
    textures = fillers if fillers is not None else filler_textures()
    fam: dict[str, list[Variant]] = {
        "jpeg": [_v("jpeg", f"jpeg{q}", lambda x, q=q: jpeg(x, q)) for q in (30, 50, 75, 95)],
        "resize": [_v("resize", f"resize{f}", lambda x, f=f: resize(x, f)) for f in (0.25, 0.5, 1.5, 2.0)],
        "mirror": [
            _v("mirror", "mirror", mirror),
            _v("mirror", "mirror_jpeg70", lambda x: jpeg(mirror(x), 70)),
        ],
        "rotate90": [_v("rotate90", f"rot{90 * k}", lambda x, k=k: rotate90(x, k)) for k in (1, 2, 3)],
        "small_rotation": [
            _v("small_rotation", "rot2_trim", lambda x: rotate_small(x, 2, trim=True)),
            _v("small_rotation", "rot3.5_expand", lambda x: rotate_small(x, -3.5, trim=False)),
            _v("small_rotation", "rot5_trim", lambda x: rotate_small(x, 5, trim=True)),
        ],
        "crop_small": [
            _v("crop_small", f"crop{round(p * 100)}_{s}", lambda x, p=p, s=s: crop(x, p, s))
            for p, s in ((0.05, 1), (0.075, 2), (0.10, 3), (0.10, 4))
        ],
        "crop_large": [
            _v("crop_large", f"crop{round(p * 100)}_{s}", lambda x, p=p, s=s: crop(x, p, s))
            for p, s in ((0.20, 5), (0.25, 6), (0.30, 7))
        ],
        "border": [
            _v("border", "border20_white", lambda x: border(x, 0.2, (255, 255, 255))),
            _v("border", "border20_black", lambda x: border(x, 0.2, (0, 0, 0))),
            _v("border", "letterbox_16x9", lambda x: letterbox(x, 16 / 9)),
            _v("border", "letterbox_9x16", lambda x: letterbox(x, 9 / 16)),
        ],
        "screenshot": [
            _v("screenshot", "phone", lambda x: chat_recompress(screenshot(x, kind="phone"), 1280, 85)),
            _v("screenshot", "phone_dark", lambda x: chat_recompress(screenshot(x, kind="phone", dark=True), 1280, 85)),
            _v("screenshot", "desktop", lambda x: chat_recompress(screenshot(x, kind="desktop"), 1280, 85)),
        ],
        "overlay": [
            _v("overlay", "caption_bars", lambda x: caption_bars(x, "WHEN YOU SEE IT", "no way")),
            _v("overlay", "text", lambda x: text_overlay(x, "look who it is lol", 11)),
            _v("overlay", "emoji", lambda x: emoji_overlay(x, 4, 12)),
        ],
        "colour": [
            _v("colour", "brighter", lambda x: colour_shift(x, brightness=0.15)),
            _v("colour", "darker_contrast", lambda x: colour_shift(x, brightness=-0.1, contrast=1.3)),
            _v("colour", "desaturated", lambda x: colour_shift(x, saturation=0.2)),
            _v("colour", "warm_gamma", lambda x: colour_shift(x, gamma=0.8, hue=8)),
        ],
        "webp": [_v("webp", f"webp{q}", lambda x, q=q: webp(x, q)) for q in (50, 80)],
    }
    fam.update(evasion_variants())
    undress = []
    for i, (region, share, fill) in enumerate(
        (
            ("torso", 0.25, "smooth"),
            ("torso", 0.4, "texture"),
            ("torso", 0.5, "noise"),
            ("trunk", 0.3, "texture"),
            ("trunk", 0.45, "smooth"),
            ("centre", 0.25, "noise"),
            ("centre", 0.35, "texture"),
            ("centre", 0.5, "smooth"),
        )
    ):
        side, quality = (1280, 80) if i % 2 else (960, 72 + i * 2)
        tex = textures[i % len(textures)] if fill == "texture" else None
        undress.append(
            _v(
                "undress",
                f"{region}{round(share * 100)}_{fill}",
                lambda x, r=region, s=share, f=fill, t=tex, sd=side, q=quality, seed=i: undress_like(
                    x, region=r, share=s, fill=f, texture=t, side=sd, quality=q, seed=seed
                ),
            )
        )
    fam["undress"] = undress
    return fam


# Families of issue 15: evasions that whole-image hashes and the first local matcher
# missed on photos other than the bench's. Each is a family of its own so benches report it.
EVASION_FAMILIES = ("rotation_3_5", "crop_one_side", "screenshot_jpeg", "hue", "mirror_crop_jpeg")


def evasion_variants() -> dict[str, list[Variant]]:
    """Small rotations of 3-5 degrees either way (trimmed or expanded), crops of 5-10 %
    from one side only, phone screenshots recompressed at JPEG 70, hue shifts, and a
    mirror image cropped by 5 % and saved at JPEG 60."""
    return {
        "rotation_3_5": [
            _v("rotation_3_5", f"rot{d}_{'trim' if t else 'expand'}", lambda x, d=d, t=t: rotate_small(x, d, trim=t))
            for d, t in ((3, True), (-4, True), (4.5, False), (-5, True), (5, False))
        ],
        "crop_one_side": [
            _v("crop_one_side", f"crop{round(p * 100)}_{side}", lambda x, p=p, side=side: crop_side(x, p, side))
            for p, side in ((0.05, "left"), (0.10, "right"), (0.075, "top"), (0.10, "bottom"))
        ],
        "screenshot_jpeg": [
            _v(
                "screenshot_jpeg",
                "phone_jpeg70",
                lambda x: jpeg(resize_long_side(screenshot(x, kind="phone"), 1280), 70),
            ),
            _v(
                "screenshot_jpeg",
                "phone_dark_jpeg70",
                lambda x: jpeg(resize_long_side(screenshot(x, kind="phone", dark=True), 1280), 70),
            ),
            _v(
                "screenshot_jpeg",
                "phone_small_jpeg70",
                lambda x: jpeg(resize_long_side(screenshot(x, kind="phone"), 960), 70),
            ),
        ],
        "hue": [_v("hue", f"hue{h}", lambda x, h=h: colour_shift(x, hue=h)) for h in (15, 45, 90, 150)],
        "mirror_crop_jpeg": [
            _v("mirror_crop_jpeg", f"mirror_crop5_{s}_jpeg60", lambda x, s=s: jpeg(crop(mirror(x), 0.05, s), 60))
            for s in (21, 22)
        ],
    }


def all_variants(**kw: object) -> list[Variant]:
    return [v for vs in variants(**kw).values() for v in vs]  # type: ignore[arg-type]


# --- pictures ---------------------------------------------------------------------


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def _tiles(rgb: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    return [
        np.ascontiguousarray(rgb[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols])
        for r in range(rows)
        for c in range(cols)
    ]


@lru_cache(maxsize=1)
def _photos() -> tuple[tuple[str, np.ndarray], ...]:
    from skimage import data

    items: dict[str, np.ndarray] = {}
    for name, rgb in file_images().items():  # astronaut, chelsea, coffee, rocket
        items[name.removeprefix("file:").rsplit(".", 1)[0]] = rgb
    left, _right, _disp = data.stereo_motorcycle()
    items["camera"] = _rgb(data.camera())
    items["motorcycle"] = left
    items["coins"] = _rgb(data.coins())
    items["moon"] = _rgb(data.moon())
    items["clock"] = _rgb(data.clock())
    items["cell"] = _rgb(data.cell())
    items["faces"] = face_mosaic(3, 4, 110, start=60)
    # tiles of large photos share no pixels with each other: distinct photos of a kind
    for i, tile in enumerate(_tiles(data.retina(), 2, 2)):
        items[f"retina_{i}"] = tile
    for i, tile in enumerate(_tiles(data.hubble_deep_field(), 1, 2)):
        items[f"hubble_{i}"] = tile
    return tuple(items.items())


# Photos of little texture: a motion-blurred clock, microscopy, a retina, a star field.
# Local features have few places to hold on to there; benches report them apart.
SPARSE_PHOTOS = ("clock", "cell", "retina_0", "retina_1", "retina_2", "retina_3", "hubble_0", "hubble_1")


def photos() -> dict[str, np.ndarray]:
    """Distinct benign photos by name (none shares pixels with another): people, an
    animal, objects and places, then the sparse ones (``SPARSE_PHOTOS``)."""
    return {k: v.copy() for k, v in _photos()}


@lru_cache(maxsize=1)
def _fillers() -> tuple[np.ndarray, ...]:
    from skimage import data

    ihc = data.immunohistochemistry()
    skinlike = colour_shift(ihc, saturation=0.4, hue=170, brightness=0.1)
    return (
        np.ascontiguousarray(ihc[:256, :256]),
        np.ascontiguousarray(skinlike[256:, 256:]),
        np.ascontiguousarray(_rgb(data.lfw_subset()[150] * 255).astype(np.uint8)),
    )


def filler_textures() -> tuple[np.ndarray, ...]:
    """Content pasted by undress-like edits, from pictures that are not among ``photos()``
    (so an edit never legitimately matches another photo of the set)."""
    return tuple(f.copy() for f in _fillers())


def _checkerboard(h: int, w: int, cell: int, a: int = 0, b: int = 255) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return _rgb(np.where(((yy // cell) + (xx // cell)) % 2 == 0, a, b).astype(np.uint8))


def _text_page(lines: list[str], seed: int, size: tuple[int, int] = (900, 1200)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    font = _font(26)
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
    ]
    y = 40
    while y < size[1] - 60:
        line = " ".join(rng.choice(words, size=int(rng.integers(6, 11))))
        draw.text((50, y), lines[y % len(lines)] if lines and y < 80 else line, fill="black", font=font)
        y += 40
    return np.asarray(im)


@lru_cache(maxsize=1)
def _hard_negatives() -> tuple[tuple[str, np.ndarray], ...]:
    from skimage import data

    rng = np.random.default_rng(2024)
    yy, xx = np.mgrid[0:600, 0:800].astype(np.float32)
    items: dict[str, np.ndarray] = {
        "gradient_h": _rgb((xx / 800 * 255).astype(np.uint8)),
        "gradient_colour": np.dstack([(xx / 800 * 255), (yy / 600 * 255), np.full_like(xx, 90)]).astype(np.uint8),
        "radial": _rgb((255 * np.clip(1 - np.hypot(xx - 400, yy - 300) / 500, 0, 1)).astype(np.uint8)),
        "solid_noise": np.clip(
            np.full((600, 800, 3), (70, 130, 180), np.float32) + rng.normal(0, 6, (600, 800, 3)), 0, 255
        ).astype(np.uint8),
        "grey_noise": np.clip(rng.normal(128, 40, (480, 640, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2),
        "brick": _rgb(data.brick()),
        "grass": _rgb(data.grass()),
        "gravel": _rgb(data.gravel()),
        "checker_32": _checkerboard(512, 512, 32),
        "checker_12": _checkerboard(600, 800, 12, 40, 220),
        "chessboard": _rgb(cv2.imread(str(_skimage_file("chessboard_GRAY.png")), cv2.IMREAD_GRAYSCALE)),
        "stripes": _rgb(((np.sin(xx / 6) > 0) * 255).astype(np.uint8)),
        "text": _rgb(data.text()),
        "page": _rgb(data.page()),
        "text_page_1": _text_page([], 1),
        "text_page_2": _text_page([], 2),
        "colorwheel": np.ascontiguousarray(data.colorwheel()),
        "blobs": _rgb(data.binary_blobs(length=512, rng=3)),
    }
    return tuple(items.items())


def _skimage_file(name: str):
    from pathlib import Path

    import skimage.data

    return Path(skimage.data.__file__).parent / name


def hard_negatives() -> dict[str, np.ndarray]:
    """Flat and repetitive images (gradients, solid colours with noise, brick, grass,
    gravel, checkerboards, stripes, text pages): none may match another or any photo."""
    return {k: v.copy() for k, v in _hard_negatives()}


def stereo_pair() -> tuple[np.ndarray, np.ndarray]:
    """The same scene photographed from two places (scikit-image's motorcycle pair):
    shared content but no shared pixels. Vigil must NOT trace one to the other."""
    from skimage import data

    left, right, _disp = data.stereo_motorcycle()
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def panorama_thirds(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left and right thirds of a wide picture: one place, no shared pixels."""
    w = rgb.shape[1]
    return np.ascontiguousarray(rgb[:, : w // 3]), np.ascontiguousarray(rgb[:, 2 * w // 3 :])
