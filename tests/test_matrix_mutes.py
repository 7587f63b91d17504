"""Matrix timed mutes in the store, end to end against the real Synapse: a mute is recorded in the
store (not a file beside the device), outlives a restart, and is lifted when it runs out; mutes
an older Vigil left in files (its own and a worker slot's no worker uses now) move to the store
once and are lifted too."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.marker_model import add_marker
from tests.support.matrix_client import HumanClient
from tests.support.matrix_harness import (
    matrix_env,
    new_user,
    people,
    protected_room,
    running_matrix_vigil,
    wait_redacted,
    write_matrix_config,
)
from tests.support.vigil_harness import jpeg

pytestmark = pytest.mark.synapse


async def level_of(client: HumanClient, room_id: str, user_id: str) -> int | None:
    response = await client.nio.room_get_state_event(room_id, "m.room.power_levels")
    return response.content.get("users", {}).get(user_id)


async def until_level(client: HumanClient, room_id: str, user_id: str, wanted: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := await level_of(client, room_id, user_id)) != wanted:
        assert time.monotonic() < deadline, f"{user_id}'s level in {room_id} is {got}, not {wanted}, after {timeout} s"
        await asyncio.sleep(0.5)


def mute_rows(data: Path) -> list[tuple[str, str, int, int | None]]:
    with sqlite3.connect(data / "vigil.sqlite3") as c:
        return c.execute("SELECT room_id, user_id, level, previous FROM mutes ORDER BY user_id").fetchall()


async def test_a_mute_is_kept_in_the_store_across_a_restart_and_lifted_when_it_runs_out(
    synapse, marker_model, tmp_path, photo
):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    data = tmp_path / "data"
    async with people(synapse, "owner", "member") as (owner, member):
        async with running_matrix_vigil(cfg, matrix_env(bot)):
            room = await protected_room(owner, bot.user_id, members=[member], bot_level=100)
            await owner.send_text(room.room_id, "!vigil action mute 45s")
            await owner.sync_until(
                lambda r, e: r == room.room_id and e.sender == bot.user_id and "mute 45s" in (getattr(e, "body", "")),
                20,
            )
            # bytes no other test sends: Synapse quarantines a file by its hash
            hit = await member.send_image(room.room_id, jpeg(add_marker(photo, at=(37, 41))), "image/jpeg")
            await wait_redacted(owner, room.room_id, hit)
            await until_level(owner, room.room_id, member.user_id, -1, 30)
        # Vigil stopped: the mute is a row of the store, no file beside the device
        assert mute_rows(data) == [(room.room_id, member.user_id, -1, None)]
        assert not (data / "matrix" / "mutes.json").exists()
        async with running_matrix_vigil(cfg, matrix_env(bot)):
            await until_level(owner, room.room_id, member.user_id, None, 120)  # back to the room's default
            assert mute_rows(data) == []  # the row goes before the level is given back
            await member.send_text(room.room_id, "back again")


async def test_mutes_left_in_files_by_an_older_vigil_move_to_the_store_and_are_lifted(synapse, marker_model, tmp_path):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model)
    data = tmp_path / "data"
    async with people(synapse, "owner", "ann", "ben") as (owner, ann, ben):
        async with running_matrix_vigil(cfg, matrix_env(bot)):
            room = await protected_room(owner, bot.user_id, members=[ann, ben], bot_level=100)
        # what an older Vigil left: both muted in the room, one recorded by the reader, one by a worker
        # in a slot no worker uses any more; both ran out while Vigil was down
        levels = (await owner.nio.room_get_state_event(room.room_id, "m.room.power_levels")).content
        levels["users"] = {**levels["users"], ann.user_id: -1, ben.user_id: -1}
        await owner.set_power_levels(room.room_id, levels)
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        old = {"room": room.room_id, "level": -1, "until": past}
        (data / "matrix" / "mutes.json").write_text(json.dumps([{**old, "user": ann.user_id, "previous": None}]))
        slot = data / "matrix-workers" / "5"
        slot.mkdir(parents=True)
        (slot / "mutes.json").write_text(json.dumps([{**old, "user": ben.user_id, "previous": 0}]))
        async with running_matrix_vigil(cfg, matrix_env(bot)):
            await until_level(owner, room.room_id, ann.user_id, None, 60)
            await until_level(owner, room.room_id, ben.user_id, 0, 60)
        assert mute_rows(data) == []
        assert not (data / "matrix" / "mutes.json").exists() and (data / "matrix" / "mutes.json.imported").exists()
        assert not (slot / "mutes.json").exists() and (slot / "mutes.json.imported").exists()
