"""The moderation flow without a chat platform: ``Moderator`` driven through a fake that implements the
``Platform`` protocol, with a real SQLite store, the real scanner and the marker model standing in for NudeNet.

Each test records a work item as an adapter would, lets the moderator handle it, and reads what it did
from the fake platform (deletes, private messages), the store (the work item, the audit record, the
action) and the metrics.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import load_config
from bot.core import Core
from bot.events import ButtonPressed, ChatRef, MediaPosted, MediaRef, UserRef
from bot.metrics import Metrics
from bot.platforms.base import EventSink, OutgoingMessage, Platform, Rights
from bot.platforms.errors import MissingRight
from bot.store.factory import open_store
from bot.store.protocol import Store
from detectors.scanner import Scanner
from tests.support.detector_images import file_images
from tests.support.marker_model import add_marker

PLATFORM = "telegram"  # the store knows the real platforms; the fake stands in for Telegram
GROUP = ChatRef(PLATFORM, "-100777", "Parents of 4B")
ADMIN = "1001"
MEMBER = UserRef(PLATFORM, "2002", "Max")


@dataclass
class FakePlatform:
    """Implements ``Platform``: serves the images it was given, keeps what Vigil did."""

    images: dict[str, bytes] = field(default_factory=dict)  # message id -> the posted file
    refuse_delete: bool = False
    name: str = PLATFORM
    username: str = "vigil_bot"
    connected: bool = True
    deleted: list[tuple[str, str]] = field(default_factory=list)
    private: list[tuple[str, OutgoingMessage]] = field(default_factory=list)
    in_chat: list[tuple[str, OutgoingMessage]] = field(default_factory=list)

    async def start(self, sink: EventSink) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def fetch_media(self, event: MediaPosted, max_bytes: int) -> bytes:
        return self.images[event.message_id]

    async def delete(self, chat_id: str, message_id: str) -> None:
        if self.refuse_delete:
            raise MissingRight("delete messages")
        self.deleted.append((chat_id, message_id))

    async def restrict(self, chat_id: str, user_id: str, until: datetime) -> None:
        pass

    async def unrestrict(self, chat_id: str, user_id: str) -> None:
        pass

    async def ban(self, chat_id: str, user_id: str) -> None:
        pass

    async def send_private(self, user_id: str, message: OutgoingMessage) -> str:
        self.private.append((user_id, message))
        return str(len(self.private))

    async def send_chat(self, chat_id: str, message: OutgoingMessage) -> str:
        self.in_chat.append((chat_id, message))
        return str(len(self.in_chat))

    async def send_file(self, user_id: str, filename: str, data: bytes, caption: str) -> None:
        pass

    async def admins(self, chat_id: str) -> frozenset[str]:
        return frozenset({ADMIN})

    async def owner(self, chat_id: str) -> str | None:
        return ADMIN

    async def is_member(self, chat_id: str, user_id: str) -> bool:
        return user_id in (ADMIN, MEMBER.user_id)

    async def rights(self, chat_id: str) -> Rights:
        return Rights(True, True, True)

    async def answer(self, press: ButtonPressed, text: str) -> None:
        pass


def _typed(platform: FakePlatform) -> Platform:
    return platform  # mypy checks here that the fake has the protocol's shape


@pytest.fixture(scope="module")
def photo_rgb() -> np.ndarray:
    return next(v for k, v in file_images().items() if "astronaut" in k)


@pytest.fixture(scope="module")
def photo(photo_rgb: np.ndarray) -> bytes:
    return _jpeg(photo_rgb)


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def marked(photo_rgb: np.ndarray) -> bytes:
    """The photo with the magenta marker the stand-in model reads as nudity."""
    return _jpeg(add_marker(photo_rgb))


@dataclass
class Bench:
    core: Core
    store: Store
    platform: FakePlatform
    metrics: Metrics

    async def post(self, message_id: str, data: bytes, sender: UserRef = MEMBER) -> int:
        """Records the image as an adapter would and has the moderator handle it; the work item's id."""
        self.platform.images[message_id] = data
        event = MediaPosted(
            GROUP, message_id, sender, datetime.now(UTC), MediaRef("photo", f"file-{message_id}", len(data))
        )
        work_id = await self.store.enqueue_work(PLATFORM, GROUP.chat_id, message_id, event.payload())
        assert await self.store.start_work(work_id) == 1
        assert await self.core.moderator.handle(work_id, event) is None  # all done here, nothing detached
        item = await self.store.work_item(work_id)
        assert item is not None and item.finished  # the moderator's own record that it decided
        return work_id

    async def scan_record(self, message_id: str) -> tuple[str, str | None]:
        """(label, decision) of the audit record of a message."""
        records = [r for r in await self.store.audit_for_group(PLATFORM, GROUP.chat_id) if r.kind == "scan"]
        found = [r for r in records if r.message_id == message_id]
        assert len(found) == 1
        return found[0].label, found[0].decision

    def count(self, name: str, labels: dict[str, str]) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def bench(tmp_path: Path, marker_model: Path) -> AsyncIterator[Bench]:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[vigil]
