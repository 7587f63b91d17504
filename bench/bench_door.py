"""A join flood at the door: N members join one group at once (a third sharing one avatar, a third
each with their own photo, a third with none), and a member posts a nude picture in another group.

Vigil runs in-process with its real models against the Bot API emulator. Prints how long after the
first join the other group's hit was removed (a raid must not stall other chats), how long until
every join was checked, and how many photos were downloaded (a shared avatar once per scan thread
at most, by file_unique_id).

    .venv/bin/python bench/bench_door.py [--joins 150]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.botapi import BotApiEmulator, full_rights  # noqa: E402
from tests.support.detector_images import file_images  # noqa: E402
from tests.support.marker_model import add_marker, write_marker_model  # noqa: E402
from tests.support.vigil_harness import TOKEN, jpeg, running_vigil, write_config  # noqa: E402


async def main(n: int = 150) -> None:
    with tempfile.TemporaryDirectory() as d:
        await run(Path(d), n)


async def run(tmp: Path, n: int) -> None:
    mm = write_marker_model(tmp / "m.onnx")
    photo = next(v for k, v in file_images().items() if "astronaut" in k)
    emu = BotApiEmulator(token=TOKEN)
    await emu.start()
    owner = emu.add_user("O")
    member = emu.add_user("M")
    a = emu.add_group("A", creator=owner, bot_rights=full_rights())
    b = emu.add_group("B", creator=owner, members=[member], bot_rights=full_rights())
    raiders = [emu.add_user(f"R{i}") for i in range(n)]
    shared = emu.upload(jpeg(photo), kind="photo", mime="image/jpeg")
    for i, r in enumerate(raiders):
        if i % 3 == 0:
            emu.set_profile_photo(r, shared)  # a third share one avatar
        elif i % 3 == 1:
            emu.set_profile_photo(r, jpeg(photo, 50 + i % 40))  # a third their own
    async with running_vigil(write_config(tmp, emu.url, mm)) as app:
        await emu.wait_for(lambda: any("chat_member" in str(c.params.get("allowed_updates")) for c in emu.calls))
        t0 = time.perf_counter()
        for r in raiders:
            emu.add_member(a, r)
        nude = emu.post_photo(b, member, jpeg(add_marker(photo)))
        await emu.wait_for(lambda: all(m["message_id"] != nude for m in emu.messages_in(b)), timeout=300)
        t_post = time.perf_counter() - t0
        while True:
            asked = {int(c.params["user_id"]) for c in emu.calls_to("getUserProfilePhotos")}
            if set(raiders) <= asked and not [
                w for w in await app.store.pending_work("telegram") if w.message_id.startswith("door:")
            ]:
                break
            await asyncio.sleep(0.05)
        t_all = time.perf_counter() - t0
        print(
            f"joins={n}: the other group's nude post removed after {t_post:.2f} s; all {n} joins checked "
            f"after {t_all:.2f} s ({n / t_all:.1f} joins/s); "
            f"downloads {len(emu.calls_to('downloadFile'))} for {n - n // 3} photos"
        )
    await emu.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=150)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    asyncio.run(main(args.joins))
