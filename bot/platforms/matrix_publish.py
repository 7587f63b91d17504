"""Publishing an instance list to a Matrix policy room as MSC4113 image-hash rules (``vigil hash publish``).

Each PDQ entry becomes a state event ``m.policy.media_hash`` whose state key is the hash; a hash
published before (the record is kept in the store's state) whose entry is gone is redacted. The
room's current state is read first, so running it twice changes nothing. Only PDQ hashes leave
the machine: never pixels, pHash, SHA-256 or the local-feature fingerprint.

It talks plain client-server HTTP, without encryption (policy rooms are public state), as the bot's
account: ``VIGIL_MATRIX_ACCESS_TOKEN``, else the running bot's saved session, else a password login
(logged out again at the end), so the bot's own device and keys are never touched.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.config import MatrixConfig
from bot.platforms.matrix_policy import (
    MEDIA_HASH_TYPES,
    BadPolicyRule,
    parse_media_hash,
)
from bot.platforms.matrix_session import read_session
from detectors.errors import VigilError

log = logging.getLogger("vigil.matrix.publish")

RULE_TYPE = MEDIA_HASH_TYPES[0]
PUBLISHED_KEY = "matrix.published:"  # + room id + ":" + list name -> JSON {pdq: event id}
MAX_TRIES = 8


class PublishFailed(VigilError):
    """Publishing stopped; the message says what to fix. What was sent before stays recorded."""


@dataclass(frozen=True)
class Published:
    room_id: str
    added: int
    redacted: int
    unchanged: int


def published_key(room_id: str, list_name: str) -> str:
    return f"{PUBLISHED_KEY}{room_id}:{list_name}"


class _Api:
    def __init__(self, homeserver: str, session: aiohttp.ClientSession) -> None:
        self.base, self.http, self.token = homeserver.rstrip("/"), session, ""

    async def __call__(self, method: str, path: str, body: Any = None, *, what: str) -> Any:
        for _ in range(MAX_TRIES):
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            async with self.http.request(method, self.base + path, json=body, headers=headers) as reply:
                data = await reply.json(content_type=None)
                if reply.status == 429:  # rate limited: wait as told
                    await asyncio.sleep(min(30.0, (data or {}).get("retry_after_ms", 1000) / 1000))
                    continue
                if reply.status != 200:
                    code = data.get("errcode") if isinstance(data, dict) else None
                    raise PublishFailed(f"{what}: the homeserver answered {reply.status} {code or ''}".strip())
                return data
        raise PublishFailed(f"{what}: still rate limited after {MAX_TRIES} tries")


async def publish(config: MatrixConfig, directory: Path, store: Any, list_name: str, room: str) -> Published:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        api = _Api(config.homeserver, http)
        logged_in = await _authenticate(api, config, directory)
        try:
            return await _publish(api, store, list_name, room)
        finally:
            if logged_in:
                await api("POST", "/_matrix/client/v3/logout", {}, what="log out")


async def _authenticate(api: _Api, config: MatrixConfig, directory: Path) -> bool:
    """Sets the token; True when a login was made here (to be logged out)."""
    saved = read_session(directory)
    if config.access_token:
        api.token = config.access_token
        return False
    if saved is not None and saved.user_id == config.user_id and saved.homeserver == config.homeserver:
        api.token = saved.access_token
        return False
    if not config.password:
        raise PublishFailed("no Matrix credentials: set VIGIL_MATRIX_ACCESS_TOKEN or VIGIL_MATRIX_PASSWORD")
    got = await api(
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": config.user_id},
            "password": config.password,
            "initial_device_display_name": "Vigil (publishing)",
        },
        what="log in",
    )
    api.token = str(got.get("access_token", ""))
    return True


async def _publish(api: _Api, store: Any, list_name: str, room: str) -> Published:
    lst = await store.list_by_name(list_name)
    if lst is None:
        raise PublishFailed(f"no list named '{list_name}' (see `vigil hash lists`)")
    if lst.kind != "block":
        raise PublishFailed(f"'{list_name}' is an allow list: only block lists become policy rules")
    room_id = room
    if room.startswith("#"):
        resolved = await api("GET", f"/_matrix/client/v3/directory/room/{quote(room)}", what=f"resolve {room}")
        room_id = resolved["room_id"]
    state = await api(
        "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state", what="read the policy room (is Vigil in it?)"
    )
    if not isinstance(state, list):
        raise PublishFailed("the policy room's state could not be read")
    state = [e for e in state if isinstance(e, dict)]
    if any(e.get("type") == "m.room.encryption" for e in state):
        raise PublishFailed("the room is encrypted: encrypted policy rooms are not supported; use a public room")
    current: dict[str, tuple[str, Any]] = {}  # state key -> (event id, rule or None)
    for e in state:
        if e.get("type") == RULE_TYPE and isinstance(e.get("state_key"), str):
            try:
                rule = parse_media_hash(e["state_key"], e.get("content"))
            except BadPolicyRule:
                rule = None
            current[e["state_key"]] = (str(e.get("event_id", "")), rule)
    key = published_key(room_id, lst.name)
    record: dict[str, str] = json.loads(await store.get_state(key) or "{}")
    wanted = {e.pdq: e for e in await store.entries(lst.id) if e.pdq}
    added = unchanged = redacted = 0
    for pdq, entry in sorted(wanted.items()):
        content = rule_content(pdq, entry.pdq_quality, entry.note or f"Vigil list {lst.name} ({lst.label})")
        have = current.get(pdq)
        if (
            have is not None
            and have[1] is not None
            and (have[1].quality, have[1].reason) == (int(content["m.pdqhash"]["quality"]), content["reason"])
        ):
            record[pdq] = have[0]
            unchanged += 1
            continue
        sent = await api(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{quote(RULE_TYPE)}/{pdq}",
            content,
            what="send a rule (Vigil's account must be able to send state events in the policy room)",
        )
        record[pdq] = str(sent.get("event_id", ""))
        await store.set_state(key, json.dumps(record, sort_keys=True))  # each rule recorded as soon as it is out
        added += 1
    for pdq in sorted(set(record) - set(wanted)):
        have = current.get(pdq)
        if have is not None and have[1] is not None:
            txn = f"vigil-unpublish-{have[0]}".replace("$", "").replace(":", "_")
            await api(
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(have[0])}/{quote(txn)}",
                {"reason": "removed from the list"},
                what="redact a rule (Vigil needs the power to redact)",
            )
            redacted += 1
        del record[pdq]
        await store.set_state(key, json.dumps(record, sort_keys=True))
    log.info("published %s to %s: %d added, %d redacted, %d unchanged", lst.name, room_id, added, redacted, unchanged)
    return Published(room_id, added, redacted, unchanged)


def rule_content(pdq: str, quality: int | None, reason: str) -> dict[str, Any]:
    shown = "".join(ch for ch in reason if ch.isprintable())[:500]  # as a reader keeps it: unchanged on a rerun
    return {"m.pdqhash": {"hash": pdq, "quality": str(100 if quality is None else quality)}, "reason": shown}


def summary(got: Published, list_name: str) -> Sequence[str]:
    return [
        (
            f"published '{list_name}' to {got.room_id}: {got.added} rules sent, {got.redacted} redacted, "
            f"{got.unchanged} already there"
        )
    ]
