"""Short videos (MP4, MOV, WebM, Matroska), decoded with PyAV from bytes in memory.

The video is demuxed once to learn every frame's timestamp and the keyframes, then decoded
from the keyframe before each sampled frame; when that would cost more than
``guards.MAX_DECODED_PIXELS`` the keyframes before the sampled frames are taken instead (see
``_plan_samples``). The demuxer is chosen from the sniffed signature, never probed.
Transparency (VP8/VP9 video stickers) is shown over white, as for images.
"""

from __future__ import annotations

import io
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

import av
import av.error
import numpy as np
from av.video.codeccontext import VideoCodecContext

import detectors.media.guards as guards
from detectors.errors import (
    CorruptMedia,
    TooManyFrames,
    UnsupportedFormat,
)
from detectors.media.frames import DecodedMedia, Frame, frozen, reduction, sample_indices
from detectors.media.guards import MAX_TOTAL_FRAMES, budget_for, check_decoded, check_pixels
from detectors.settings import MediaLimits


def video_kind(data: bytes) -> str | None:
    """The container Vigil reports, from the first bytes; None if not a video it reads."""
    if data[4:8] == b"ftyp":
        return "MOV" if data[8:12] == b"qt  " else "MP4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM, named by its DocType
        return "WEBM" if b"webm" in data[:64] else "MKV"
    return None


def open_video(data: bytes, limits: MediaLimits) -> av.container.InputContainer:
    # The demuxer is forced from the sniffed signature, so FFmpeg never probes for
    # formats that read other files or URLs (HLS playlists, concat lists). The
    # decoders' own max_pixels guard covers frames the header did not announce.
    demuxer = "mp4" if data[4:8] == b"ftyp" else "matroska"
    return av.open(io.BytesIO(data), mode="r", format=demuxer, options={"max_pixels": str(limits.max_pixels)})


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise UnsupportedFormat("the file has no video track (audio only?)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise UnsupportedFormat(f"no decoder for the video codec of this file ({stream.codec_tag or 'unknown'})")
    return stream


def decode_video(data: bytes, kind: str, limits: MediaLimits, min_side: int | None) -> DecodedMedia:
    with open_video(data, limits) as container:
        stream = video_stream(container)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width or height:
            check_pixels(width, height, limits)
        stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
        stamps, keyframes = _frame_stamps(container, stream, width, height)
        targets = _plan_samples(stamps, keyframes, max(1, limits.max_frames), width, height)
        # a decoded frame, and its RGB(A) conversion: about 4 bytes a pixel (size unknown: the cap)
        held = check_decoded(width, height, "video", 4 * width * height, limits) if width and height else None
        with budget_for(limits).hold(held if held is not None else limits.max_decoded_bytes):
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
    affordable = max(1, guards.MAX_DECODED_PIXELS // (width * height))
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
    budget = 2 * guards.MAX_DECODED_PIXELS
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
                affordable = guards.MAX_DECODED_PIXELS // max(1, frame.width * frame.height)
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
        check_pixels(found.width, found.height, limits)
        index = _index_of(stamps, found.pts) if found.pts is not None else len(picked)
        turns = _quarter_turns(found)
        if not picked:
            shown = (found.height, found.width) if turns % 2 else (found.width, found.height)
        factor = reduction(found.width, found.height, min_side)
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
    return frozen(rgb)
