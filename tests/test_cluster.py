"""Vigil past one machine: `vigil run --role ingest` and `--role worker` processes on the real
PostgreSQL the suite starts, against the Bot API emulator. Jobs (Procrastinate) carry the work:

- a burst of blocked copies and benign photos in two groups, across two workers, one of which is
  SIGKILLed while it runs a job: that job runs on the other worker; every copy is deleted, every
  benign photo stays, each image is judged once and each admin alerted once per copy;
- the active ingest SIGKILLed mid-burst: a standby takes over, no update is lost, none is handled
  twice; an attempt that fails is queued again for its retry time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.__main__ import main as vigil_main
from tests.support.botapi import BotApiEmulator, full_rights
from tests.support.cluster_harness import Cluster, cluster_config, until
from tests.support.detector_images import file_images
from tests.support.vigil_harness import TOKEN, jpeg

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    images = file_images()
    return {name: next(v for k, v in images.items() if name in k) for name in ("astronaut", "coffee")}


@pytest.fixture
def cluster_factory(postgres_url: str, tmp_path: Path) -> Iterator[Callable[[Path], Cluster]]:
    made: list[Cluster] = []

    def make(config: Path) -> Cluster:
        c = Cluster(config, postgres_url, tmp_path)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def group(emu: BotApiEmulator, title: str) -> tuple[int, list[int], int]:
    """A group with two admins who can be written to, and a member who posts."""
    owner = emu.add_user(f"{title} owner")
    admin = emu.add_user(f"{title} admin")
    member = emu.add_user(f"{title} member")
    chat = emu.add_group(title, creator=owner, admins=[admin], members=[member], bot_rights=full_rights())
    emu.start_private(owner)
    emu.start_private(admin)
    return chat, [owner, admin], member


async def block(cfg: Path, tmp: Path, image: bytes, chats: list[int]) -> None:
    """The operator blocks an image for the groups, from the command line."""
    path = tmp / "blocked.jpg"
    path.write_bytes(image)
    commands = [["hash", "add", str(path), "--list", "partner"]]
    commands += [["hash", "follow", "partner", "--group", f"telegram:{chat}"] for chat in chats]
    for args in commands:
        assert await asyncio.to_thread(vigil_main, [*args, "--config", str(cfg)]) == 0


def alerts_to(emu: BotApiEmulator, user: int) -> int:
    """Alerts an admin received (each alert's first message carries the details button)."""
    return sum("details:" in str(m.get("reply_markup")) for m in emu.sent_to(user))


async def one_ingest_one_worker(cluster: Cluster, emu: BotApiEmulator) -> Cluster:
    """The cluster's two processes started, the worker ready and the ingest polling."""
    cluster.start("ingest")
    cluster.start("worker")
    await until(lambda: cluster.workers_ready() == 1, "the worker", cluster=cluster)
    await emu.wait_for(lambda: emu.polling, timeout=60, what="the ingest polling")
    return cluster


def present(emu: BotApiEmulator, chat: int, message_id: int) -> bool:
    return any(m["message_id"] == message_id for m in emu.messages_in(chat))


async def test_a_burst_across_two_workers_with_one_killed_mid_job(
    emu: BotApiEmulator,
    tmp_path: Path,
    marker_model: Path,
    photos: dict[str, np.ndarray],
    postgres_url: str,
    cluster_factory: Callable[[Path], Cluster],
) -> None:
    a, admins_a, member_a = group(emu, "Year 9 parents")
    b, admins_b, member_b = group(emu, "Chess club")
    cfg = cluster_config(tmp_path, emu.url, marker_model, postgres_url)
    await block(cfg, tmp_path, jpeg(photos["coffee"]), [a, b])
    cluster = cluster_factory(cfg)
    cluster.start("ingest")
    workers = [cluster.start("worker"), cluster.start("worker")]
    await until(lambda: cluster.workers_ready() == 2, "two workers", cluster=cluster)
    await emu.wait_for(lambda: emu.polling, timeout=60, what="the ingest polling")

    # a worker is killed while it runs a job (its download is held): the job runs on the other one
    emu.hold("getFile")
    first = emu.post_photo(a, member_a, jpeg(photos["coffee"], 70))
    await until(lambda: cluster.running_job_pid() is not None, "a job running", cluster=cluster)
    victim = next(w for w in workers if w.pid == cluster.running_job_pid())
    victim.kill()
    emu.release("getFile")

    hits: dict[int, list[int]] = {a: [first], b: []}
    benign: dict[int, list[int]] = {a: [], b: []}
    for i in range(4):
        for chat, member in ((a, member_a), (b, member_b)):
            hits[chat].append(emu.post_photo(chat, member, jpeg(photos["coffee"], 60 + 5 * i)))
            benign[chat].append(emu.post_photo(chat, member, jpeg(photos["astronaut"], 60 + 5 * i)))
    total = sum(len(v) for v in hits.values()) + sum(len(v) for v in benign.values())
    await until(lambda: cluster.finished() == total and cluster.pending() == 0, "every image handled", cluster=cluster)

    for chat in (a, b):
        assert not [m for m in hits[chat] if present(emu, chat, m)], "every blocked copy is deleted"
        assert all(present(emu, chat, m) for m in benign[chat]), "benign photos stay"
        assert cluster.scans_per_message(chat) == {str(m): 1 for m in hits[chat] + benign[chat]}
    for chat, admins in ((a, admins_a), (b, admins_b)):
        assert [alerts_to(emu, u) for u in admins] == [len(hits[chat])] * 2, "one alert per copy and admin"
    survivor = next(w for w in workers if w is not victim)
    assert survivor.proc is not None and survivor.proc.poll() is None


async def test_the_active_ingest_killed_mid_burst_a_standby_takes_over(
    emu: BotApiEmulator,
    tmp_path: Path,
    marker_model: Path,
    photos: dict[str, np.ndarray],
    postgres_url: str,
    cluster_factory: Callable[[Path], Cluster],
) -> None:
    chat, admins, member = group(emu, "Year 9 parents")
    cfg = cluster_config(tmp_path, emu.url, marker_model, postgres_url)
    await block(cfg, tmp_path, jpeg(photos["coffee"]), [chat])
    cluster = cluster_factory(cfg)
    ingests = [cluster.start("ingest"), cluster.start("ingest")]
    cluster.start("worker")
    await until(lambda: cluster.workers_ready() == 1, "the worker", cluster=cluster)
    await until(lambda: sum(p.active for p in ingests) == 1, "one active ingest", cluster=cluster)
    await emu.wait_for(lambda: emu.polling, timeout=60, what="the ingest polling")
    active = next(p for p in ingests if p.active)
    standby = next(p for p in ingests if p is not active)
    await until(lambda: standby.standing_by, "the other ingest standing by", cluster=cluster)
    assert not standby.active

    posted: list[tuple[int, bool]] = []
    for i in range(3):
        posted.append((emu.post_photo(chat, member, jpeg(photos["coffee"], 60 + 5 * i)), True))
        posted.append((emu.post_photo(chat, member, jpeg(photos["astronaut"], 60 + 5 * i)), False))
    await until(lambda: cluster.finished() + cluster.pending() >= 2, "the first images recorded", cluster=cluster)
    active.kill()  # mid-burst: some updates read, maybe not all confirmed
    for i in range(3):
        posted.append((emu.post_photo(chat, member, jpeg(photos["coffee"], 75 + 5 * i)), True))
        posted.append((emu.post_photo(chat, member, jpeg(photos["astronaut"], 75 + 5 * i)), False))
    await until(lambda: standby.active, "the standby taking over", cluster=cluster)
    await until(
        lambda: cluster.finished() == len(posted) and cluster.pending() == 0, "every image handled", cluster=cluster
    )

    assert cluster.scans_per_message(chat) == {str(m): 1 for m, _ in posted}, "none lost, none judged twice"
    assert [m for m, hit in posted if hit and present(emu, chat, m)] == []
    assert all(present(emu, chat, m) for m, hit in posted if not hit)
    hits = sum(hit for _, hit in posted)
    assert [alerts_to(emu, u) for u in admins] == [hits, hits]

    # an attempt that fails (its download times out) is queued again for its retry time
    emu.hold("getFile")
    late = emu.post_photo(chat, member, jpeg(photos["coffee"], 95))
    await until(lambda: cluster.attempts(late) == (1, False), "the first attempt", cluster=cluster)
    await until(
        lambda: "download" in str(cluster.query("SELECT last_error FROM work WHERE message_id = %s", (str(late),))),
        "the attempt failing",
        cluster=cluster,
    )
    emu.release("getFile")
    await until(lambda: cluster.attempts(late) == (2, True), "the retry", cluster=cluster)
    assert not present(emu, chat, late)
    assert [alerts_to(emu, u) for u in admins] == [hits + 1, hits + 1]


async def test_a_copy_posted_right_after_a_block_made_on_the_ingest_is_deleted_by_a_worker(
    emu: BotApiEmulator,
    tmp_path: Path,
    marker_model: Path,
    photos: dict[str, np.ndarray],
    postgres_url: str,
    cluster_factory: Callable[[Path], Cluster],
) -> None:
    # the /block is handled by the ingest; the copy right behind it by a worker process whose lists
    # learn of the new entry from the change log: the job carries the log's version, so the worker
    # applies it before judging (bot/index_versions.py) instead of waiting for its next poll
    chat, admins, member = group(emu, "Year 9 parents")
    cluster = await one_ingest_one_worker(
        cluster_factory(cluster_config(tmp_path, emu.url, marker_model, postgres_url)), emu
    )
    seen = emu.post_photo(chat, member, jpeg(photos["coffee"], 90))
    await until(lambda: cluster.finished() == 1, "the first photo judged", cluster=cluster)
    assert present(emu, chat, seen)
    emu.post_text(chat, admins[0], "/block", reply_to=seen)
    copies = [emu.post_photo(chat, member, jpeg(photos["coffee"], q)) for q in (70, 60)]
    await until(lambda: cluster.finished() >= 3 and cluster.pending() == 0, "the copies judged", cluster=cluster)
    await emu.wait_for(lambda: not present(emu, chat, seen), timeout=30, what="the blocked photo deleted")
    assert [m for m in copies if present(emu, chat, m)] == [], "copies posted right after the block are deleted"
    # judged by the new list when they came, not found later by the sweep of earlier posts
    swept = cluster.query("SELECT message_id FROM work WHERE variant LIKE 'sweep%%'")
    assert [str(m) for m in copies if (str(m),) in swept] == []
    # the earlier posts were swept once, by the process that reads the platforms, not by every process
    await until(lambda: "sweep for entries" in cluster.logs_text(), "the sweep", cluster=cluster)
    assert cluster.logs_text().count("sweep for entries") == 1


async def test_after_an_unprotect_on_the_ingest_no_worker_names_the_person(
    emu: BotApiEmulator,
    tmp_path: Path,
    marker_model: Path,
    photos: dict[str, np.ndarray],
    postgres_url: str,
    cluster_factory: Callable[[Path], Cluster],
) -> None:
    # the member protects a photo and later removes it, privately (the ingest handles both); a fake
    # of it posted right after is judged by a worker, which must not name her any more
    from tests.support import transforms as tf
    from tests.support.marker_model import add_marker
    from tests.test_protect import _protect

    chat, admins, member = group(emu, "Year 9 parents")
    victim = emu.add_user("Lucía", username="lucia")
    emu.add_member(chat, victim)
    cluster = await one_ingest_one_worker(
        cluster_factory(cluster_config(tmp_path, emu.url, marker_model, postgres_url)), emu
    )
    await _protect(emu, victim, photos["astronaut"], notify=False)

    def fake(seed: int) -> bytes:
        edit = tf.undress_like(photos["astronaut"], region="torso", share=0.4, fill="smooth", side=960)
        return jpeg(add_marker(edit, 0.2, at=(380, 620 + seed)), 88)

    def alerts_naming(name: str) -> int:
        return sum(
            name in (m.get("text") or "") for m in emu.sent_to(admins[0]) if "details:" in str(m.get("reply_markup"))
        )

    first = emu.post_photo(chat, member, fake(0))
    await until(
        lambda: not present(emu, chat, first) and alerts_to(emu, admins[0]) == 1, "the first fake", cluster=cluster
    )
    assert alerts_naming("Lucía") == 1  # the worker knows her photo
    emu.post_text(victim, victim, "/unprotect")
    await emu.wait_for(lambda: any("Vigil keeps nothing" in (m.get("text") or "") for m in emu.sent_to(victim)))
    second = emu.post_photo(chat, member, fake(10))
    await until(
        lambda: not present(emu, chat, second) and alerts_to(emu, admins[0]) == 2, "the second", cluster=cluster
    )
    assert alerts_naming("Lucía") == 1, "the fake after /unprotect names nobody"


def test_roles_refuse_a_config_they_cannot_run(tmp_path: Path) -> None:
    from bot.config import load_config
    from bot.errors import ConfigError
    from bot.roles import Role, check_role, uses_jobs

    sqlite = load_config(None, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    check_role(sqlite, Role.ALL)  # the single process needs no server
    assert not uses_jobs(sqlite, Role.ALL)
    for role in (Role.INGEST, Role.WORKER):
        with pytest.raises(ConfigError, match="needs the store on PostgreSQL"):
            check_role(sqlite, role)
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "postgresql://vigil@db.example.org/vigil"\n[cluster]\njobs = true\n')
    cluster = load_config(path, env={"VIGIL_TELEGRAM_TOKEN": TOKEN})
    assert uses_jobs(cluster, Role.ALL) and uses_jobs(cluster, Role.WORKER)
    path.write_text("[cluster]\nheartbeat = 5.0\nstalled_after = 8.0\n")
    with pytest.raises(ConfigError, match="cluster.stalled_after"):
        load_config(path, env={})


async def test_readiness_names_the_role_and_a_standby_is_ready_without_reading() -> None:
    from types import SimpleNamespace

    from bot.ops import readiness

    class Store:
        async def schema_version(self) -> int:
            return 1

    platform = SimpleNamespace(connected=False)
    core = SimpleNamespace(platforms={"telegram": platform}, backlog=0)
    standby = SimpleNamespace(core=core, store=Store(), stopping=False, role_status="ingest: standby")
    state = await readiness(standby)  # type: ignore[arg-type]
    assert state.ready and state.as_json()["role"] == "ingest: standby"
    active = SimpleNamespace(core=core, store=Store(), stopping=False, role_status="ingest: active")
    state = await readiness(active)  # type: ignore[arg-type]
    assert not state.ready and state.checks["platform:telegram"] == "not connected"
