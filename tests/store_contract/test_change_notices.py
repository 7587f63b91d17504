"""Change notices on every backend: PostgreSQL tells a listener after the commit which change log
grew (NOTIFY in the logging transaction, folded to one per transaction), whoever made the change;
SQLite tells nothing and its iterator ends at once (the followers' polls alone)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.store.records import ChangeKind
from tests.store_contract.conftest import Backend


async def test_a_listener_hears_which_log_grew_after_the_commit(store: Any, backend: Backend) -> None:
    notices = store.change_notices()
    if backend.name == "sqlite":
        assert [k async for k in notices] == []  # no notices: nothing to wait for
        return
    heard: list[ChangeKind] = []
    got_protected = asyncio.Event()

    async def listen() -> None:
        async for kind in notices:
            heard.append(kind)
            if kind is ChangeKind.PROTECTED:
                got_protected.set()

    task = asyncio.create_task(listen())
    try:
        other = await backend.open()  # another process makes the changes
        # listening starts with the iterator: wait until a change made now is heard
        async with asyncio.timeout(30):
            while ChangeKind.LISTS not in heard:
                lst = await other.create_list(f"partner-{len(heard)}-{id(heard)}", kind="block")
                await other.add_entry(lst.id, sha256="ab" * 32, added_by="test")
                await asyncio.sleep(0.2)
            owner = await other.operator_owner("Bea", create=True)
            await other.add_protected_photo(owner.id, "QUJDREVGR0hJSktMTU5PUA==", source="operator")
            await got_protected.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(heard) == {ChangeKind.LISTS, ChangeKind.PROTECTED}
