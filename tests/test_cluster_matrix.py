"""Matrix on the split roles: `vigil run --role ingest` (the account's reading device) and
`--role worker` (a device of its own, no timeline) on the real PostgreSQL and the real Synapse
the suite starts.

- a blocked copy posted in a plain room and in an end-to-end encrypted room: the ingest decrypts
  the event and records the job with the attachment's key; the worker downloads and opens it,
  redacts it and alerts the room's moderator once (encrypted when the room is); the key is gone
  from the database once the work is finished, and no log or audit record carries it;
- the active ingest SIGKILLed: a standby on the same data directory takes over with the same
  device (and so the room keys), and the encrypted copy posted meanwhile is judged once;
- a worker's device lives in a slot of its own under the data directory, reused after a restart;
- direct rooms another process of the account opened are followed, never dropped by a save.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.__main__ import main as vigil_main
from bot.config import load_config
from bot.errors import ConfigError
from bot.platforms.matrix_worker import claim_slot
from bot.roles import Role, check_role
from tests.support.cluster_harness import Cluster, cluster_sections, until
from tests.support.marker_model import add_marker
from tests.support.matrix_harness import (
    Inbox,
    matrix_env,
    new_user,
    people,
    protected_room,
    wait_redacted,
    write_matrix_config,
)
from tests.support.matrix_proxy import MatrixProxy
from tests.support.synapse import Synapse
from tests.support.vigil_harness import jpeg

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(240)]


@pytest.fixture
def made() -> Iterator[list[Cluster]]:
    clusters: list[Cluster] = []
    yield clusters
    for c in clusters:
        c.stop()


async def block(cfg: Path, tmp: Path, image: bytes, rooms: list[str]) -> None:
    """The operator blocks an image for the rooms, from the command line."""
    path = tmp / "blocked.jpg"
    path.write_bytes(image)
    commands = [["hash", "add", str(path), "--list", "partner"]]
    commands += [["hash", "follow", "partner", "--group", f"matrix:{room}"] for room in rooms]
    for args in commands:
        assert await asyncio.to_thread(vigil_main, [*args, "--config", str(cfg)]) == 0


def devices(synapse: Synapse, user_id: str) -> list[str]:
    reply = synapse.admin_request("GET", f"/_synapse/admin/v2/users/{user_id}/devices")
    assert reply.status == 200, reply.body
    return sorted(str(d.get("display_name")) for d in reply.body["devices"])


async def test_a_worker_redacts_blocked_copies_in_plain_and_encrypted_rooms_and_alerts_once(
    synapse: Synapse,
    marker_model: Path,
    photo: np.ndarray,
    other_photo: np.ndarray,
    tmp_path: Path,
    postgres_url: str,
    made: list[Cluster],
) -> None:
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, extra=cluster_sections(postgres_url))
    cluster = Cluster(cfg, postgres_url, tmp_path, env=matrix_env(bot))
    made.append(cluster)
    ingest = cluster.start("ingest")
    worker = cluster.start("worker")
    await until(lambda: cluster.workers_ready() == 1, "the worker", cluster=cluster)
    await until(lambda: "matrix: syncing as" in ingest.log(), "the ingest reading", cluster=cluster)
    await until(lambda: "from worker device" in worker.log(), "the worker's device", cluster=cluster)

    people_ = people(synapse, "owner", "owner", "member", "member", "helper")
    async with people_ as (owner, owner_e2e, member, member_e2e, helper):
        plain = await protected_room(owner, bot.user_id, members=[member, helper])
        secret = await protected_room(owner_e2e, bot.user_id, members=[member_e2e], encrypted=True, name="Chess club")
        await block(cfg, tmp_path, jpeg(other_photo, 92), [plain.room_id, secret.room_id])
        # a benign image first: once it is judged, the worker has the lists the block made
        benign = await member.send_image(plain.room_id, jpeg(photo), "image/jpeg")
        copy = await member.send_image(plain.room_id, jpeg(other_photo, 60), "image/jpeg")
        content = await member_e2e.media_content("m.image", jpeg(other_photo, 70), "image/jpeg", "image", encrypt=True)
        key = content["file"]["key"]["k"]
        sealed = await member_e2e.send(secret.room_id, "m.room.message", content)
        raw = synapse.request(
            "GET", f"/_matrix/client/v3/rooms/{secret.room_id}/event/{sealed}", token=member_e2e.user.access_token
        )
        assert raw.body["type"] == "m.room.encrypted"  # only a device with the room keys can read the event

        await wait_redacted(owner, plain.room_id, copy)
        await wait_redacted(owner_e2e, secret.room_id, sealed)
        await until(lambda: cluster.finished() == 3 and cluster.pending() == 0, "every image handled", cluster=cluster)
        assert not await owner.redacted(plain.room_id, benign)
        inboxes = [Inbox(owner, bot.user_id), Inbox(owner_e2e, bot.user_id)]
        for inbox in inboxes:
            await inbox.wait(lambda i: len(i.alerts()) == 1)
            await inbox.poll()  # one read after the work is finished: a second alert would be in it
            assert len(inbox.alerts()) == 1
        _, alert = inboxes[1].alerts()[0]
        assert getattr(alert, "decrypted", False), "the alert about an encrypted room arrives encrypted"
        # the direct room a worker opened is a direct room to the ingest too: a choice typed there is answered
        dm, alert = inboxes[0].alerts()[0]
        record = next(w for w in alert.body.split() if w.startswith("details:")).split(":", 1)[1]
        await owner.send_text(dm, f"!vigil details:{record}")
        await inboxes[0].wait(lambda i: any(f"!vigil export:{record}" in e.body for _, e in i.details()))
        assert any(copy in e.body for _, e in inboxes[0].details())

        # a promotion reaches the worker through its state-only sync: the next copy alerts the new moderator too
        levels = (await owner.nio.room_get_state_event(plain.room_id, "m.room.power_levels")).content
        levels["users"][helper.user_id] = 50
        changed = f"room {plain.room_id}: power levels changed"
        seen = worker.log().count(changed)
        await owner.set_power_levels(plain.room_id, levels)
        await until(lambda: worker.log().count(changed) > seen, "the worker following the room", cluster=cluster)
        again = await member.send_image(plain.room_id, jpeg(other_photo, 75), "image/jpeg")
        await wait_redacted(owner, plain.room_id, again)
        await until(lambda: cluster.finished() == 4 and cluster.pending() == 0, "the copy handled", cluster=cluster)
        helpers = Inbox(helper, bot.user_id)
        await helpers.wait(lambda i: len(i.alerts()) == 1)
        await inboxes[0].wait(lambda i: len(i.alerts()) == 2)

        # an encrypted photo edited into a blocked copy: the worker redacts the message and its edit
        # (the edit read back from the homeserver, which the worker's device cannot decrypt)
        edited = await member_e2e.send_image(secret.room_id, jpeg(photo, 80), "image/jpeg", encrypted_room=True)
        edit = await member_e2e.edit_media(secret.room_id, edited, jpeg(other_photo, 65), encrypted_room=True)
        await wait_redacted(owner_e2e, secret.room_id, edited)
        await wait_redacted(owner_e2e, secret.room_id, edit)
        await until(lambda: cluster.pending() == 0, "the edit handled", cluster=cluster)

    # the worker did the work with its own device: the ingest never judges (it runs no jobs)
    assert "worker 0" in " ".join(devices(synapse, bot.user_id))
    scans = cluster.scans_per_message(secret.room_id)  # type: ignore[arg-type]
    assert scans[sealed] == 1 and scans[edited] == 2, scans  # the message as posted, then its edit
    # the key lived in the work item only while it was open: no table keeps it (audit, jobs, state)
    tables = cluster.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE'"
    )
    assert {"work", "audit", "procrastinate_jobs"} <= {t for (t,) in tables}
    for (table,) in tables:
        assert cluster.query(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', (f"%{key}%",)) == [(0,)]
    assert key not in ingest.log() + worker.log()


async def test_the_active_matrix_ingest_killed_a_standby_goes_on_with_the_same_device(
    synapse: Synapse,
    marker_model: Path,
    other_photo: np.ndarray,
    tmp_path: Path,
    postgres_url: str,
    made: list[Cluster],
) -> None:
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, extra=cluster_sections(postgres_url))
    cluster = Cluster(cfg, postgres_url, tmp_path, env=matrix_env(bot))
    made.append(cluster)
    ingests = [cluster.start("ingest"), cluster.start("ingest")]
    cluster.start("worker")
    await until(lambda: cluster.workers_ready() == 1, "the worker", cluster=cluster)
    await until(lambda: sum(p.active for p in ingests) == 1, "one active ingest", cluster=cluster)
    active = next(p for p in ingests if p.active)
    standby = next(p for p in ingests if p is not active)
    await until(lambda: standby.standing_by, "the other ingest standing by", cluster=cluster)
    await until(lambda: "matrix: syncing as" in active.log(), "the ingest reading", cluster=cluster)

    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot.user_id, members=[member], encrypted=True)
        await block(cfg, tmp_path, jpeg(other_photo, 92), [room.room_id])
        first = await member.send_image(room.room_id, jpeg(other_photo, 60), "image/jpeg", encrypted_room=True)
        await wait_redacted(owner, room.room_id, first)
        active.kill()
        second = await member.send_image(room.room_id, jpeg(other_photo, 70), "image/jpeg", encrypted_room=True)
        await until(lambda: standby.active, "the standby taking over", cluster=cluster)
        await wait_redacted(owner, room.room_id, second)  # decrypted by the same device, from the saved keys
        await until(lambda: cluster.finished() == 2 and cluster.pending() == 0, "both handled", cluster=cluster)
        inbox = Inbox(owner, bot.user_id)
        await inbox.wait(lambda i: len(i.alerts()) == 2)
        await inbox.poll()
        assert len(inbox.alerts()) == 2, "one alert per copy"
    assert cluster.scans_per_message(room.room_id) == {first: 1, second: 1}  # type: ignore[arg-type]
    reading = [line.rsplit("device ", 1)[1] for p in ingests for line in p.log().splitlines() if "syncing as" in line]
    assert len(reading) == 2 and reading[0] == reading[1], "the standby read with the same device"


async def test_a_matrix_worker_killed_mid_job_its_job_runs_on_the_other_workers_device(
    synapse: Synapse,
    marker_model: Path,
    other_photo: np.ndarray,
    tmp_path: Path,
    postgres_url: str,
    made: list[Cluster],
) -> None:
    bot = new_user(synapse, "vigil")
    async with MatrixProxy(synapse.base_url) as proxy:  # holds a download, as a slow remote server would
        extra = cluster_sections(postgres_url)
        cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, extra=extra, homeserver=proxy.url)
        cluster = Cluster(cfg, postgres_url, tmp_path, env=matrix_env(bot))
        made.append(cluster)
        ingest = cluster.start("ingest")
        workers = [cluster.start("worker"), cluster.start("worker")]
        await until(lambda: cluster.workers_ready() == 2, "two workers", cluster=cluster)
        await until(lambda: "matrix: syncing as" in ingest.log(), "the ingest reading", cluster=cluster)
        async with people(synapse, "owner", "member") as (owner, member):
            room = await protected_room(owner, bot.user_id, members=[member], encrypted=True)
            await block(cfg, tmp_path, jpeg(other_photo, 92), [room.room_id])
            content = await member.media_content("m.image", jpeg(other_photo, 60), "image/jpeg", "image", encrypt=True)
            media_id = content["file"]["url"].rsplit("/", 1)[1]
            proxy.stall(media_id)
            copy = await member.send(room.room_id, "m.room.message", content)
            await until(lambda: proxy.stalls_seen >= 1, "the download held", cluster=cluster)
            pid = await asyncio.to_thread(cluster.running_job_pid)
            victim = next(w for w in workers if w.pid == pid)
            victim.kill()
            proxy.unstall(media_id)
            await wait_redacted(owner, room.room_id, copy, timeout=60)
            await until(lambda: cluster.finished() == 1 and cluster.pending() == 0, "the copy handled", cluster=cluster)
            inbox = Inbox(owner, bot.user_id)
            await inbox.wait(lambda i: len(i.alerts()) == 1)
            await inbox.poll()
            assert len(inbox.alerts()) == 1
        assert cluster.attempts(copy) == (2, True)  # type: ignore[arg-type]
        assert cluster.scans_per_message(room.room_id) == {copy: 1}  # type: ignore[arg-type]
        names = " ".join(devices(synapse, bot.user_id))
        assert "worker 0" in names and "worker 1" in names, "each worker a device of its own"
        await asyncio.to_thread(cluster.stop)  # before the proxy: it would wait for their long polls


async def test_a_mute_made_by_a_worker_is_lifted_by_the_ingest_once_it_runs_out(
    synapse: Synapse,
    marker_model: Path,
    photo: np.ndarray,
    tmp_path: Path,
    postgres_url: str,
    made: list[Cluster],
) -> None:
    bot = new_user(synapse, "vigil")
    cfg = write_matrix_config(tmp_path, synapse, bot, marker_model, extra=cluster_sections(postgres_url))
    cluster = Cluster(cfg, postgres_url, tmp_path, env=matrix_env(bot))
    made.append(cluster)
    ingest = cluster.start("ingest")
    worker = cluster.start("worker")
    await until(lambda: cluster.workers_ready() == 1, "the worker", cluster=cluster)
    await until(lambda: "matrix: syncing as" in ingest.log(), "the ingest reading", cluster=cluster)
    await until(lambda: "from worker device" in worker.log(), "the worker's device", cluster=cluster)
    async with people(synapse, "owner", "member") as (owner, member):
        room = await protected_room(owner, bot.user_id, members=[member], bot_level=100)
        await owner.send_text(room.room_id, "!vigil action mute 30s")
        await owner.sync_until(
            lambda r, e: r == room.room_id and e.sender == bot.user_id and "mute 30s" in getattr(e, "body", ""), 30
        )
        # bytes no other test sends: Synapse quarantines a file by its hash
        hit = await member.send_image(room.room_id, jpeg(add_marker(photo, at=(53, 29))), "image/jpeg")
        await wait_redacted(owner, room.room_id, hit)
        # the worker muted (the ingest runs no jobs) and recorded it in the shared store, not its slot
        await until(
            lambda: cluster.pending() == 0 and cluster.query("SELECT 1 FROM mutes"), "the mute", cluster=cluster
        )
        assert cluster.query("SELECT room_id, user_id, level FROM mutes") == [(room.room_id, member.user_id, -1)]
        assert not list((tmp_path / "data").glob("matrix-workers/*/mutes.json"))
        worker.stop()  # no worker left: the ingest still lifts it
        lifted = f"the mute of {member.user_id} ran out and was lifted"
        await until(lambda: lifted in ingest.log(), "the ingest lifting the mute", timeout=120, cluster=cluster)
        levels = (await owner.nio.room_get_state_event(room.room_id, "m.room.power_levels")).content
        assert member.user_id not in levels.get("users", {})  # back to the room's default
        assert cluster.query("SELECT count(*) FROM mutes") == [(0,)]
        assert lifted not in worker.log()


def test_a_matrix_worker_needs_the_password_and_takes_a_device_slot_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\nurl = "postgresql://vigil@db.example.org/vigil"\n'
        '[matrix]\nhomeserver = "https://matrix.example.org"\nuser_id = "@vigil:example.org"\n'
        "[telegram]\nenabled = false\n"
    )
    with_token = load_config(path, env={"VIGIL_MATRIX_ACCESS_TOKEN": "syt_x"})
    check_role(with_token, Role.INGEST)  # the ingest reads: Matrix runs on the split roles
    with pytest.raises(ConfigError, match="matrix.password"):
        check_role(with_token, Role.WORKER)
    check_role(load_config(path, env={"VIGIL_MATRIX_PASSWORD": "pw"}), Role.WORKER)

    first, second = claim_slot(tmp_path / "w"), claim_slot(tmp_path / "w")
    assert (first.number, second.number) == (0, 1) and first.path != second.path
    os.close(first.fd)  # its process ended: the next worker takes its device back
    third = claim_slot(tmp_path / "w")
    assert third.number == 0
    os.close(second.fd)
    os.close(third.fd)


async def test_direct_rooms_another_process_opened_are_followed_and_never_dropped_by_a_save() -> None:
    import asyncio as aio

    from bot.platforms.matrix_direct import DirectRooms

    saved: dict[str, list[str]] = {"@amy:example.org": ["!worker:example.org"]}  # a worker's save

    class Raw:  # Vigil's own seam to the homeserver: m.direct as the account has it
        async def __call__(self, method: str, path: str, body: object = None, **kw: object) -> object:
            if method == "PUT":
                saved.clear()
                saved.update(body)  # type: ignore[arg-type]
            return {k: list(v) for k, v in saved.items()}

    ingest = DirectRooms(None, Raw(), "@vigil:example.org", aio.Event())  # type: ignore[arg-type]
    await ingest.remember("@bob:example.org", "!ingest:example.org")
    assert saved == {"@amy:example.org": ["!worker:example.org"], "@bob:example.org": ["!ingest:example.org"]}
    assert ingest.user_of["!worker:example.org"] == "@amy:example.org"  # a direct room here too
    ingest.follow({"@amy:example.org": ["!later:example.org", "not a room"], "bad": ["!x:example.org"]})
    assert ingest.by_user["@amy:example.org"] == ["!worker:example.org", "!later:example.org"]
    assert "!x:example.org" not in ingest.user_of
