"""Matrix policy rooms end to end on the real Synapse: image-hash rules (MSC4113) become an instance list.

A policy author keeps a public room of rules; a room's moderator makes Vigil follow it; a copy
of a listed image is redacted, and once the rule is removed the next copy stays.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import sys

import numpy as np
import pytest
import pytest_asyncio
from nio import RoomPreset, RoomVisibility
from PIL import Image

from bot.platforms.matrix_policy import parse_media_hash
from detectors.hashing import perceptual_hashes
from tests.support.detector_images import file_images
from tests.support.matrix_client import HumanClient
from tests.support.matrix_harness import (
    Inbox,
    matrix_env,
    new_user,
    people,
    protected_room,
    running_matrix_vigil,
    wait_redacted,
    write_matrix_config,
)
from tests.support.vigil_harness import ROOT, jpeg
from tests.test_matrix import bot_says, checked

pytestmark = pytest.mark.synapse
shared_loop = pytest.mark.asyncio(loop_scope="module")

RULE = "m.policy.media_hash"


@pytest.fixture(scope="module")
def photo():
    return next(v for k, v in file_images().items() if "coffee" in k)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vigil(synapse, marker_model, tmp_path_factory):
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path_factory.mktemp("vigil"), synapse, bot, marker_model)
    async with running_matrix_vigil(cfg, matrix_env(bot)) as app:
        app.bot = bot  # type: ignore[attr-defined]
        app.config_path = cfg  # type: ignore[attr-defined]
        yield app


def pdq_of(data: bytes) -> tuple[str, int]:
    pdq, quality, _, _ = perceptual_hashes(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return pdq, quality


async def policy_room(author: HumanClient, *, encrypted: bool = False) -> tuple[str, str]:
    """A public policy room with an alias, as Draupnir or Meowlnir keep them: (alias, room id)."""
    local = f"bans-{secrets.token_hex(4)}"
    encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    initial = [encryption] if encrypted else []
    got = await author.nio.room_create(
        visibility=RoomVisibility.public,
        preset=RoomPreset.public_chat,
        alias=local,
        name="Shared bans",
        initial_state=initial,
    )
    return f"#{local}:localhost", got.room_id


async def put_rule(author: HumanClient, room_id: str, state_key: str, content: dict, kind: str = RULE) -> str:
    got = await author.nio.room_put_state(room_id, kind, content, state_key=state_key)
    return got.event_id


async def policy_list_size(app, ref: str, want: int, timeout: float = 30) -> None:
    """Until Vigil's list for the policy room holds ``want`` entries, in the store and in the running index."""
    store = app.core.store
    for _ in range(int(timeout * 10)):
        lst = await store.list_by_name(f"policy:{ref}")
        if lst is not None and len(await store.entries(lst.id)) == want and app.core.lists.size(lst.id) == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the list of {ref} does not hold {want} entries after {timeout} s")


def test_media_hash_rules_are_read_in_one_shape_tolerant_of_quality_strict_on_the_rest():
    h = "ab" * 32
    rule = parse_media_hash(h, {"m.pdqhash": {"hash": h.upper(), "quality": "87"}, "reason": "spam"})
    assert (rule.pdq, rule.quality, rule.reason) == (h, 87, "spam")
    assert parse_media_hash(h, {"space.midnightthoughts.pdqhash": {"hash": h, "quality": 60}}).quality == 60
    assert parse_media_hash(h, {"m.pdqhash": {"hash": h, "quality": 60.0}}).quality == 60
    assert parse_media_hash(h, {}) is None  # removed (redacted or emptied)
    from bot.platforms.matrix_policy import BadPolicyRule

    for bad in (
        {"m.pdqhash": {"hash": h[:-1], "quality": 50}},
        {"m.pdqhash": {"hash": "zz" * 32, "quality": 50}},
        {"m.pdqhash": {"hash": h, "quality": 101}},
        {"m.pdqhash": {"hash": h, "quality": True}},
        {"m.pdqhash": {"hash": h, "quality": "fifty"}},
        {"m.pdqhash": {"hash": h, "quality": 50}, "reason": "x" * 501},
        {"m.pdqhash": {"hash": "cd" * 32, "quality": 50}},  # differs from the state key
        {"reason": "no hash"},
    ):
        with pytest.raises(BadPolicyRule):
            parse_media_hash(h, bad)


