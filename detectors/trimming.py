"""Finding the picture inside a frame: uniform borders (letterboxing) and screenshot chrome.

A copy of a listed photo often comes wrapped: letterboxed to a fixed aspect ratio, on a
coloured card, or as a phone screenshot with a status bar, app bars, margins and a
caption around it. Whole-image hashes of the wrapped copy are far from the photo's, so
list matching also hashes the picture found inside. Both boxes here are in the frame's
pixels as ``(x, y, width, height)``, or None when there is nothing to take away.

* ``border_box``: strips outer rows and columns that are one flat colour. Conservative:
  it only ever removes flat bars, so what remains shows everything the frame shows.
* ``content_box``: the picture inside screenshot chrome, a chat bubble or a card. The
  frame's background is what is flat (each pixel's 3x3 neighbourhood within a few levels),
  painted in a solid colour (a sky or a wall shades across its area, so it is not), and
  connected to the image's edge; the picture is the largest object left, provided it is a
  rectangle (it fills its box: a blob on a plain background is not a framed picture).
  Frames inside frames are peeled in turn (screenshot, then bubble), and a bubble's thin
  margin is stripped as bars. Text and icons of the chrome are small objects and go with
  the frame. It can still cut into a picture whose own flat edge meets a frame of the
  same colour (the night sky in a dark screenshot), so matching always tries the full
  frame too, and list entries keep the same views of their own image.

Both look at the frame's edges first and return at once when no side is flat (most
photos); otherwise they work on a reduced copy (long side ``ANALYSIS_SIDE`` or
``CONTENT_SIDE``).
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height

ANALYSIS_SIDE = 384
# A pixel within this many levels (0-255, any channel) of a reference colour counts as
# that colour: wide enough for JPEG noise on flat areas, narrow enough to tell a
# photo's smooth gradient from a bar within a few rows.
FLAT_TOLERANCE = 14
BORDER_FLAT_SHARE = 0.97  # a border row or column: this share of its pixels is flat
MARGIN_FLAT_SHARE = 0.85  # the same for the margin inside a bubble or card, which has rounded corners
MARGIN_MOST = 0.04  # such a margin is thin: a wider flat strip is part of the picture (a sky)
RECT_FILL = 0.9  # share of its box a picture fills (rounded corners miss a little)
CONTENT_SIDE = 512  # finer than ANALYSIS_SIDE: status-bar text and thin bubble margins must stay apart
FLAT_RANGE = 6  # a pixel is in a flat area when its 3x3 neighbourhood spans at most this (any channel)
SOLID_STD = 3.0  # a frame's flat region varies by at most this (standard deviation, levels)
MIN_REGION = 64  # flat regions smaller than this (pixels) are not checked for it
PEEL_INSET = 2  # pixels of a frame's outline skipped when looking inside it
FRAME_EDGE_FLAT = 0.5  # a frame is looked for only if some edge is at least this share one colour
MAX_PEELS = 3  # frames inside frames: screenshot, chat bubble, a card in the bubble
_KERNEL = np.ones((3, 3), np.uint8)
MIN_TRIM = 0.03  # boxes that remove less than this share of a side are ignored
MIN_SIDE_SHARE = 0.2  # a box narrower or lower than this share of the frame is ignored


def _reduced(rgb: np.ndarray, side: int = ANALYSIS_SIDE) -> tuple[np.ndarray, float]:
    """The frame with its long side at most ``side`` (int16 for signed differences) and the scale back."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale < 1.0:
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        small, scale = rgb, 1.0
    return small.astype(np.int16), scale


