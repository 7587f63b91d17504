# The real Synapse homeserver, one per test session (tests/support/synapse.py).
# --- a safety net: a test that fails with a store still open leaves aiosqlite's worker
# thread running, and the interpreter would then wait for it forever at exit (a CI run
# that hangs instead of failing). Exit with pytest's own status once it has reported.
import os
import sys
import threading

import pytest

from tests.support.botapi import BotApiEmulator
from tests.support.detector_images import file_images
from tests.support.marker_model import write_marker_model

# A real PostgreSQL server, one per test session, and an empty schema per test (tests/support/postgres.py).
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401
from tests.support.synapse import synapse  # noqa: F401
from tests.support.vigil_harness import TOKEN

_exit_status: list[int] = []


# What the end-to-end suites share: the tiny marker model that drives the nudity path, and two
# benign sample photos (the tests copy before they change one).
@pytest.fixture(scope="session")
def marker_model(tmp_path_factory):
    return write_marker_model(tmp_path_factory.mktemp("models") / "marker.onnx")


@pytest.fixture(scope="session")
def photo():
    return next(v for k, v in file_images().items() if "astronaut" in k)


@pytest.fixture(scope="session")
def other_photo():
    return next(v for k, v in file_images().items() if "coffee" in k)


# The Bot API emulator on 127.0.0.1, for the real python-telegram-bot (tests/support/botapi/).
@pytest.fixture
async def emu():
    e = BotApiEmulator(token=TOKEN)
    await e.start()
    yield e
    await e.stop()


def pytest_sessionfinish(session, exitstatus):  # noqa: D103
    _exit_status.append(int(exitstatus))


def pytest_unconfigure(config):  # noqa: D103
    leaked = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if leaked and _exit_status:
        names = ", ".join(sorted({t.name for t in leaked}))
        sys.stderr.write(
            f"\nconftest: {len(leaked)} threads still running after the tests ({names}); exiting without waiting\n"
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])
