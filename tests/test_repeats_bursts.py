"""Repeats and bursts through the real python-telegram-bot and the Bot API emulator.

A file posted again is known before any download (Telegram's file_unique_id) and matched against
today's lists; a burst's deletes of one chat go out in batches behind one rate-limit wait.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.botapi import BotApiEmulator
from tests.support.detector_images import file_images
from tests.support.marker_model import add_marker, write_marker_model
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config
from tests.test_telegram import Group, wait_deleted


@pytest.fixture(scope="session")
def marker_model(tmp_path_factory):
    return write_marker_model(tmp_path_factory.mktemp("models") / "marker.onnx")


@pytest.fixture(scope="session")
def photo():
    return next(v for k, v in file_images().items() if "astronaut" in k)


@pytest.fixture(scope="session")
def other_photo():
    return next(v for k, v in file_images().items() if "coffee" in k)


@pytest.fixture
async def emu():
    e = BotApiEmulator(token=TOKEN)
    await e.start()
    yield e
    await e.stop()


async def settled(app, emu: BotApiEmulator) -> None:
    """Until Vigil has taken every update and finished every image it recorded."""
    await emu.wait_for(lambda: emu.pending_updates() == 0, timeout=30)
    for _ in range(600):
        if not await app.core.store.pending_chats() and app.core.pipeline.depth == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("Vigil did not finish its images within 30 s")


async def test_a_forwarded_hit_is_not_downloaded_again_and_is_deleted_in_another_group(
    emu, tmp_path, marker_model, photo
):
    first, second = Group(emu), Group(emu)
    fake = emu.upload(jpeg(add_marker(photo)), kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)):
        mid = emu.post_photo(first.chat, first.member, fake)
        await wait_deleted(first, mid)
        fetched = len(emu.calls_to("getFile"))
        again = emu.post_photo(second.chat, second.member, fake)  # the same file, passed to another group
        await wait_deleted(second, again)
        assert len(emu.calls_to("getFile")) == fetched  # known by its file_unique_id: no download


async def test_a_block_made_after_the_first_sighting_still_deletes_the_repeat(
    emu, tmp_path, marker_model, photo, other_photo
):
    g = Group(emu)
    clean = emu.upload(jpeg(other_photo), kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        seen = emu.post_photo(g.chat, g.member, clean)
        await settled(app, emu)
        assert g.present(seen)  # nothing against it yet
        emu.post_text(g.chat, g.owner, "/block", reply_to=seen)
        await wait_deleted(g, seen)
        fetched = len(emu.calls_to("getFile"))
        repeat = emu.post_photo(g.chat, g.member, clean)
        await wait_deleted(g, repeat)  # matched against today's list
        assert len(emu.calls_to("getFile")) == fetched


async def test_the_same_bytes_uploaded_again_are_downloaded_but_not_scanned_again(emu, tmp_path, marker_model, photo):
    g = Group(emu)
    data = jpeg(add_marker(photo))
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        scans = []
        real = app.core.scanner.scan
        app.core.scanner.scan = lambda *a, **k: scans.append(1) or real(*a, **k)
        first = emu.post_photo(g.chat, g.member, data)
        await wait_deleted(g, first)
        again = emu.post_photo(g.chat, g.member, data)  # uploaded anew: another file_unique_id
        await wait_deleted(g, again)
        assert len(scans) == 1


async def test_an_unscannable_file_is_checked_again_when_it_comes_back(emu, tmp_path, marker_model):
    g = Group(emu)
    broken = emu.upload(b"\xff\xd8\xff\xe0" + b"\x00" * 300, kind="photo", mime="image/jpeg")
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        emu.post_photo(g.chat, g.member, broken)
        await settled(app, emu)
        fetched = len(emu.calls_to("getFile"))
        emu.post_photo(g.chat, g.member, broken)
        await settled(app, emu)
        assert len(emu.calls_to("getFile")) == fetched + 1


async def test_a_rate_limit_on_the_first_delete_of_a_burst_is_waited_once_then_one_batched_call(
    emu, tmp_path, marker_model, photo
):
    g = Group(emu)
    copies = [emu.upload(jpeg(add_marker(photo), 70 + k), kind="photo", mime="image/jpeg") for k in range(8)]
    emu.hold("deleteMessage")  # the first delete is on its way while the burst is decided
    emu.fail_next("deleteMessage", times=1, status=429, retry_after=1)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        ids = [emu.post_photo(g.chat, g.member, ref) for ref in copies]

        async def decided() -> int:  # deletes Vigil recorded before trying them
            return len([a for a in await app.core.store.pending_actions("telegram") if a.action == "delete"])

        for _ in range(600):  # every hit decided while the first delete is still out
            if await decided() == len(ids):
                break
            await asyncio.sleep(0.05)
        assert await decided() == len(ids), "the chat's next images waited for the first image's delete"
        emu.release("deleteMessage")
        await settled(app, emu)
        assert not any(g.present(m) for m in ids)
        singles = emu.calls_to("deleteMessage")
        batches = emu.calls_to("deleteMessages")
        # one wait for the chat, not one per message: the first delete again, then every hit
        # decided meanwhile in one call
        assert [c.status for c in singles] == [429, 200] and int(singles[1].params["message_id"]) == ids[0]
        assert len(batches) == 1 and batches[0].ok and sorted(batches[0].params["message_ids"]) == sorted(ids[1:])