def test_ban_rules_take_globs_literally_and_only_ban_recommendations():
    from bot.platforms.matrix_policy import BadPolicyRule, glob_match, parse_user_rule

    assert glob_match("@spam-*:example.org", "@spam-42:example.org")
    assert glob_match("@spam-?:example.org", "@spam-4:example.org")
    assert not glob_match("@spam-?:example.org", "@spam-42:example.org")
    assert not glob_match("@spam.*", "@spamX")  # no regular expressions from the network
    assert glob_match("*", "@anyone:example.org")
    rule = parse_user_rule("r", {"entity": "@a*:x", "recommendation": "m.ban", "reason": "spam"})
    assert rule.matches("@abc:x") and not rule.matches("@b:x")
    assert parse_user_rule("r", {"entity": "@a:x", "recommendation": "m.mute"}) is None  # not a ban
    assert parse_user_rule("r", {}) is None
    with pytest.raises(BadPolicyRule):
        parse_user_rule("r", {"entity": 5, "recommendation": "m.ban"})


def test_policy_rooms_in_the_config_are_checked(tmp_path):
    from bot.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text('[matrix]\npolicy_rooms = ["#bans:example.org", "!abc:example.org"]\n')
    assert load_config(path, env={}).matrix.policy_rooms == ("#bans:example.org", "!abc:example.org")
    path.write_text('[matrix]\npolicy_rooms = ["bans"]\n')
    with pytest.raises(ConfigError, match="policy_rooms"):
        load_config(path, env={})


@shared_loop
async def test_an_image_hash_rule_redacts_a_copy_and_its_removal_lets_the_next_copy_through(synapse, vigil, photo):
    async with people(synapse, "owner", "member", "author") as (owner, member, author):
        alias, policy_id = await policy_room(author)
        data = jpeg(photo, 90)
        pdq, quality = pdq_of(data)
        # a malformed rule beside it is skipped, not fatal
        await put_rule(author, policy_id, "0" * 64, {"m.pdqhash": {"hash": "0" * 63, "quality": "80"}})
        content = {"m.pdqhash": {"hash": pdq, "quality": str(quality)}, "reason": "known spam"}
        rule = await put_rule(author, policy_id, pdq, content)
        room = await protected_room(owner, vigil.bot.user_id, members=[member])
        await owner.send_text(room.room_id, f"!vigil policy follow {alias}")
        assert "1 image-hash rule," in await bot_says(owner, room.room_id, vigil.bot.user_id, "now follows")
        lst = await vigil.core.store.list_by_name(f"policy:{alias}")
        assert (lst.scope, lst.kind, lst.label) == ("instance", "block", "policy")
        assert [e.note for e in await vigil.core.store.entries(lst.id)] == ["known spam"]

        copy = await member.send_image(room.room_id, jpeg(photo, 70), "image/jpeg")
        await wait_redacted(owner, room.room_id, copy)

        await author.redact(policy_id, rule, "not spam after all")
        await policy_list_size(vigil, alias, 0)
        again = await member.send_image(room.room_id, jpeg(photo, 70), "image/jpeg")
        await checked(vigil, again)
        assert not await owner.redacted(room.room_id, again)

        # a rule added while followed counts at once; emptying its content removes it
        await put_rule(author, policy_id, pdq, {"space.midnightthoughts.pdqhash": {"hash": pdq, "quality": quality}})
        await policy_list_size(vigil, alias, 1)
        await put_rule(author, policy_id, pdq, {})
        await policy_list_size(vigil, alias, 0)

        # a Telegram group can follow the same instance list
        assert await vigil.core.store.follow("telegram", "-1001234", lst.id)
        await owner.send_text(room.room_id, "!vigil policy list")
        assert f"policy:{alias}" in await bot_says(owner, room.room_id, vigil.bot.user_id, "Policy rooms followed here")


@shared_loop
async def test_an_encrypted_policy_room_is_refused_and_left(synapse, vigil):
    async with people(synapse, "owner", "author") as (owner, author):
        alias, policy_id = await policy_room(author, encrypted=True)
        room = await protected_room(owner, vigil.bot.user_id)
        await owner.send_text(room.room_id, f"!vigil policy follow {alias}")
        said = await bot_says(owner, room.room_id, vigil.bot.user_id, "Not followed")
        assert "encrypted" in said
        assert await vigil.core.store.list_by_name(f"policy:{alias}") is None
        assert policy_id not in vigil.core.platforms["matrix"].policy.rooms


