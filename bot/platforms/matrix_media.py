"""Media on a Matrix homeserver: download into memory with a size cap, decrypt attachments, quarantine.

The bytes never touch the disk: they are read in chunks into memory, and the download stops as
soon as the cap is passed (matrix-nio's own download reads whole bodies, and may save to a file).
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp
from nio.crypto.attachments import decrypt_attachment

from bot.platforms.errors import MediaTooLarge, MessageGone, PlatformError, Transient
from bot.platforms.matrix_errors import translate
from bot.platforms.matrix_events import parse_mxc

CHUNK = 64 * 1024


class MediaFetcher:
    """Downloads (authenticated media endpoints, with the legacy ones as a fallback) and quarantines."""

    def __init__(self, session: aiohttp.ClientSession, homeserver: str) -> None:
        self.session = session
        self.homeserver = homeserver.rstrip("/")

    async def _json_error(self, reply: aiohttp.ClientResponse) -> dict:
        try:
            body = await reply.json(content_type=None)
            return body if isinstance(body, dict) else {}
        except (ValueError, aiohttp.ClientError):
            return {}

    async def download(self, mxc: str, token: str, max_bytes: int) -> bytes:
        """The file's bytes, at most ``max_bytes`` of them; MediaTooLarge past that."""
        server, media_id = parse_mxc(mxc)
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
                            raise MediaTooLarge(declared, max_bytes)
                        data = bytearray()
                        async for chunk in reply.content.iter_chunked(CHUNK):
                            data += chunk
                            if len(data) > max_bytes:
                                raise MediaTooLarge(len(data), max_bytes)
                        return bytes(data)
                    error = await self._json_error(reply)
                    # a homeserver without authenticated media answers M_UNRECOGNIZED (or 404 without errcode)
                    if error.get("errcode") == "M_UNRECOGNIZED" or (reply.status in (404, 405) and not error.get("errcode")):
                        last = PlatformError(f"download {mxc}: the homeserver does not serve {url.split('?')[0]}")
                        continue
                    if error.get("errcode") == "M_TOO_LARGE" or reply.status == 413:
                        raise MediaTooLarge(reply.content_length or max_bytes + 1, max_bytes)
                    err = translate(error, f"download {mxc}", status=reply.status)
                    if isinstance(err, MessageGone):
                        raise PlatformError(f"download {mxc}: the file is no longer on the homeserver (removed or quarantined)")
                    raise err
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                raise Transient(f"download {mxc}: {type(exc).__name__} {exc}".strip()) from None
        raise last or PlatformError(f"download {mxc} failed")

    async def quarantine(self, mxc: str, admin_token: str) -> None:
        """Synapse's admin API: the file can no longer be downloaded by anyone (it stays for the admin)."""
        server, media_id = parse_mxc(mxc)
        url = f"{self.homeserver}/_synapse/admin/v1/media/quarantine/{quote(server, safe='')}/{quote(media_id, safe='')}"
        try:
            async with self.session.post(url, headers={"Authorization": f"Bearer {admin_token}"}, json={}) as reply:
                if reply.status == 200:
                    return
                error = await self._json_error(reply)
                raise translate(error, f"quarantine {mxc}", status=reply.status, right="quarantine media (a Synapse admin token)")
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            raise Transient(f"quarantine {mxc}: {type(exc).__name__} {exc}".strip()) from None


def decrypt(ciphertext: bytes, encrypted: Mapping[str, Any]) -> bytes:
    """An end-to-end encrypted attachment opened in memory (AES-CTR, SHA-256 checked)."""
    try:
        return decrypt_attachment(ciphertext, encrypted["key"], encrypted["sha256"], encrypted["iv"])
    except Exception as exc:  # nio raises EncryptionError, or ValueError/KeyError for bad keys
        raise PlatformError(f"the encrypted file could not be opened ({type(exc).__name__}: {exc})") from None
