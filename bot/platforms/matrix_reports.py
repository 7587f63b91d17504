"""Reports Matrix clients make to the homeserver (``POST /rooms/{roomId}/report/{eventId}``), read
from Synapse's admin API (``GET /_synapse/admin/v1/event_reports``) with the operator's admin
token (VIGIL_MATRIX_ADMIN_TOKEN).

Synapse lists the reports newest first and numbers them; Vigil reads pages back to the last
number it handled (kept in the store by the caller), at most ``MAX_PAGES`` pages a read, and
hands over the new ones oldest first. Every value is bounded and checked here, where it enters:
a report whose ids break the grammar is skipped. The reason a client gave is never read: it is
free text a member wrote and Vigil keeps no message text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import aiohttp

from bot.platforms import matrix_bounds as bounds
from bot.platforms.errors import PlatformError, Transient

log = logging.getLogger("vigil.matrix")

MAX_PAGES = 10  # pages read back in one poll; reports older than that (a first start on a busy homeserver) are left
MAX_PAGE = 1000  # reports a page may ask for
MAX_REPORT_ID = 2**53
MAX_ANSWER = 4 * 1024 * 1024  # bytes of one page's JSON


@dataclass(frozen=True)
class EventReport:
    """One report a member made to the homeserver: its number there, the room, the event, the reporter."""

    id: int
    room_id: str
    event_id: str
    user_id: str


def report_of(item: object) -> EventReport | None:
    """One entry of the admin API's answer, checked; None (skipped) if anything is out of bounds."""
    if not isinstance(item, dict):
        return None
    number, room, event, user = item.get("id"), item.get("room_id"), item.get("event_id"), item.get("user_id")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < MAX_REPORT_ID:
        return None
    if not bounds.room_id(room) or not bounds.event_id(event) or not bounds.user_id(user):
        return None
    return EventReport(number, room, event, user)


async def read_event_reports(
    session: aiohttp.ClientSession, homeserver: str, admin_token: str, *, after: int, page_size: int
) -> list[EventReport]:
    """The reports numbered above ``after``, oldest first (at most ``MAX_PAGES`` pages of ``page_size``)."""
    limit = max(1, min(page_size, MAX_PAGE))
    url = f"{homeserver}/_synapse/admin/v1/event_reports"
    found: dict[int, EventReport] = {}
    offset = 0
    for _ in range(MAX_PAGES):
        body = await _page(session, url, admin_token, offset, limit)
        items = body.get("event_reports")
        if not isinstance(items, list):
            raise PlatformError("event reports: the homeserver's answer has no list of reports (is it Synapse?)")
        reached = False
        for item in items[:limit]:
            report = report_of(item)
            if report is None:
                log.warning("matrix: an event report out of bounds was skipped")
                continue
            if report.id <= after:
                reached = True
                continue
            found[report.id] = report
        following = body.get("next_token")
        if reached or not items or isinstance(following, bool) or not isinstance(following, int):
            break
        if not offset < following <= offset + limit:  # a homeserver that does not move on: stop here
            break
        offset = following
    return [found[k] for k in sorted(found)]


async def _page(session: aiohttp.ClientSession, url: str, token: str, offset: int, limit: int) -> dict[str, object]:
    params = {"from": str(offset), "limit": str(limit), "dir": "b"}
    try:
        async with session.get(url, params=params, headers={"Authorization": f"Bearer {token}"}) as reply:
            if reply.status in (401, 403):
                raise PlatformError(
                    "event reports: the homeserver refused VIGIL_MATRIX_ADMIN_TOKEN; set it to a Synapse server "
                    "admin's access token (or unset it to stop reading the homeserver's reports)"
                )
            if reply.status == 429 or reply.status >= 500:
                raise Transient(f"event reports: the homeserver answered {reply.status}")
            if reply.status != 200:
                raise PlatformError(f"event reports: the homeserver answered {reply.status}")
            data = await reply.content.read(MAX_ANSWER + 1)
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        raise Transient(f"event reports: {type(exc).__name__}") from None
    if len(data) > MAX_ANSWER:
        raise PlatformError(f"event reports: the homeserver's answer is larger than {MAX_ANSWER} bytes")
    try:
        body = json.loads(data)
    except ValueError:
        raise PlatformError("event reports: the homeserver's answer is not JSON") from None
    if not isinstance(body, dict):
        raise PlatformError("event reports: the homeserver's answer is not a JSON object")
    return body