async def membership(client: HumanClient, room_id: str, user_id: str) -> str | None:
    got = await client.nio.room_get_state_event(room_id, "m.room.member", user_id)
    return getattr(got, "content", {}).get("membership")


async def decided(app, room_id: str, user_id: str, timeout: float = 30) -> str:
    """Until Vigil has recorded its decision on a member for a ban rule; returns it."""
    from bot.platforms.matrix_policy_bans import done_key

    for _ in range(int(timeout * 10)):
        if (outcome := await app.core.store.get_state(done_key(room_id, user_id))) is not None:
            return outcome
        await asyncio.sleep(0.1)
    raise AssertionError(f"no policy decision on {user_id} in {room_id} after {timeout} s")


@shared_loop
async def test_a_ban_rule_bans_a_matching_member_but_never_a_moderator_and_report_mode_only_tells(synapse, vigil):
    bot = vigil.bot.user_id
    names = ("owner", "baddie", "baddie", "bystander", "author")
    async with people(synapse, *names) as (owner, bad, bad_mod, good, author):
        alias, policy_id = await policy_room(author)
        entity = "@baddie-*:localhos?"
        rule = {"entity": entity, "recommendation": "m.ban", "reason": "spam ring"}
        await put_rule(author, policy_id, "rule-1", rule, kind="m.policy.rule.user")
        room = await protected_room(owner, bot, members=[bad, good], moderators=[bad_mod])
        await owner.send_text(room.room_id, f"!vigil policy follow {alias}")
        await bot_says(owner, room.room_id, bot, "now follows")
        assert await decided(vigil, room.room_id, bad.user_id) == "banned"
        assert await membership(owner, room.room_id, bad.user_id) == "ban"
        assert await membership(owner, room.room_id, bad_mod.user_id) == "join"  # a moderator: never banned
        assert await membership(owner, room.room_id, good.user_id) == "join"
        inbox = Inbox(owner, bot)
        await inbox.wait(lambda i: any(f"Vigil banned {bad.user_id}" in t for t in i.texts()))
        assert "spam ring" in next(t for t in inbox.texts() if "Vigil banned" in t)

        # report mode: a matching member who joins later is reported, not banned
        other = await owner.create_room("Report only", invite=[bot], power_levels={bot: 50})
        await owner.nio.room_put_state(other, "m.room.join_rules", {"join_rule": "public"})
        async with people(synapse, "baddie") as (late,):
            await wait_joined_bot(owner, other, bot)
            await owner.send_text(other, "!vigil policy mode report")
            await bot_says(owner, other, bot, "reported to the moderators")
            await owner.send_text(other, f"!vigil policy follow {policy_id}")
            await bot_says(owner, other, bot, "now follows")
            await late.join(other)
            assert await decided(vigil, other, late.user_id) == "reported"
            assert await membership(owner, other, late.user_id) == "join"
            await inbox.wait(lambda i: any(f"{late.user_id} in Report only matches a ban rule" in t for t in i.texts()))


@shared_loop
async def test_a_spanish_room_reads_policy_replies_and_ban_notices_in_spanish(synapse, vigil):
    """The room's language (`!vigil lang es`) holds for `!vigil policy` too, refusals and ban notices included."""
    bot = vigil.bot.user_id
    async with people(synapse, "owner", "baddie", "author") as (owner, bad, author):
        alias, policy_id = await policy_room(author)
        rule = {"entity": "@baddie-*:localhost", "recommendation": "m.ban", "reason": "spam ring"}
        await put_rule(author, policy_id, "rule-1", rule, kind="m.policy.rule.user")
        _, secret_id = await policy_room(author, encrypted=True)
        room = await protected_room(owner, bot, members=[bad])
        await owner.send_text(room.room_id, "!vigil lang es")
        await bot_says(owner, room.room_id, bot, "Idioma")
        await owner.send_text(room.room_id, "!vigil policy list")
        said = await bot_says(owner, room.room_id, bot, "Esta sala no sigue ninguna sala de políticas.")
        assert "Solo se pueden seguir salas de políticas públicas y sin cifrar." in said
        await owner.send_text(room.room_id, f"!vigil policy follow {secret_id}")
        said = await bot_says(owner, room.room_id, bot, "No se sigue:")
        assert "la sala está cifrada" in said and "encrypted" not in said
        await owner.send_text(room.room_id, f"!vigil policy follow {alias}")
        said = await bot_says(owner, room.room_id, bot, "Esta sala sigue ahora la sala de políticas")
        assert f"0 reglas de hash de imagen, guardadas como la lista policy:{alias}." in said
        assert await decided(vigil, room.room_id, bad.user_id) == "banned"
        inbox = Inbox(owner, bot)
        await inbox.wait(lambda i: any(f"Vigil expulsó a {bad.user_id}" in t for t in i.texts()))
        notice = next(t for t in inbox.texts() if "Vigil expulsó a" in t)
        assert f"regla de expulsión de la sala de políticas {policy_id}" in notice
        assert notice.endswith("Motivo de la regla: spam ring")
        await owner.send_text(room.room_id, "!vigil policy mode report")
        await bot_says(owner, room.room_id, bot, "ahora se comunican a los moderadores, sin expulsarlos.")


