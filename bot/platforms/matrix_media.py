"""Media on a Matrix homeserver: download into memory with a size cap, decrypt attachments, quarantine.

The bytes never touch the disk: they are read in chunks into memory, and the download stops as
soon as the cap is passed (matrix-nio's own download reads whole bodies, and may save to a file).

A file on a slow remote server is fetched by the homeserver while Vigil waits: every download of
one picture, retries included, shares one deadline (``matrix.download_deadline``), after which
the picture is reported as not checked instead of holding the work for minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from nio.crypto.attachments import decrypt_attachment

from bot.platforms.errors import MessageGone, PlatformError, Transient
from bot.platforms.matrix_bounds import parse_mxc
from bot.platforms.matrix_errors import DownloadDeadline, translate
from detectors.errors import TooManyBytes

CHUNK = 64 * 1024
DEADLINES_KEPT = 10_000  # pictures whose first download try is remembered


class Deadlines:
    """When each picture's first download try began, so retries share one total deadline.

    A chain of tries older than twice the deadline plus a minute is forgotten: a retry of the
    whole work item later on gets a fresh deadline.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._started: OrderedDict[Hashable, float] = OrderedDict()

    def remaining(self, key: Hashable) -> float:
        now = time.monotonic()
        started = self._started.get(key)
        if started is None or now - started > 2 * self.seconds + 60:
            started = self._started[key] = now
            self._started.move_to_end(key)
            while len(self._started) > DEADLINES_KEPT:
                self._started.popitem(last=False)
        return self.seconds - (now - started)

    def forget(self, key: Hashable) -> None:
        self._started.pop(key, None)


class MediaFetcher:
    """Downloads (authenticated media endpoints, with the legacy ones as a fallback) and quarantines."""

    def __init__(self, session: aiohttp.ClientSession, homeserver: str, deadline: float = 30.0) -> None:
        self.session = session
        self.homeserver = homeserver.rstrip("/")
        self.deadlines = Deadlines(deadline)

    async def _json_error(self, reply: aiohttp.ClientResponse) -> dict[str, Any]:
        try:
            body = await reply.json(content_type=None)
            return body if isinstance(body, dict) else {}
        except (ValueError, aiohttp.ClientError):
            return {}

    async def download(self, mxc: str, token: str, max_bytes: int, *, picture: Hashable | None = None) -> bytes:
        """The file's bytes, at most ``max_bytes`` of them; TooManyBytes past that.

        ``picture`` names the picture across retries: all its tries share one deadline, after
        which DownloadDeadline (not worth retrying) is raised.
        """
        key = picture if picture is not None else mxc
        remaining = self.deadlines.remaining(key)
        if remaining <= 0:
            raise DownloadDeadline(self.deadlines.seconds)
        deadline = asyncio.timeout(remaining)
        try:
            async with deadline:
                data = await self._download(mxc, token, max_bytes)
        except TimeoutError:
            if deadline.expired():
                raise DownloadDeadline(self.deadlines.seconds) from None
            raise Transient(f"download {mxc}: timed out") from None
        except Transient:
            raise  # retried by the caller within what is left of the deadline
        except (PlatformError, TooManyBytes):
            self.deadlines.forget(key)
            raise
        self.deadlines.forget(key)
        return data

    async def _download(self, mxc: str, token: str, max_bytes: int) -> bytes:
        server, media_id = _parts(mxc)
        path = f"{quote(server, safe='')}/{quote(media_id, safe='')}"
        urls = (
            f"{self.homeserver}/_matrix/client/v1/media/download/{path}?allow_redirect=true",
            f"{self.homeserver}/_matrix/media/v3/download/{path}?allow_redirect=true",
        )
        headers = {"Authorization": f"Bearer {token}"}
        last: PlatformError | None = None
        for url in urls:
            try:
                async with self.session.get(url, headers=headers) as reply:
                    if reply.status == 200:
                        declared = reply.content_length
                        if declared is not None and declared > max_bytes:
                            raise TooManyBytes(declared, max_bytes)
                        data = bytearray()
                        async for chunk in reply.content.iter_chunked(CHUNK):
                            data += chunk
                            if len(data) > max_bytes:
                                raise TooManyBytes(len(data), max_bytes)
                        return bytes(data)
                    error = await self._json_error(reply)
                    # a homeserver without authenticated media answers M_UNRECOGNIZED (or 404 without errcode)
                    if error.get("errcode") == "M_UNRECOGNIZED" or (
                        reply.status in (404, 405) and not error.get("errcode")
                    ):
                        last = PlatformError(f"download {mxc}: the homeserver does not serve {url.split('?')[0]}")
                        continue
                    if error.get("errcode") == "M_TOO_LARGE" or reply.status == 413:
                        raise TooManyBytes(reply.content_length or max_bytes + 1, max_bytes)
                    err = translate(error, f"download {mxc}", status=reply.status)
                    if isinstance(err, MessageGone):
                        raise PlatformError(
                            f"download {mxc}: the file is no longer on the homeserver (removed or quarantined)"
                        )
                    raise err
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise Transient(f"download {mxc}: {type(exc).__name__} {exc}".strip()) from None
        raise last or PlatformError(f"download {mxc} failed")

    async def uploader(self, mxc: str, admin_token: str) -> str | None:
        """Who uploaded a file on this homeserver (Synapse's admin API); None when unknown (remote media,
        or a homeserver that cannot tell)."""
        server, media_id = _parts(mxc)
        url = f"{self.homeserver}/_synapse/admin/v1/media/{quote(server, safe='')}/{quote(media_id, safe='')}"
        try:
            async with self.session.get(url, headers={"Authorization": f"Bearer {admin_token}"}) as reply:
                if reply.status != 200:
                    return None
                body = await self._json_error(reply)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return None
        nested = body.get("media_info")
        info = nested if isinstance(nested, dict) else body  # Synapse nests it
        user = info.get("user_id")
        return user if isinstance(user, str) else None

    async def quarantine(self, mxc: str, admin_token: str) -> None:
        """Synapse's admin API: the file can no longer be downloaded by anyone (it stays for the admin)."""
        server, media_id = _parts(mxc)
        url = (
            f"{self.homeserver}/_synapse/admin/v1/media/quarantine/{quote(server, safe='')}/{quote(media_id, safe='')}"
        )
        try:
            async with self.session.post(url, headers={"Authorization": f"Bearer {admin_token}"}, json={}) as reply:
                if reply.status == 200:
                    return
                error = await self._json_error(reply)
                raise translate(
                    error, f"quarantine {mxc}", status=reply.status, right="quarantine media (a Synapse admin token)"
                )
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise Transient(f"quarantine {mxc}: {type(exc).__name__} {exc}".strip()) from None


def _parts(mxc: str) -> tuple[str, str]:
    """(server, media id) of a strictly valid mxc URI; anything else never reaches a URL."""
    try:
        return parse_mxc(mxc)
    except ValueError as exc:
        raise PlatformError(f"{exc}: Vigil neither downloads nor quarantines it") from None


def decrypt(ciphertext: bytes, encrypted: Mapping[str, Any]) -> bytes:
    """An end-to-end encrypted attachment opened in memory (AES-CTR, SHA-256 checked)."""
    try:
        clear = decrypt_attachment(ciphertext, encrypted["key"], encrypted["sha256"], encrypted["iv"])
    except Exception as exc:  # nio raises EncryptionError, or ValueError/KeyError for bad keys
        raise PlatformError(f"the encrypted file could not be opened ({type(exc).__name__}: {exc})") from None
    if not isinstance(clear, bytes):
        raise PlatformError("the encrypted file could not be opened (no bytes came out)")
    return clear
