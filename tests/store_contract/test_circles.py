"""The store contract for circles, on both backends: members, shared bans, the block lists a
member matches through its circles, and a group that changed its id staying in its circle."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import BadStoreValue
from bot.store.circles import MAX_CIRCLE_GROUPS

T, M = "telegram", "matrix"
ROOM = "!parents:example.org"


async def test_a_circle_holds_telegram_and_matrix_groups_and_changes_by_name(store: Any) -> None:
    c = await store.add_to_circle("schools", [(T, "-1001"), (M, ROOM), (T, "-1001")])
    assert c.name == "schools" and not c.shared_bans
    assert c.members == ((M, ROOM), (T, "-1001"))
    again = await store.add_to_circle("schools", [(T, "-1002")], shared_bans=True)
    assert again.id == c.id and again.shared_bans and len(again.members) == 3
    unchanged = await store.add_to_circle("schools", [])  # None leaves shared bans as they are
    assert unchanged.shared_bans
    assert [x.name for x in await store.circles_of(T, "-1002")] == ["schools"]
    assert await store.circles_of(T, "-5") == []
    assert await store.remove_from_circle("schools", [(T, "-1002"), (T, "-9")]) == 1
    assert [x.members for x in await store.circles()] == [((M, ROOM), (T, "-1001"))]
    assert await store.delete_circle("schools") is True
    assert await store.delete_circle("schools") is False
    assert await store.circles() == []
    assert await store.get_group(T, "-1001") is not None  # the groups stay


async def test_a_member_matches_the_other_members_own_block_lists_only(store: Any) -> None:
    a_block = await store.group_list(T, "-1", "block")
    await store.group_list(T, "-1", "allow")  # an allow list is never shared: it would let copies through
    b_block = await store.group_list(M, ROOM, "block")
    outside = await store.group_list(T, "-3", "block")
    await store.add_to_circle("club", [(T, "-1"), (M, ROOM)])
    assert await store.circle_block_lists(T, "-1") == [b_block.id]
    assert await store.circle_block_lists(M, ROOM) == [a_block.id]
    assert await store.circle_block_lists(T, "-3") == []
    await store.add_to_circle("other", [(T, "-3"), (T, "-1")])
    assert await store.circle_block_lists(T, "-1") == sorted([b_block.id, outside.id])
    assert await store.circle_block_lists(M, ROOM) == [a_block.id]  # circles do not chain
    await store.remove_from_circle("club", [(M, ROOM)])
    assert await store.circle_block_lists(M, ROOM) == []


async def test_a_group_that_changed_its_id_stays_in_its_circle(store: Any) -> None:
    await store.add_to_circle("club", [(T, "-41"), (T, "-42")])
    assert await store.migrate_group(T, "-41", "-10041") is True
    assert (await store.circles())[0].members == ((T, "-10041"), (T, "-42"))


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "école", "semi;colon", None, 5])
async def test_bad_names_and_too_many_groups_are_refused_and_write_nothing(store: Any, name: Any) -> None:
    with pytest.raises(BadStoreValue):
        await store.add_to_circle(name, [(T, "-1")])
    assert await store.circles() == []


async def test_bad_groups_are_refused(store: Any) -> None:
    with pytest.raises(BadStoreValue):
        await store.add_to_circle("ok", [("irc", "#x")])
    with pytest.raises(BadStoreValue):
        await store.add_to_circle("ok", [(T, "")])
    await store.add_to_circle("ok", [(T, str(-i)) for i in range(1, MAX_CIRCLE_GROUPS + 1)])
    with pytest.raises(BadStoreValue):
        await store.add_to_circle("ok", [(T, "-999999")])
    assert len((await store.circles())[0].members) == MAX_CIRCLE_GROUPS
