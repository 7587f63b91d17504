"""matrix-nio returns error objects instead of raising: these turn them (and transport failures) into Vigil's errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
from nio import ErrorResponse
from nio.exceptions import LocalProtocolError, OlmTrustError

from bot.platforms.errors import MessageGone, MissingRight, PlatformError, RetryLater, Transient, Unreachable

T = TypeVar("T")

AUTH_ERRORS = ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_DEACTIVATED")


def http_status(response: Any) -> int | None:
    transport = getattr(response, "transport_response", None)
    return getattr(transport, "status", None)


def translate(
    response: ErrorResponse | dict[str, Any],
    what: str,
    *,
    right: str | None = None,
    unreachable: bool = False,
    status: int | None = None,
) -> PlatformError:
    """One homeserver error, mapped onto the error the core knows how to react to.

    ``right``: the power this call needs, for M_FORBIDDEN (e.g. "redact messages").
    ``unreachable``: the call is about reaching a person (a DM), so "forbidden" and "not found"
    mean that person cannot be reached.
    """
    if isinstance(response, dict):  # a raw JSON error body from our own HTTP calls
        code, message, retry_ms = response.get("errcode"), response.get("error", ""), response.get("retry_after_ms")
    else:
        code, message, retry_ms = response.status_code, response.message, response.retry_after_ms
        status = status if status is not None else http_status(response)
    detail = f"{what}: {code or status or 'error'} {message}".strip()
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        return RetryLater((retry_ms or 1000) / 1000, f"({what})")
    if code in AUTH_ERRORS:
        return PlatformError(
            f"{detail}: the homeserver refused Vigil's login; check VIGIL_MATRIX_PASSWORD or "
            "VIGIL_MATRIX_ACCESS_TOKEN, or delete the saved session (data/matrix/session.json) to log in again"
        )
    if code == "M_FORBIDDEN":
        if unreachable:
            return Unreachable(detail)
        if right:
            return MissingRight(right, f"Raise Vigil's power level in the room's settings ({message}).")
        return PlatformError(detail)
    if code == "M_NOT_FOUND" or status == 404:
        return Unreachable(detail) if unreachable else MessageGone(detail)
    if status is None or status >= 500 or code == "M_UNKNOWN" and (status or 500) >= 500:
        return Transient(detail)
    return PlatformError(detail)


def check(response: T, what: str, **kw: Any) -> T:
    """The response itself, or the mapped error raised."""
    if isinstance(response, ErrorResponse):
        raise translate(response, what, **kw)
    return response


async def call(what: str, coro: Awaitable[T], **kw: Any) -> T:
    """Await a nio call; error objects and transport failures come out as Vigil's errors."""
    try:
        response = await coro
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise Transient(f"{what}: {type(exc).__name__} {exc}".strip()) from None
    except OlmTrustError as exc:
        raise PlatformError(f"{what}: encryption refused to send ({exc})") from None
    except LocalProtocolError as exc:
        raise PlatformError(f"{what}: {exc}") from None
    return check(response, what, **kw)


class DownloadDeadline(PlatformError):
    """A picture's downloads (retries included) took longer than ``matrix.download_deadline``: not worth retrying."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"download: no answer within {seconds:g} s (a slow or unreachable remote homeserver); the picture is "
            "reported as not checked. Raise matrix.download_deadline if your homeserver is slow for every file"
        )