data_dir = "{tmp_path / "data"}"

[models.nudity]
path = "{marker_model}"

[pipeline]
workers = 1
scan_timeout = 60
batch_deletes = false
"""
    )
    config = load_config(path, env={})
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(config)
    scanner = await asyncio.to_thread(Scanner, config.detectors)
    metrics = Metrics()
    core = Core(config, store, scanner, metrics=metrics)
    platform = FakePlatform()
    core.add_platform(_typed(platform))
    await store.set_contact(PLATFORM, ADMIN, can_dm=True, language="en")
    await store.upsert_group(PLATFORM, GROUP.chat_id, GROUP.title)
    try:
        yield Bench(core, store, platform, metrics)
    finally:
        core.pipeline.executor.shutdown(wait=True)
        await store.close()


async def test_a_hit_is_deleted_and_the_admin_alerted(bench: Bench, marked: bytes) -> None:
    await bench.post("11", marked)
    assert bench.platform.deleted == [(GROUP.chat_id, "11")]
    assert [user for user, _ in bench.platform.private] == [ADMIN]
    alert = bench.platform.private[0][1]
    assert alert.text.startswith("Vigil deleted an image in Parents of 4B.")
    assert "could not" not in alert.text and alert.buttons  # the next steps come as buttons
    assert await bench.scan_record("11") == ("nudity", "delete")
    assert bench.count("vigil_actions_total", {"action": "delete", "result": "done"}) == 1


async def test_a_benign_image_is_left_alone(bench: Bench, photo: bytes) -> None:
    await bench.post("12", photo)
    assert bench.platform.deleted == []
    assert bench.platform.private == [] and bench.platform.in_chat == []
    assert await bench.scan_record("12") == ("clean", "allow")


async def test_an_exempt_member_is_reported_not_deleted(bench: Bench, marked: bytes) -> None:
    assert await bench.store.add_exemption(PLATFORM, GROUP.chat_id, MEMBER.user_id)
    await bench.post("13", marked)
    assert bench.platform.deleted == []
    assert [user for user, _ in bench.platform.private] == [ADMIN]  # the admins still hear of it
    assert "deleted" not in bench.platform.private[0][1].text.split("\n")[0]
    assert await bench.scan_record("13") == ("nudity", "report")


async def test_a_failed_delete_is_reported_as_failed(bench: Bench, marked: bytes) -> None:
    bench.platform.refuse_delete = True
    await bench.post("14", marked)
    assert bench.platform.deleted == []
    assert bench.count("vigil_actions_total", {"action": "delete", "result": "no_right"}) == 1
    action = await bench.store.record_action(PLATFORM, GROUP.chat_id, "14", "delete", {})
    assert action.state == "failed"
    assert [user for user, _ in bench.platform.private] == [ADMIN]
    told = bench.platform.private[0][1].text
    assert "could not delete it" in told and "Delete the message by hand" in told
    assert "right to delete messages" in told  # why, and what the admins can do about it