async def wait_joined_bot(owner: HumanClient, room_id: str, bot: str) -> None:
    from tests.support.matrix_harness import wait_joined

    await wait_joined(owner, room_id, bot)


async def publish(app, list_name: str, room: str) -> str:
    """`vigil hash publish` as the operator runs it, beside the running bot (same data_dir and account)."""
    env = {**os.environ, **matrix_env(app.bot)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "hash",
        "publish",
        list_name,
        "--room",
        room,
        "--config",
        str(app.config_path),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


@shared_loop
async def test_a_published_list_is_seen_by_a_second_vigil_and_a_removed_entry_is_redacted(
    synapse, vigil, photo, marker_model, tmp_path
):
    first = vigil.bot.user_id
    async with people(synapse, "author", "owner", "member") as (author, owner, member):
        alias, policy_id = await policy_room(author)
        levels = (await author.nio.room_get_state_event(policy_id, "m.room.power_levels")).content
        await author.set_power_levels(policy_id, {**levels, "users": {**levels.get("users", {}), first: 50}})
        await vigil.core.platforms["matrix"].client.join(policy_id)
        store = vigil.core.store
        lst = await store.create_list(f"shared-{secrets.token_hex(3)}", kind="block", label="spam")
        pdq, quality = pdq_of(jpeg(photo, 90))
        listed = await store.add_entry(lst.id, pdq=pdq, pdq_quality=quality, note="seen in 3 rooms")
        await store.add_entry(lst.id, pdq="f0" * 32, pdq_quality=80, phash="ab" * 8)
        assert "2 rules sent, 0 redacted" in await publish(vigil, lst.name, alias)
        state = await author.nio.room_get_state(policy_id)
        rules = [e for e in state.events if e["type"] == RULE]
        assert sorted(e["state_key"] for e in rules) == sorted([pdq, "f0" * 32])
        assert all(set(e["content"]) == {"m.pdqhash", "reason"} for e in rules)  # PDQ only: no other hash leaves

        second = new_user(synapse, "vigil2")
        cfg = write_matrix_config(tmp_path, synapse, second, marker_model)
        async with running_matrix_vigil(cfg, matrix_env(second)) as other:
            room = await protected_room(owner, second.user_id, members=[member])
            await owner.send_text(room.room_id, f"!vigil policy follow {alias}")
            assert "2 image-hash rules" in await bot_says(owner, room.room_id, second.user_id, "now follows")
            theirs = await other.core.store.list_by_name(f"policy:{alias}")
            assert "seen in 3 rooms" in [e.note for e in await other.core.store.entries(theirs.id)]
            copy = await member.send_image(room.room_id, jpeg(photo, 70), "image/jpeg")
            await wait_redacted(owner, room.room_id, copy)

            await store.remove_entry(listed.id)
            assert "0 rules sent, 1 redacted, 1 already there" in await publish(vigil, lst.name, alias)
            await policy_list_size(other, alias, 1)
            assert "0 rules sent, 0 redacted, 1 already there" in await publish(vigil, lst.name, alias)  # idempotent
            again = await member.send_image(room.room_id, jpeg(photo, 70), "image/jpeg")
            await checked(other, again)
            assert not await owner.redacted(room.room_id, again)
