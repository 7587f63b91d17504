"""The members' store (bot/store/members.py) on both backends: join times, the profile photo
checked once per group, retention and `vigil purge --user`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import BadStoreValue

T, M = "telegram", "matrix"


async def test_a_join_is_recorded_and_a_new_join_moves_the_time_on(store: Any) -> None:
    assert await store.member(T, "-100", "7") is None
    first = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    rec = await store.record_join(T, "-100", "7", first)
    assert (rec.platform, rec.chat_id, rec.user_id, rec.joined_at, rec.avatar) == (T, "-100", "7", first, "")
    assert await store.claim_avatar(T, "-100", "7", "AQAD-photo-1") is True
    again = await store.record_join(T, "-100", "7", first + timedelta(hours=3))
    assert again.joined_at == first + timedelta(hours=3) and again.avatar == "AQAD-photo-1"
    assert (await store.member(T, "-100", "7")).joined_at == first + timedelta(hours=3)
    assert await store.member(M, "-100", "7") is None  # platforms apart


async def test_a_photo_is_claimed_once_per_group_and_again_when_it_changes(store: Any) -> None:
    assert await store.claim_avatar(T, "-100", "7", "A") is True
    assert await store.claim_avatar(T, "-100", "7", "A") is False  # the same photo: nothing to check
    assert await store.claim_avatar(T, "-200", "7", "A") is True  # another group has its own lists
    assert await store.claim_avatar(T, "-100", "7", "B") is True  # a new photo
    assert await store.claim_avatar(T, "-100", "7", "A") is True  # back to the first: checked again
    assert await store.claim_avatar(T, "-100", "7", "A", hit=True) is True  # now a hit (a list changed)
    assert (await store.member(T, "-100", "7")).avatar_hit is True
    assert await store.claim_avatar(T, "-100", "7", "A", hit=True) is False
    unseen = await store.member(T, "-200", "7")
    assert unseen.joined_at < datetime(2001, 1, 1, tzinfo=UTC)  # there before Vigil: no hold
    with pytest.raises(BadStoreValue, match="avatar"):
        await store.claim_avatar(T, "-100", "7", "x" * 256)


async def test_retention_and_purge_forget_members(store: Any, backend: Any) -> None:
    await store.record_join(T, "-100", "7", datetime(2024, 5, 1, tzinfo=UTC))
    await store.record_join(T, "-200", "7", datetime(2024, 5, 1, tzinfo=UTC))
    await store.record_join(T, "-100", "8", datetime(2024, 5, 1, tzinfo=UTC))
    backend.clock.now += timedelta(days=40)
    await store.claim_avatar(T, "-100", "8", "C")  # seen again since
    assert await store.prune_members_before(backend.clock.now - timedelta(days=30)) == 2
    assert await store.member(T, "-100", "7") is None and await store.member(T, "-100", "8") is not None
    await store.record_join(T, "-300", "8", backend.clock.now)
    assert await store.forget_member(T, "8") == 2
    assert await store.member(T, "-100", "8") is None and await store.member(T, "-300", "8") is None


async def test_retention_keeps_join_times_for_the_longest_hold(store: Any, backend: Any) -> None:
    from bot.config import RetentionConfig
    from bot.retention import apply_retention

    await store.record_join(T, "-100", "7", backend.clock.now)
    backend.clock.now += timedelta(days=20)
    settings = RetentionConfig(audit_days=0, fingerprint_days=0, work_days=7)
    assert (await apply_retention(store, settings, backend.clock.now)).members == 0  # a 30-day hold still reads it
    backend.clock.now += timedelta(days=12)
    assert (await apply_retention(store, settings, backend.clock.now)).members == 1
    assert await store.member(T, "-100", "7") is None
