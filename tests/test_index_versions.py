"""Two Vigil instances on one database judge alike: what one changes, the other judges by at once.

Each instance is a whole ``Core`` with its own store connection and its own in-memory indexes, as
two processes on one SQLite file or one PostgreSQL database would be; the platform is a fake of
Vigil's ``Platform`` seam (tests/test_moderator.py), the scanner and store are real. The followers'
polls are set far apart, so only what the work item recorded and the re-check before acting can
make the second instance see the first one's change in time:

- ``/block`` handled by one, a copy submitted to the other right after: deleted;
- ``/unprotect`` in one, a derived copy submitted to the other: the person is not named;
- a list entry removed after the other loaded it (its item recorded before): no delete.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

import bot.core
import bot.protect
from bot.config import load_config
from bot.core import Core
from bot.events import ChatRef, CommandIssued, IndexVersions, MediaPosted, MediaRef, UserRef
from bot.index_versions import heads
from bot.ops import INDEX_STALE_SECONDS, readiness
from bot.platforms.base import Platform
from bot.store.factory import open_store
from bot.store.protocol import Store
from bot.store.records import ChangeKind
from detectors.scanner import Scanner
from tests.support import transforms as tf
from tests.support.decided import decided
from tests.support.detector_images import file_images
from tests.test_moderator import ADMIN, GROUP, MEMBER, PLATFORM, FakePlatform

OWNER = UserRef(PLATFORM, "3003", "Ana Lopez", language="en")  # a member who protects her photo
ADMIN_USER = UserRef(PLATFORM, ADMIN, "Olivia", language="en")


@dataclass
class GroupPlatform(FakePlatform):
    """The fake platform, where the protected photo's owner is a member of the group too."""

    members: set[str] = field(default_factory=lambda: {ADMIN, MEMBER.user_id, OWNER.user_id})

    async def is_member(self, chat_id: str, user_id: str) -> bool:
        return user_id in self.members


def _typed(platform: GroupPlatform) -> Platform:
    return platform


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    images = file_images()
    return {name: next(v for k, v in images.items() if name in k) for name in ("astronaut", "coffee")}


@dataclass
class Instance:
    """One Vigil process: its own core, store connection and platform client."""

    core: Core
    store: Store
    platform: GroupPlatform
    started: bool = False

    async def start(self) -> None:
        await self.core.start()
        self.started = True

    def event(self, message_id: str, data: bytes, sender: UserRef = MEMBER) -> MediaPosted:
        self.platform.images[message_id] = data
        return MediaPosted(
            GROUP, message_id, sender, datetime.now(UTC), MediaRef("photo", f"file-{message_id}", len(data))
        )

    async def command(self, verb: str, *args: str, reply_to: MediaPosted | None = None) -> None:
        await self.core.command(CommandIssued(GROUP, f"cmd-{verb}", ADMIN_USER, False, verb, args, reply_to=reply_to))


def _config_text(tmp_path: Path, marker_model: Path, url: str | None) -> str:
    database = f'[database]\nurl = "{url}"\n' if url else ""
    return f"""
[vigil]
data_dir = "{tmp_path / "data"}"

[models.nudity]
path = "{marker_model}"

[pipeline]
workers = 1
scan_timeout = 60
batch_deletes = false

{database}"""


