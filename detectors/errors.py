"""One error hierarchy for all of Vigil, and the errors of the detectors library.

Every error Vigil raises on purpose derives from ``VigilError``; its message says
what is wrong and how to fix it. This module holds the base and what ``detectors``
itself raises (bad media, models, hashes, fingerprints, settings); the application's
own errors (its config file, alerts, the store, platforms) are in ``bot/errors.py``
and ``bot/platforms/errors.py``, which subclass these; ``detectors`` never imports
``bot``.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""


# --- input media -----------------------------------------------------------


class MediaError(VigilError):
    """An image or video that Vigil refuses or cannot read."""

    #: short machine-readable reason, used in logs, metrics and alerts
    reason: str = "media"


class EmptyMedia(MediaError):
    reason = "empty"

    def __init__(self) -> None:
        super().__init__("the file is empty (0 bytes): nothing to check")


class TooManyBytes(MediaError):
    """A file larger than Vigil accepts: refused before it is read, or while it is downloaded.

    The one error for a file over a byte limit, whoever finds it: the decoder, or a platform
    adapter before or during the download (``fix`` then says what the platform allows)."""

    reason = "too_large"

    def __init__(
        self, size: int, limit: int, fix: str = "raise [detectors.limits] max_bytes to accept larger files"
    ) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"the file has {size} bytes, over the limit of {limit} bytes ({fix})")


class TooManyPixels(MediaError):
    reason = "too_many_pixels"

    def __init__(self, width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            f"the image declares {width}x{height} = {width * height} pixels, over the "
            f"limit of {limit} (refused before decoding; raise [detectors.limits] "
            f"max_pixels to accept larger images)"
        )


class TooManyDecodedBytes(TooManyPixels):
    """The picture would take more memory once decoded than Vigil allows (deep colour, many
    channels), however few pixels it has; refused before decoding."""

    def __init__(self, width: int, height: int, mode: str, decoded: int, limit: int) -> None:
        self.width, self.height, self.limit, self.decoded, self.mode = width, height, limit, decoded, mode
        MediaError.__init__(
            self,
            f"the image ({width}x{height}, {mode}) would take {decoded // 2**20} MiB once decoded, over "
            f"the limit of {limit // 2**20} MiB (refused before decoding; raise [detectors.limits] "
            f"max_decoded_bytes to accept it, with the memory it needs)",
        )


class UnsupportedFormat(MediaError):
    reason = "unsupported"

    def __init__(self, detail: str) -> None:
        super().__init__(f"not an image or video Vigil can read: {detail}")


class CorruptMedia(MediaError):
    reason = "corrupt"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the file could not be decoded (truncated or corrupt): {detail}")


# --- models ------------------------------------------------------------------


class ModelError(VigilError):
    """A model file that is missing, altered or unusable."""


class ModelNotFound(ModelError):
    def __init__(self, name: str, path: str, fix: str) -> None:
        self.name, self.path = name, path
        super().__init__(f"model '{name}': no file at {path}; {fix}")


class ModelChecksumMismatch(ModelError):
    def __init__(self, name: str, path: str, expected: str, actual: str) -> None:
        self.name, self.path = name, path
        super().__init__(
            f"model '{name}': {path} has SHA-256 {actual}, but the config expects "
            f"{expected}; the file is not the one configured (replace it, or set "
            f"[models.{name}] sha256 to the new file's checksum if you trust it)"
        )


class ModelInvalid(ModelError):
    def __init__(self, name: str, path: str, detail: str) -> None:
        self.name, self.path = name, path
        super().__init__(f"model '{name}': {path} cannot be used: {detail}")


# --- settings ------------------------------------------------------------------


class SettingError(VigilError):
    """A wrong or missing setting of the detectors (a catalog file, a thread count); names the key and the fix.

    The application's config errors (``bot.errors.ConfigError``) are a kind of it, so one
    ``except SettingError`` catches both."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"config key '{key}': {problem}. Fix: {fix}")


# --- hash index ------------------------------------------------------------------


class BadHash(VigilError, ValueError):
    """A hash or code array of the wrong form for a ``HammingIndex``."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad hash: {detail}")


class BadEntryIds(VigilError, ValueError):
    """Entry ids for a ``HammingIndex`` that are not unique integers, one per code."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad entry ids: {detail}")


class BadRadius(VigilError, ValueError):
    def __init__(self, radius: object) -> None:
        super().__init__(
            f"bad search radius {radius!r}: give a whole number of bits, 0 or more "
            f"(PDQ lists usually match at 31 or less)"
        )


# --- input media, added with detectors.media ----------------------------------


class TooManyFrames(MediaError):
    reason = "too_many_frames"

    def __init__(self, frames: int, limit: int, width: int, height: int) -> None:
        self.frames, self.limit, self.width, self.height = frames, limit, width, height
        super().__init__(
            f"the animation or video has {frames} frames of {width}x{height} pixels; Vigil "
            f"decodes at most {limit} frames of that size for one file (a fixed guard "
            f"against files made to be slow to check, see MAX_TOTAL_FRAMES and "
            f"MAX_DECODED_PIXELS in detectors/media/guards.py); a shorter or smaller clip is checked"
        )


class OversizedRegion(TooManyPixels):
    """A frame or tile inside the file is larger than the picture it belongs to allows.

    Caught by Pillow's own guard while decoding, which reports only a pixel count, so
    ``width`` and ``height`` are 0 and ``pixels`` holds the count.
    """

    def __init__(self, pixels: int, limit: int) -> None:
        self.width, self.height, self.limit, self.pixels = 0, 0, limit, pixels
        MediaError.__init__(
            self,
            f"a frame or tile inside the image declares {pixels} pixels, over the limit "
            f"of {limit} (refused before decoding it; raise [detectors.limits] max_pixels "
            f"to accept larger images)",
        )


# --- local-feature fingerprints (detectors.localmatch) --------------------------


class BadImageArray(VigilError, ValueError):
    """A pixel array that is not an RGB image Vigil can fingerprint."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"bad image array: {detail}; give an RGB image as a numpy uint8 array of shape "
            f"(height, width, 3) (for example np.asarray(PIL.Image.open(f).convert('RGB')))"
        )


class BadFingerprint(VigilError, ValueError):
    """Bytes or a value that is not a local-feature fingerprint Vigil can use."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"bad local-feature fingerprint: {detail}; fingerprints come from "
            f"detectors.localmatch.fingerprint() and Fingerprint.to_bytes() (recompute it "
            f"from the image if the stored copy is damaged or from an unknown version)"
        )
