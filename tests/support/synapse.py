"""A real Synapse homeserver on loopback for the Matrix tests.

Synapse lives in its own virtualenv (``.venv-synapse``, made by ``scripts/install-synapse``) so its
pinned dependencies never mix with Vigil's. ``Synapse`` writes a config tuned for tests (loopback
only, client API only, SQLite, no federation, presence or URL previews, rate limits out of the way,
cheap password hashing), runs ``synapse.app.homeserver`` as a subprocess and registers users through
the shared-secret admin API. ``synapse`` below is a session-scoped pytest fixture: one homeserver per
test session.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import json
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = ROOT / ".venv-synapse"
INSTALL_HINT = "run scripts/install-synapse (it creates .venv-synapse with matrix-synapse in it)"

# Far above anything a test does, so no test ever waits on a rate limiter.
_FAST = {"per_second": 10_000, "burst_count": 100_000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _FAST,
    "rc_registration": _FAST,
    "rc_registration_token_validity": _FAST,
    "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
    "rc_admin_redaction": _FAST,
    "rc_joins": {"local": _FAST, "remote": _FAST},
    "rc_joins_per_room": _FAST,
    "rc_3pid_validation": _FAST,
    "rc_invites": {"per_room": _FAST, "per_user": _FAST, "per_issuer": _FAST},
    "rc_third_party_invite": _FAST,
    "rc_media_create": _FAST,
    "rc_presence": {"per_user": _FAST},
    "rc_delayed_event_mgmt": _FAST,
    "rc_room_creation": _FAST,
    "rc_reports": _FAST,
    "rc_user_directory": _FAST,
    "rc_profile": _FAST,
    "rc_key_requests": _FAST,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100_000,
        "sleep_delay": 1,
        "reject_limit": 100_000,
        "concurrent": 1000,
    },
    "remote_media_download_per_second": "1G",
    "remote_media_download_burst_count": "10G",
}


class SynapseError(RuntimeError):
    """The test homeserver is missing, did not start, or refused a request."""


@dataclass(frozen=True)
class RegisteredUser:
    user_id: str
    access_token: str
    device_id: str
    password: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: dict[str, Any]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signing_key_line() -> str:
    # Synapse's key file format: "<algorithm> <key id> <unpadded base64 of the 32-byte ed25519 seed>"
    seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"


@dataclass(frozen=True)
class AppService:
    """An application-service registration (as a bridge has): no URL, so Synapse pushes it nothing."""

    id: str
    as_token: str
    hs_token: str
    sender_localpart: str
    users: str  # the regex of its puppets' user ids

    def registration(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": None,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "rate_limited": False,
            "namespaces": {"users": [{"exclusive": True, "regex": self.users}], "aliases": [], "rooms": []},
        }


class Synapse:
    """One Synapse process with its config, database, media store and logs under ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        venv: Path | None = None,
        server_name: str = "localhost",
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.venv = Path(venv) if venv is not None else DEFAULT_VENV
        self.server_name = server_name
        self.extra_config = dict(extra_config or {})
        self.shared_secret = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: RegisteredUser | None = None
        # an application service standing in for mautrix-whatsapp: its puppets are @whatsapp_<number>
        self.bridge = AppService(
            "whatsapp", secrets.token_hex(16), secrets.token_hex(16), "whatsappbot", "@whatsapp_.*"
        )

    # --- paths and addresses ---------------------------------------------------------------

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    @property
    def console_path(self) -> Path:
        return self.workdir / "console.log"

    @property
    def media_store(self) -> Path:
        return self.workdir / "media_store"

    @property
    def base_url(self) -> str:
        if not self.port:
            raise SynapseError("Synapse has no address yet: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> RegisteredUser:
        if self._admin is None:
            raise SynapseError("no admin user yet: call start() first")
        return self._admin

    @property
    def admin_token(self) -> str:
        return self.admin.access_token

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # --- config ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The homeserver config as a dict (written as JSON, which YAML reads as it is)."""
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"http://127.0.0.1:{self.port}/",
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # the admin API is served under the client resource
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}},
            "log_config": str(self.workdir / "log_config.yaml"),
            "media_store_path": str(self.media_store),
            "signing_key_path": str(self.workdir / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
            "enable_registration": False,
            "bcrypt_rounds": 4,  # registering and logging in take ~25 ms instead of ~800 ms
            "report_stats": False,
            "enable_metrics": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "federation_domain_whitelist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "app_service_config_files": [str(self.workdir / "whatsapp-registration.yaml")],
            **_RATE_LIMITS,
        }
        config.update(self.extra_config)
        return config

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "plain",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.media_store.mkdir(exist_ok=True)
        (self.workdir / "signing.key").write_text(_signing_key_line())
        (self.workdir / "log_config.yaml").write_text(json.dumps(self._log_config(), indent=1))
        (self.workdir / "whatsapp-registration.yaml").write_text(json.dumps(self.bridge.registration(), indent=1))
        self.config_path.write_text(json.dumps(self.config(), indent=1))

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Write the config, start the process, wait until it answers, register the admin user."""
        if self.process is not None:
            raise SynapseError("this Synapse is already started")
        if not self.python.exists():
            raise SynapseError(f"Synapse is not installed at {self.venv}: {INSTALL_HINT}")
        self.port = _free_port()
        self._write_files()
        with open(self.console_path, "ab") as console:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(self.config_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                # its own process group, so a Ctrl-C in pytest does not hit it before stop() does
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout)
            self._admin = self.register("vigil-admin", secrets.token_hex(8), admin=True)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/_matrix/client/versions"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SynapseError(
                    f"Synapse exited with code {self.process.returncode} before it was ready.\n{self.diagnostics()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SynapseError(f"Synapse did not answer {url} within {timeout:.0f} s.\n{self.diagnostics()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds. Safe to call twice."""
        process, self.process = self.process, None
        atexit.unregister(self.stop)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the Synapse process, from /proc."""
        if not self.running:
            raise SynapseError("Synapse is not running")
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise SynapseError("no VmRSS line in /proc status")

    def diagnostics(self, lines: int = 30) -> str:
        """The last lines of Synapse's console output and log, for error messages."""
        parts = []
        for path in (self.console_path, self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts) or "(no output from Synapse)"

    def __enter__(self) -> Synapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> HttpReply:
        """One JSON request to the homeserver; any status comes back (no exception for 4xx/5xx)."""
        data = json.dumps(body).encode() if body is not None else None
        if data is None and method in ("POST", "PUT"):
            data = b"{}"
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return HttpReply(reply.status, _json_or_raw(reply.read()))
        except urllib.error.HTTPError as err:
            return HttpReply(err.code, _json_or_raw(err.read()))

    def admin_request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> HttpReply:
        """A request with the admin user's token, e.g. to ``/_synapse/admin/...``."""
        return self.request(method, path, token=self.admin_token, body=body)

    def register(self, username: str, password: str, admin: bool = False) -> RegisteredUser:
        """Register a user through the shared-secret admin API (a nonce, then an HMAC-signed POST)."""
        path = "/_synapse/admin/v1/register"
        nonce_reply = self.request("GET", path)
        if nonce_reply.status != 200:
            raise SynapseError(f"no registration nonce: HTTP {nonce_reply.status} {nonce_reply.body}")
        nonce = nonce_reply.body["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\0".join([nonce.encode(), username.encode(), password.encode(), b"admin" if admin else b"notadmin"])
        )
        reply = self.request(
            "POST",
            path,
            body={"nonce": nonce, "username": username, "password": password, "admin": admin, "mac": mac.hexdigest()},
        )
        if reply.status != 200:
            raise SynapseError(f"registering {username!r} failed: HTTP {reply.status} {reply.body}")
        return RegisteredUser(
            user_id=reply.body["user_id"],
            access_token=reply.body["access_token"],
            device_id=reply.body["device_id"],
            password=password,
        )

    def quarantine_media(self, mxc: str) -> HttpReply:
        """Quarantine one piece of local media by its ``mxc://`` URI through the admin API."""
        server_name, media_id = parse_mxc(mxc)
        return self.admin_request("POST", f"/_synapse/admin/v1/media/quarantine/{server_name}/{media_id}")

    def download(self, mxc: str, token: str) -> HttpReply | bytes:
        """Media bytes from the authenticated endpoint, or the error reply (e.g. 404 once quarantined)."""
        server_name, media_id = parse_mxc(mxc)
        req = urllib.request.Request(
            f"{self.base_url}/_matrix/client/v1/media/download/{server_name}/{media_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return reply.read()
        except urllib.error.HTTPError as err:
            return HttpReply(err.code, _json_or_raw(err.read()))


def parse_mxc(mxc: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(mxc)
    media_id = parsed.path.lstrip("/")
    if parsed.scheme != "mxc" or not parsed.netloc or not media_id or "/" in media_id:
        raise ValueError(f"not an mxc://server/media_id URI: {mxc!r}")
    return parsed.netloc, media_id


def _json_or_raw(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {"raw": data.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One real Synapse for the whole test session. Fails (never skips) when it is not installed."""
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    if not server.python.exists():
        pytest.fail(f"the Matrix tests need Synapse, which is not installed at {server.venv}: {INSTALL_HINT}")
    try:
        server.start()
    except SynapseError as err:
        pytest.fail(str(err))
    try:
        yield server
    finally:
        server.stop()