@pytest.fixture(params=["sqlite", "postgresql"])
async def pair(request, tmp_path: Path, marker_model: Path, monkeypatch) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances on one database (one SQLite file, or one PostgreSQL schema), not started."""
    # the polls are the fallback, set far apart here: what is tested must hold without them
    monkeypatch.setattr(bot.core, "LIST_SYNC_SECONDS", 3600.0)
    monkeypatch.setattr(bot.protect, "REFRESH_SECONDS", 3600.0)
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    path = tmp_path / "config.toml"
    path.write_text(_config_text(tmp_path, marker_model, url))
    config = load_config(path, env={})
    config.data_dir.mkdir(parents=True, exist_ok=True)
    scanner = await asyncio.to_thread(Scanner, config.detectors)
    made: list[Instance] = []
    try:
        for _ in range(2):
            store = await open_store(config)
            core = Core(config, store, scanner)
            platform = GroupPlatform()
            core.add_platform(_typed(platform))
            made.append(Instance(core, store, platform))
        first = made[0].store
        await first.set_contact(PLATFORM, ADMIN, can_dm=True, language="en")
        await first.set_contact(PLATFORM, OWNER.user_id, can_dm=True, language="en")
        await first.upsert_group(PLATFORM, GROUP.chat_id, GROUP.title)
        yield made[0], made[1]
    finally:
        for inst in made:
            if inst.started:
                await inst.core.stop(5)
            inst.core.pipeline.executor.shutdown(wait=True)
            await inst.store.close()


async def test_a_copy_posted_right_after_a_block_in_another_instance_is_deleted(pair, photos) -> None:
    a, b = pair
    await a.start()
    await b.start()  # b holds the lists as they were: empty
    original = a.event("m1", jpeg(photos["coffee"]))
    await a.command("block", reply_to=original)
    assert a.platform.deleted == [(GROUP.chat_id, "m1")]  # a removed it and listed it

    copy = b.event("m2", jpeg(photos["coffee"], 70))
    await b.core.submit(copy)
    records = await decided(b.store, PLATFORM, GROUP.chat_id, ["m2"])
    assert [r.decision for r in records] == ["delete"]
    assert b.platform.deleted == [(GROUP.chat_id, "m2")]


async def test_a_derived_copy_after_unprotect_in_another_instance_does_not_name_the_person(pair, photos) -> None:
    a, b = pair
    await a.core.protector.register_member_photo(PLATFORM, OWNER.user_id, OWNER.display_name, jpeg(photos["astronaut"]))
    await a.start()
    await b.start()
    await b.core.protector.refresh()  # b loaded the photo before it was unprotected
    assert len(b.core.protector.index) == 1

    private = ChatRef(PLATFORM, OWNER.user_id)
    await a.core.command(CommandIssued(private, "cmd-unprotect", OWNER, True, "unprotect", ()))
    assert await a.store.member_owner(PLATFORM, OWNER.user_id) is None  # gone from the database

    fake = b.event("m3", jpeg(tf.undress_like(photos["astronaut"], fill="smooth"), 85))
    await b.core.submit(fake)
    await decided(b.store, PLATFORM, GROUP.chat_id, ["m3"])
    told = [m.text for _, m in b.platform.private + b.platform.in_chat]
    assert not any(OWNER.display_name in text or "Ana" in text for text in told), told
    assert all(user != OWNER.user_id for user, _ in b.platform.private)  # no owner notice either


async def test_an_entry_removed_after_an_instance_loaded_it_is_not_acted_on(pair, photos) -> None:
    a, b = pair
    original = a.event("m1", jpeg(photos["coffee"]))
    await a.command("block", reply_to=original)
    await b.core.load_lists()  # b holds the entry
    entry_id = next(iter(b.core.lists.index.entries_of(next(iter(await b.store.all_lists())).id)))
    # the copy's item is recorded while the entry is listed (its versions say so) ...
    copy = b.event("m2", jpeg(photos["coffee"], 70))
    versions = await heads(b.store)
    assert versions.lists > 0
    recorded = replace(copy, versions=versions)
    work_id = await b.store.enqueue_work(PLATFORM, GROUP.chat_id, "m2", recorded.payload())
    # ... and the entry is taken off the list through the other instance before b judges it
    await a.command("vigil", "remove", str(entry_id))
    assert await a.store.get_entry(entry_id) is None
    assert await b.store.start_work(work_id) == 1
    await b.core.moderator.handle(work_id, MediaPosted.from_payload(PLATFORM, recorded.payload()))
    records = await decided(b.store, PLATFORM, GROUP.chat_id, ["m2"])
    assert [r.decision for r in records] == ["allow"]
    assert b.platform.deleted == []


async def test_a_hit_on_a_photo_unprotected_after_the_item_was_recorded_names_nobody(pair, photos) -> None:
    a, b = pair
    await a.core.protector.register_member_photo(PLATFORM, OWNER.user_id, OWNER.display_name, jpeg(photos["astronaut"]))
    await b.core.protector.load()  # b holds the photo
    fake = b.event("m3", jpeg(tf.undress_like(photos["astronaut"], fill="smooth"), 85))
    recorded = replace(fake, versions=await heads(b.store))  # recorded while the photo was protected ...
    work_id = await b.store.enqueue_work(PLATFORM, GROUP.chat_id, "m3", recorded.payload())
    private = ChatRef(PLATFORM, OWNER.user_id)  # ... and unprotected through the other instance before b judges
    await a.core.command(CommandIssued(private, "cmd-unprotect", OWNER, True, "unprotect", ()))
    assert len(b.core.protector.index) == 1  # b has not caught up: only the re-check stands between
    assert await b.store.start_work(work_id) == 1
    await b.core.moderator.handle(work_id, MediaPosted.from_payload(PLATFORM, recorded.payload()))
    await decided(b.store, PLATFORM, GROUP.chat_id, ["m3"])
    told = [m.text for _, m in b.platform.private + b.platform.in_chat]
    assert not any("Ana" in text for text in told), told


def test_versions_in_a_payload_are_bounded_whole_numbers_and_a_bad_one_only_skips_the_wait() -> None:
    event = MediaPosted(GROUP, "1", MEMBER, datetime.now(UTC), MediaRef("photo", "f"), versions=IndexVersions(7, 3))
    back = MediaPosted.from_payload(PLATFORM, event.payload())
    assert back.versions == IndexVersions(7, 3)
    assert "versions" not in replace(event, versions=None).payload()  # items recorded without stay as they were
    for bad in ({"lists": -1}, {"lists": 2**63}, {"lists": "7"}, {"protected": True}, [7, 3], "7"):
        payload = {**event.payload(), "versions": bad}
        assert MediaPosted.from_payload(PLATFORM, payload).versions is None, bad  # judged, without waiting


async def test_a_storm_of_wake_ups_is_one_catch_up_and_an_unreachable_version_does_not_hold_an_item(
    pair, photos
) -> None:
    a, b = pair
    await b.core.load_lists()
    follower = b.core.index_gate.catchers[ChangeKind.LISTS].follower
    calls = 0
    catch_up = follower.catch_up

    async def counted() -> int:
        nonlocal calls
        calls += 1
        return await catch_up()

    follower.catch_up = counted  # type: ignore[method-assign]
    await a.command("block", reply_to=a.event("m1", jpeg(photos["coffee"])))
    for _ in range(100):
        b.core.index_gate.kick(ChangeKind.LISTS)
    await b.core.index_gate.catchers[ChangeKind.LISTS].kick()
    assert calls == 1 and len(b.core.lists.index) == 1
    # a version the database never reached (a restored backup): one catch-up, then judged anyway
    head = await b.store.last_change(ChangeKind.LISTS)
    assert not await b.core.index_gate.ready(IndexVersions(head + 5, 0))
    assert b.core.index_gate.gave_up == 1 and calls == 2 and follower.seen == head


async def test_readiness_reports_each_index_lag_and_a_stale_one_makes_the_process_unready(pair, photos) -> None:
    a, b = pair
    await b.core.load_lists()
    app = type("App", (), {"core": b.core, "store": b.store})()
    await a.command("block", reply_to=a.event("m1", jpeg(photos["coffee"])))
    behind = await readiness(app)
    assert behind.ready and behind.index["lists"]["behind"] >= 1  # a changed the lists; b has not read them yet
    await b.core.sync_lists()
    caught_up = await readiness(app)
    assert caught_up.index["lists"]["behind"] == 0 and caught_up.checks["indexes"] == "ok"
    # following stopped (the store's changes unread for minutes): not ready, and said why
    b.core.index_gate.catchers[ChangeKind.LISTS].follower.caught_up_at = time.monotonic() - 10 * INDEX_STALE_SECONDS
    stale = await readiness(app)
    assert not stale.ready and stale.checks["indexes"].startswith("lists last read the store's changes")


async def test_on_postgresql_a_change_reaches_the_other_instance_by_its_notice_without_a_poll(pair, photos) -> None:
    a, b = pair
    if b.store.backend != "postgresql":
        assert [k async for k in b.store.change_notices()] == []  # SQLite sends none: the polls carry changes
        return
    await b.start()  # listens; its polls are an hour apart here
    await a.command("block", reply_to=a.event("m1", jpeg(photos["coffee"])))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(b.core.lists.index) < 1:  # b's own state: the entry applied from the log
        assert loop.time() < deadline, "the notice did not wake the other instance's follower"
        await asyncio.sleep(0.05)
    assert b.core.lists.info(next(iter(await b.store.all_lists())).id) is not None


async def test_an_item_is_not_held_while_the_protected_photos_are_still_loading(pair) -> None:
    _, b = pair
    protected = b.core.index_gate.catchers[ChangeKind.PROTECTED].follower
    assert not protected.loaded  # as while the background load of a large set runs
    assert await b.core.index_gate.ready(IndexVersions(0, 5))  # matched against what is loaded so far
    assert not protected.loaded and b.core.index_gate.gave_up == 0


@pytest.mark.parametrize("pair", ["postgresql"], indirect=True)
async def test_a_lost_notice_connection_is_opened_again_and_the_changes_made_meanwhile_are_read(
    pair, photos, postgres_url
) -> None:
    a, b = pair
    await b.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    with psycopg.connect(postgres_url, autocommit=True) as c:
        listening = "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN vigil_changes'"
        while not (pids := [r[0] for r in c.execute(listening).fetchall()]):
            assert loop.time() < deadline, "the instance never listened"
            await asyncio.sleep(0.05)
        for pid in pids:  # the server drops the listening connection (a restart, a network cut)
            c.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await a.command("block", reply_to=a.event("m1", jpeg(photos["coffee"])))
    while len(b.core.lists.index) < 1:  # b's own state; its polls are an hour apart here
        assert loop.time() < deadline, "the change made while the connection was lost never arrived"
        await asyncio.sleep(0.05)