def _to_frame(box: Box, scale: float, shape: tuple[int, ...]) -> Box | None:
    """A box found on the reduced copy, in the frame's pixels; None if it trims too little or leaves too little."""
    h, w = shape[:2]
    x, y, bw, bh = box
    x0, y0 = int(np.ceil(x / scale)), int(np.ceil(y / scale))
    x1, y1 = min(w, int((x + bw) / scale)), min(h, int((y + bh) / scale))
    fw, fh = x1 - x0, y1 - y0
    if fw < MIN_SIDE_SHARE * w or fh < MIN_SIDE_SHARE * h or fw < 16 or fh < 16:
        return None
    if fw > (1 - MIN_TRIM) * w and fh > (1 - MIN_TRIM) * h:
        return None
    return x0, y0, fw, fh


def _flat_run(lines: np.ndarray, colour: np.ndarray, share: float) -> int:
    """How many leading lines (rows of an (n, length, 3) array) are flat in ``colour``.

    Looks at a few lines first and more only while they are all flat: most pictures have
    no bar, and the first line tells.
    """
    start, step = 0, 4
    while start < len(lines):
        block = lines[start : start + step]
        near = (np.abs(block - colour).max(axis=2) <= FLAT_TOLERANCE).mean(axis=1)
        bad = np.flatnonzero(near < share)
        if len(bad):
            return start + int(bad[0])
        start, step = start + len(block), step * 4
    return len(lines)


def _bars(small: np.ndarray, share: float, most: float = 1.0) -> Box | None:
    """The box inside the flat outer bars of a reduced int16 image (whole image if none); None if all flat.

    ``most``: a bar wider than this share of its side is not stripped (flat picture, not a margin).
    """
    h, w = small.shape[:2]

    def run(lines: np.ndarray) -> int:
        n = _flat_run(lines, np.median(lines[0], axis=0), share)
        return n if n >= len(lines) or n <= most * len(lines) else 0

    top, bottom = run(small), run(small[::-1])
    if top + bottom >= h:
        return None  # all flat: nothing inside
    cols = np.ascontiguousarray(small[top : h - bottom].transpose(1, 0, 2))
    left, right = run(cols), run(cols[::-1])
    if left + right >= w:
        return None
    # one more line each side: the edge of a bar is blurred by scaling and JPEG
    top, bottom, left, right = (v + 1 if v else 0 for v in (top, bottom, left, right))
    return left, top, max(1, w - left - right), max(1, h - top - bottom)


def _edges(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    """The outermost row or column of each side, as int16 (n, 3) arrays."""
    return tuple(line.astype(np.int16) for line in (rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]))


def _edge_flat_share(line: np.ndarray) -> float:
    """Share of an edge line within FLAT_TOLERANCE of its median colour."""
    return float((np.abs(line - np.median(line, axis=0)).max(axis=1) <= FLAT_TOLERANCE).mean())


def border_box(rgb: np.ndarray) -> Box | None:
    """The frame without its outer flat bars (letterbox, pillarbox, a plain card), or None."""
    if min(rgb.shape[:2]) < 8 or all(_edge_flat_share(e) < BORDER_FLAT_SHARE for e in _edges(rgb)):
        return None  # no side starts with a bar: most pictures, told from their edges alone
    small, scale = _reduced(rgb)
    if min(small.shape[:2]) < 8:
        return None
    box = _bars(small, BORDER_FLAT_SHARE)
    return None if box is None else _to_frame(box, scale, rgb.shape)


