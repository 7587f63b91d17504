"""Errors raised by the bot application; they extend the one hierarchy in ``detectors.errors``."""

from __future__ import annotations

from detectors.errors import SettingError, VigilError


class ConfigError(SettingError):
    """A wrong or missing setting in Vigil's config (file, environment, shipped catalogs); names the key and the fix."""


class BadAlertFacts(VigilError):
    """Facts for an admin alert that Vigil cannot render; a caller passed a wrong value."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value = field, value
        super().__init__(f"alert field '{field}' is {value!r}; it must be {allowed}")


class StoreError(VigilError):
    """The database cannot be opened, read or written; the message names the file and the fix."""


class BadStoreValue(StoreError, ValueError):
    """A caller passed a value the store refuses (wrong id, kind, hash or size); nothing was written."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field, self.value = field, value
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"store: '{field}' is {shown}; it must be {allowed}")


class UnknownRecord(StoreError, LookupError):
    """An id that names no row (deleted, purged, or never existed)."""

    def __init__(self, what: str, record_id: object) -> None:
        self.what, self.record_id = what, record_id
        super().__init__(f"store: no {what} with id {record_id!r} (it was deleted or never existed)")


class GaveUp(VigilError):
    """An image whose check failed (or stopped the process) on every attempt: the admins must look at it."""

    reason = "gave_up"

    def __init__(self, attempts: int, last_error: str) -> None:
        self.attempts, self.last_error = attempts, last_error
        super().__init__(f"checking failed on {attempts} attempts (last: {last_error[:200]})")


class DownloadTimedOut(VigilError):
    """A download took longer than [pipeline] download_timeout in all; the image is retried later."""

    reason = "timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the download took longer than {seconds:.0f} s (retries included); it is tried again later "
            f"(raise [pipeline] download_timeout if the platform's server is slow)"
        )
