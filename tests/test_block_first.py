"""A copy of a blocked image is deleted on its hashes alone, before the models run, through the real
python-telegram-bot and the Bot API emulator; anything else in the same chat still gets every model."""

from __future__ import annotations

import io

from PIL import Image

from tests.support.marker_model import add_marker
from tests.support.vigil_harness import jpeg, running_vigil, write_config
from tests.test_repeats_bursts import settled
from tests.test_telegram import Group, wait_deleted


def recompressed(rgb) -> bytes:
    """Other bytes, the same picture: what a member re-sharing a blocked image posts."""
    im = Image.fromarray(rgb)
    small = im.resize((im.width * 3 // 4, im.height * 3 // 4))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=70)
    return buf.getvalue()


async def test_a_copy_of_a_blocked_image_is_deleted_without_running_the_models(
    emu, tmp_path, marker_model, other_photo
):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        seen = emu.post_photo(g.chat, g.member, emu.upload(jpeg(other_photo), kind="photo", mime="image/jpeg"))
        await settled(app, emu)
        emu.post_text(g.chat, g.owner, "/block", reply_to=seen)
        await wait_deleted(g, seen)
        passes: list[bool] = []
        real = app.core.scanner.scan
        app.core.scanner.scan = lambda *a, **k: passes.append(k.get("models", True)) or real(*a, **k)
        copy = emu.post_photo(g.chat, g.member, emu.upload(recompressed(other_photo), kind="photo", mime="image/jpeg"))
        await wait_deleted(g, copy)
        assert passes == [False]  # the hashes-only pass, and nothing after it
        records = await app.core.store.audit_for_group("telegram", g.chat)
        scan = next(r for r in records if r.kind == "scan" and r.message_id == str(copy))
        assert scan.findings.get("models_run") is False  # the record says no model looked at it


async def test_an_image_that_matches_no_entry_still_gets_every_model(emu, tmp_path, marker_model, photo, other_photo):
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        seen = emu.post_photo(g.chat, g.member, emu.upload(jpeg(other_photo), kind="photo", mime="image/jpeg"))
        await settled(app, emu)
        emu.post_text(g.chat, g.owner, "/block", reply_to=seen)
        await wait_deleted(g, seen)
        passes: list[bool] = []
        real = app.core.scanner.scan
        app.core.scanner.scan = lambda *a, **k: passes.append(k.get("models", True)) or real(*a, **k)
        nude = emu.post_photo(g.chat, g.member, emu.upload(jpeg(add_marker(photo)), kind="photo", mime="image/jpeg"))
        await wait_deleted(g, nude)  # deleted for what the (marker) nudity model found
        assert passes == [False, True]


async def test_a_stale_block_entry_does_not_spare_an_image_the_models(emu, tmp_path, marker_model, photo):
    # a process whose lists lag behind the store still holds an entry an admin removed: its cheap
    # pass must not take that entry's word, or the image would skip the models and go through
    g = Group(emu)
    async with running_vigil(write_config(tmp_path, emu.url, marker_model)) as app:
        seen = emu.post_photo(g.chat, g.member, emu.upload(jpeg(photo), kind="photo", mime="image/jpeg"))
        await settled(app, emu)
        emu.post_text(g.chat, g.owner, "/block", reply_to=seen)
        await wait_deleted(g, seen)

        async def lagging(changes) -> None:  # this process applies no change from now on
            return None

        app.core.lists.apply = lagging
        store = app.core.store
        (group_list,) = [lst for lst in await store.lists_for_group("telegram", g.chat) if lst.kind == "block"]
        (entry,) = await store.entries(group_list.id)
        assert await store.remove_entry(entry.id)
        nude = emu.post_photo(g.chat, g.member, emu.upload(jpeg(add_marker(photo)), kind="photo", mime="image/jpeg"))
        await wait_deleted(g, nude)  # for what the nudity model found
        records = await store.audit_for_group("telegram", g.chat)
        scan = next(r for r in records if r.kind == "scan" and r.message_id == str(nude))
        assert scan.findings.get("models_run") is not False and scan.findings["nudity"]
