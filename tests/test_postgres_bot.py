"""The whole bot on PostgreSQL: the real python-telegram-bot against the Bot API emulator, the store
on the real PostgreSQL server the suite starts ([database] url). A benign photo stays, a nude one
goes with one alert per admin, and a list entry added from the command line while the bot runs is
followed through PostgreSQL's list change log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import psycopg
import pytest

from bot.__main__ import main as vigil_main
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.detector_images import file_images
from tests.support.marker_model import add_marker
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config

T = "telegram"


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    images = file_images()
    return {name: next(v for k, v in images.items() if name in k) for name in ("astronaut", "coffee")}


@pytest.fixture
async def emu():
    e = BotApiEmulator(token=TOKEN)
    await e.start()
    yield e
    await e.stop()


def config(tmp_path: Path, emu: BotApiEmulator, marker_model: Path, url: str) -> Path:
    return write_config(tmp_path, emu.url, marker_model, extra=f'[database]\nurl = "{url}"\n')


async def checked(app, chat: int, scans: int, timeout: float = 30) -> None:
    """Wait for Vigil's own record: ``scans`` scan records for the chat and nothing pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = [r for r in await app.store.audit_for_group(T, str(chat)) if r.kind == "scan"]
        if len(records) >= scans and not await app.store.pending_work():
            return
        assert loop.time() < deadline, f"{len(records)} of {scans} scans recorded"
        await asyncio.sleep(0.05)


async def test_the_bot_moderates_with_its_store_on_postgresql(emu, tmp_path, marker_model, photos, postgres_url):
    owner = emu.add_user("Olivia", username="olivia", language_code="en")
    admin = emu.add_user("Ana", username="ana", language_code="es")
    member = emu.add_user("Max", username="max")
    chat = emu.add_group("Year 9 parents", creator=owner, admins=[admin], members=[member], bot_rights=full_rights())
    emu.start_private(owner)
    emu.start_private(admin)
    cfg = config(tmp_path, emu, marker_model, postgres_url)
    async with running_vigil(cfg) as app:
        assert app.store.backend == "postgresql"
        benign = emu.post_photo(chat, member, jpeg(photos["astronaut"]))
        await checked(app, chat, 1)
        assert any(m["message_id"] == benign for m in emu.messages_in(chat))
        nude = emu.post_photo(chat, member, jpeg(add_marker(photos["astronaut"])))
        await emu.wait_for(lambda: not any(m["message_id"] == nude for m in emu.messages_in(chat)), timeout=30)
        await checked(app, chat, 2)
        # an alert's first message carries the details button (the evidence record comes on request)
        alerted = [u for u in (owner, admin) for m in emu.sent_to(u) if "details:" in str(m.get("reply_markup"))]
        assert sorted(alerted) == sorted([owner, admin])  # one alert each

        # the operator blocks an image from the command line while the bot runs
        image = tmp_path / "coffee.jpg"
        image.write_bytes(jpeg(photos["coffee"]))
        for args in (
            ["hash", "add", str(image), "--list", "partner"],
            ["hash", "follow", "partner", "--group", f"telegram:{chat}"],
        ):
            assert await asyncio.to_thread(vigil_main, [*args, "--config", str(cfg)]) == 0
        lists = app.core.lists  # the bot follows the change log: wait for it to hold the entry
        await emu.wait_for(lambda: lists.index is not None and len(lists.index) >= 1, timeout=30)
        copy = emu.post_photo(chat, member, jpeg(photos["coffee"], 70))
        await emu.wait_for(lambda: not any(m["message_id"] == copy for m in emu.messages_in(chat)), timeout=30)
        await checked(app, chat, 3)
    with psycopg.connect(postgres_url) as c:
        assert c.execute("SELECT count(*) FROM audit WHERE kind = 'scan'").fetchone() == (3,)
        assert c.execute("SELECT count(*) FROM actions WHERE action = 'delete' AND state = 'done'").fetchone() == (2,)
        # every attempt ended: one counted each, no claim left on an item
        assert c.execute("SELECT attempts, taken_by, gave_up FROM work").fetchall() == [(1, None, False)] * 3
