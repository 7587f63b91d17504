"""Logging in to Matrix once and staying the same device across restarts.

The device id and its access token are kept in ``<data_dir>/matrix/session.json`` (readable by
the owner only); matrix-nio keeps the device's encryption keys in the same directory. A restart
restores that session, so it neither creates a new device (which members would see, and which
could not read earlier encrypted messages) nor loses its keys.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from bot.config import MatrixConfig
from bot.platforms.errors import PlatformError
from bot.platforms.matrix_errors import AUTH_ERRORS, call
from bot.platforms.matrix_timing import HomeserverCalls

log = logging.getLogger("vigil.matrix")

SESSION_FILE = "session.json"


@dataclass(frozen=True)
class Session:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str


def read_session(directory: Path) -> Session | None:
    path = directory / SESSION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Session(str(data["homeserver"]), str(data["user_id"]), str(data["device_id"]), str(data["access_token"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        log.warning("matrix: ignoring an unreadable %s (%s); logging in again", path, type(exc).__name__)
        return None


def write_session(directory: Path, session: Session) -> None:
    """Atomically, and readable by the owner only (it holds an access token)."""
    path = directory / SESSION_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(session), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TimedClient(AsyncClient):  # type: ignore[misc]  # nio is untyped
    """matrix-nio's client, with each request it sends counted and timed by kind (``matrix_timing``)."""

    calls: HomeserverCalls

    async def send(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        try:
            return await super().send(method, path, *args, **kwargs)
        finally:
            self.calls.record(method, path, begun, time.perf_counter())


def new_client(config: MatrixConfig, directory: Path, calls: HomeserverCalls | None = None) -> TimedClient:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    client_config = AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,  # Vigil keeps the sync token in its own store, after the work is recorded
        max_limit_exceeded=0,  # rate limits and timeouts come back to Vigil, which retries with its own policy
        max_timeouts=0,
        request_timeout=60,
    )
    client = TimedClient(config.homeserver, config.user_id, store_path=str(directory), config=client_config)
    client.calls = calls if calls is not None else HomeserverCalls()
    return client


async def log_in(client: AsyncClient, config: MatrixConfig, directory: Path) -> None:
    """Restore the saved device, or log in (reusing the saved device id), then publish device keys."""
    saved = read_session(directory)
    if saved and (saved.homeserver != config.homeserver or saved.user_id != config.user_id):
        log.warning(
            "matrix: the saved session is for %s on %s; logging in as %s",
            saved.user_id,
            saved.homeserver,
            config.user_id,
        )
        saved = None
    if config.access_token:
        client.access_token = config.access_token
        who = await call("whoami", client.whoami())
        assert isinstance(who, WhoamiResponse)
        if who.user_id != config.user_id:
            raise PlatformError(
                f"the access token in VIGIL_MATRIX_ACCESS_TOKEN belongs to {who.user_id}, not to "
                f"matrix.user_id {config.user_id}: fix one of them"
            )
        if not who.device_id:
            raise PlatformError(
                "the access token has no device (an appservice token?): use a user's login token or a password"
            )
        client.restore_login(config.user_id, who.device_id, config.access_token)
        write_session(directory, Session(config.homeserver, config.user_id, who.device_id, config.access_token))
    else:
        restored = False
        if saved is not None:
            client.restore_login(saved.user_id, saved.device_id, saved.access_token)
            who = await client.whoami()
            if isinstance(who, WhoamiResponse):
                restored = True
            elif getattr(who, "status_code", None) not in AUTH_ERRORS:
                await call("whoami", client.whoami())  # a network error: raise it as such
        if not restored:
            if not config.password:
                raise PlatformError(
                    "the saved Matrix session was refused and no password is set: set VIGIL_MATRIX_PASSWORD"
                )
            if saved is not None:
                client.device_id = saved.device_id  # the same device again, so its keys stay valid
            try:
                response = await call("login", client.login(config.password, device_name=config.device_name))
            except PlatformError as exc:
                if "M_FORBIDDEN" in str(exc):
                    raise PlatformError(
                        f"the homeserver refused the password for {config.user_id}: check VIGIL_MATRIX_PASSWORD"
                    ) from None
                raise
            assert isinstance(response, LoginResponse)
            write_session(
                directory, Session(config.homeserver, config.user_id, response.device_id, response.access_token)
            )
            log.info("matrix: logged in as %s, device %s", config.user_id, response.device_id)
    if client.should_upload_keys:
        await call("upload device keys", client.keys_upload())