def _largest_object(small: np.ndarray) -> Box | None:
    """Bounding box of the largest object on a flat background touching the image's edge.

    Background: pixels in flat areas (3x3 range within FLAT_RANGE) connected to the edge.
    Everything else (a photo, with any flat area it encloses, or a text glyph) is an
    object; text and icons are small, the picture is the largest.
    """
    spread = cv2.dilate(small, _KERNEL) - cv2.erode(small, _KERNEL)
    flat = (spread.max(axis=2) <= FLAT_RANGE).astype(np.uint8)
    count, labels = cv2.connectedComponents(flat, connectivity=4)
    edge = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    edge_flat = np.concatenate((flat[0], flat[-1], flat[:, 0], flat[:, -1])).astype(bool)
    # A frame is painted in solid colours; a sky or a wall in a photo is smooth but shades
    # across its area, so it is not taken for a frame: per flat region, the spread of its
    # colour (standard deviation of each channel, from sums: one pass over the image).
    ids = labels.ravel()
    size = np.bincount(ids, minlength=count).astype(np.float64)
    spread = np.zeros(count)
    for channel in range(3):
        values = small[..., channel].ravel().astype(np.float64)
        mean = np.bincount(ids, values, count) / np.maximum(size, 1)
        var = np.bincount(ids, values * values, count) / np.maximum(size, 1) - mean * mean
        spread = np.maximum(spread, np.sqrt(np.maximum(var, 0)))
    is_background = np.zeros(count, bool)
    is_background[np.unique(edge[edge_flat])] = True
    is_background &= (size < MIN_REGION) | (spread <= SOLID_STD)
    background = is_background[labels]
    objects = (~background).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(objects, connectivity=8)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    # A picture is a rectangle: its box is the rows and columns it mostly fills (thin
    # attachments such as a shadow or a stray JPEG block stay out), and it fills that box.
    # A blob (cells on a plain background, a product on white) does not: then no frame.
    mask = labels[y : y + h, x : x + w] == best
    rows = np.flatnonzero(mask.mean(axis=1) >= 0.5)
    cols = np.flatnonzero(mask.mean(axis=0) >= 0.5)
    if not len(rows) or not len(cols):
        return None
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if float(mask.mean()) < RECT_FILL:
        return None
    x, y, w, h = x + int(cols[0]), y + int(rows[0]), mask.shape[1], mask.shape[0]
    return x, y, w, h


def content_box(rgb: np.ndarray) -> Box | None:
    """The picture inside screenshot chrome, a chat bubble, a card or bars, or None.

    Nested frames (a photo in a bubble in a screenshot) are peeled one at a time.
    """
    if min(rgb.shape[:2]) < 16 or max(_edge_flat_share(e) for e in _edges(rgb)) < FRAME_EDGE_FLAT:
        return None  # no side is mostly one colour: a picture to its edges, as most are
    small, scale = _reduced(rgb, CONTENT_SIDE)
    small = small.astype(np.uint8)
    h, w = small.shape[:2]
    if h < 16 or w < 16:
        return None
    x0, y0, bw, bh = 0, 0, w, h
    for peel in range(MAX_PEELS):
        # inside a frame found before, skip its antialiased outline: it would tie the
        # picture to everything along the frame's edge
        inset = PEEL_INSET if peel else 0
        if bw <= 2 * inset + 8 or bh <= 2 * inset + 8:
            break
        found = _largest_object(small[y0 + inset : y0 + bh - inset, x0 + inset : x0 + bw - inset])
        if found is None or found[2] < 8 or found[3] < 8:
            break
        fx, fy, fw, fh = found
        if fw >= bw - 2 * inset - 2 and fh >= bh - 2 * inset - 2:
            break  # nothing more to peel
        x0, y0, bw, bh = x0 + inset + fx, y0 + inset + fy, fw, fh
    # a bubble's or card's margin is too thin to peel as background: strip it as bars
    # (its rounded corners keep it from being perfectly flat)
    # (again for each colour: the chat's background, then the bubble's)
    for _ in range(MAX_PEELS):
        inner = _bars(small[y0 : y0 + bh, x0 : x0 + bw].astype(np.int16), MARGIN_FLAT_SHARE, MARGIN_MOST)
        if inner is None or (inner[2], inner[3]) == (bw, bh) or min(inner[2], inner[3]) < 8:
            break
        x0, y0, bw, bh = x0 + inner[0], y0 + inner[1], inner[2], inner[3]
    if (bw, bh) == (w, h):
        return None
    return _to_frame((x0, y0, bw, bh), scale, rgb.shape)


def crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])
