"""Vigil's configuration: TOML, with secrets from the environment, validated up front.

A wrong or missing value raises ``ConfigError`` naming the key and the fix, so
start-up stops before anything runs. Every key is documented in config.example.toml.

Why one file of about 650 lines: each section is a dataclass and, below it, the reader that
validates it; the readers share one small table reader (``_Table``). Split, a key's default
and its check would sit apart from each other; the file is read section by section.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError
from bot.guidance.resources import REGIONS  # the regions of bot/guidance/resources.toml
from bot.i18n import LANGUAGES  # the languages with a catalog in bot/guidance/locales
from detectors.settings import (
    DEFAULT_CLASS_THRESHOLDS,
    NUDENET_CLASSES,
    DetectorSettings,
    MediaLimits,
    ModelSource,
)

MODES = ("delete", "review", "dryrun", "off")
SENSITIVITIES = {"low": 0.15, "medium": 0.0, "high": -0.15}  # shift of every class threshold
ACTIONS = ("none", "mute", "ban")

LOG_FORMATS = ("text", "json")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'30m', '12h', '7d', '2w' → timedelta; raises ValueError with the accepted forms."""
    m = _DURATION.match(text or "")
    if not m:
        raise ValueError(f"'{text}' is not a duration: use a number and a unit, like 30m, 12h, 7d or 2w")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True)
class GroupDefaults:
    """Instance-wide defaults for every group; admins change them per group with commands."""

    mode: str = "delete"
    sensitivity: str = "medium"
    action: str = "none"
    mute_duration: str = "24h"
    language: str = "en"
    region: str = "OTHER"
    neutral_notice: bool = False
    # admins' and exempt members' hits are reported, not deleted, unless this is false
    spare_exempt: bool = True
    hash_distance: int = 31
    pdq_min_quality: int = 50
    # keep fingerprints of members' photos posted in the group, to trace manipulated copies
    # (/vigil groupphotos on|off [DAYS]); days 0: [protect] group_photo_days
    group_photos: bool = False
    group_photos_days: int = 0
    # at the door (bot/door.py): what a profile photo that is a hit brings (/vigil joins), and how long
    # new members cannot post media (/vigil newmedia hold 24h|off)
    joins: str = "decline"
    newmedia_hold: str = "off"


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool = False
    token: str = field(default="", repr=False)  # VIGIL_TELEGRAM_TOKEN: a secret, kept out of repr()
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    poll_timeout: int = 30


@dataclass(frozen=True)
class MatrixConfig:
    """The Matrix account Vigil logs in as; secrets come from the environment."""

    enabled: bool = False
    homeserver: str = ""  # the client API's base URL, e.g. https://matrix.example.org
    user_id: str = ""  # @vigil:example.org
    # secrets: kept out of repr() so a logged config never shows them
    password: str = field(default="", repr=False)  # VIGIL_MATRIX_PASSWORD
    access_token: str = field(
        default="", repr=False
    )  # VIGIL_MATRIX_ACCESS_TOKEN (used instead of the password when set)
    admin_token: str = field(
        default="", repr=False
    )  # VIGIL_MATRIX_ADMIN_TOKEN: a Synapse admin's token, to quarantine removed media
    device_name: str = "Vigil"
    # who may invite Vigil into rooms: user ids (@a:example.org) and server names (example.org);
    # empty: users of Vigil's own homeserver; "*": anyone
    invite_from: tuple[str, ...] = ()
    sync_timeout: int = 30  # seconds a sync long-poll waits for events
    mute_check_interval: int = 60  # seconds between checks for timed mutes that have run out
    download_deadline: float = 30.0  # seconds all downloads of one picture (retries included) may take
    undecryptable_notice_after: int = 60  # seconds an event may stay undecryptable before moderators are told
    # policy rooms the instance follows (aliases or room ids): their image-hash rules become instance lists
    policy_rooms: tuple[str, ...] = ()

    @property
    def server_name(self) -> str:
        return self.user_id.partition(":")[2]


@dataclass(frozen=True)
class PipelineConfig:
    workers: int = 2
    queue_size: int = 256  # no longer used: waiting images stay in the store, not in memory
    scan_timeout: float = 60.0
    # images in flight at once across all chats (downloads, then scans); one per chat at most
    in_flight: int = 8
    # seconds one image's download may take in all (retries included) before the attempt fails
    download_timeout: float = 300.0
    # attempts per image (counted when each starts), then the admins are told it was not checked
    max_attempts: int = 3
    # seconds before the first retry of a failed image; doubled for each further retry
    retry_backoff: float = 30.0
    # a chat's deletions go out in batches (Telegram deleteMessages) while its next images are
    # scanned; off: each image waits for its own delete (the behaviour before batching)
    batch_deletes: bool = True
    # files seen recently, recognised before download (the platform's file id) or before the
    # models (SHA-256): their verdict is reused, the lists are matched again. 0 turns it off
    repeat_cache_entries: int = 4096
    repeat_cache_mb: int = 64  # memory the remembered verdicts, hashes and fingerprints may take
    # seconds an image waits for this process's indexes to apply the list and protected-photo
    # changes made before it was recorded (by any process), then it is judged anyway
    index_wait: float = 10.0


@dataclass(frozen=True)
class OpsConfig:
    """The local HTTP endpoint for /healthz, /readyz and /metrics; an empty listen turns it off."""

    listen: str = "127.0.0.1:9464"  # VIGIL_OPS_LISTEN overrides it (containers: 0.0.0.0:9464)

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


@dataclass(frozen=True)
class RetentionConfig:
    """Days Vigil keeps each kind of record; 0 keeps them until deleted by hand."""

    audit_days: int = 180  # audit records (what was found and done), with their reviews and alerts
    fingerprint_days: int = 90  # image hashes inside audit records (list entries stay until removed)
    work_days: int = 7  # finished inbox items and settled platform actions


@dataclass(frozen=True)
class ProtectConfig:
    """Protected photos: fingerprints of people's photos, to trace manipulated copies to them."""

    enabled: bool = True
    # a scanned image counts as made from a protected photo when the verified shared region
    # covers at least this share of the scanned image or of the photo
    min_fraction: float = 0.15
    group_photo_days: int = 30  # how long a group keeps group-photo fingerprints (its default)
    max_photos: int = 20  # photos one member may register privately
    session_minutes: int = 15  # after /protect, photos sent privately are registered for this long
    # groups whose admins may read any protected person's name in an alert, as (platform, chat id);
    # elsewhere a person is named only to the admins of a group they belong to
    trusted_groups: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReportsConfig:
    """Members' private reports (/report): how many each member and each chat may make."""

    enabled: bool = True
    per_member: int = 5  # reports one member may make in one chat per window; more are dropped
    per_chat: int = 30  # reports (alerts) one chat may raise per window, from all its members
    window_minutes: int = 60
    # Matrix: how often Synapse's event reports are read (with VIGIL_MATRIX_ADMIN_TOKEN), and how many a read
    homeserver_poll_seconds: int = 60
    homeserver_page_size: int = 100


@dataclass(frozen=True)
class ClusterConfig:
    """[cluster]: jobs on PostgreSQL (Procrastinate) and the roles of `vigil run --role`."""

    # record each image as a Procrastinate job even in role `all` (roles ingest and worker always do)
    jobs: bool = False
    concurrency: int = 4  # jobs one worker process runs at once
    standby_poll: float = 1.0  # seconds between a standby ingest's tries to become the active one
    heartbeat: float = 5.0  # seconds between a worker's heartbeats
    stalled_after: float = 20.0  # a worker silent this long is dead: its jobs run again elsewhere
    sweep_every: int = 5  # seconds between checks for stalled jobs and unqueued work (1..59)


@dataclass(frozen=True)
class FloodConfig:
    """[flood]: one picture posted many times in a short time, anywhere in the instance, is held for review."""

    count: int = 0  # copies within ``window`` seconds that make a flood; 0 turns flood holds off
    window: int = 600  # seconds
    hold: int = 3600  # seconds a flood's copies stay held after its last copy (an admin's block ends it sooner)
    tracked: int = 20000  # pictures counted at once (a fixed-size memory; the oldest are forgotten first)
    log_chat: tuple[str, str] | None = None  # the operator's chat told once per flood: (platform, chat id)
    # a raid: pictures from this many members who joined less than ``new_member_minutes`` ago, within
    # ``window`` seconds anywhere; from then on new members' pictures are held for ``hold``. 0: off
    new_members: int = 0
    new_member_minutes: int = 1440


@dataclass(frozen=True)
class SweepConfig:
    """The seen-images window and the sweep of what was already posted (bot/sweep.py)."""

    window_hours: int = 48  # how long the hashes and fingerprints of a scanned image are kept; 0: off
    max_per_chat: int = 50_000  # kept images in one chat at most (the oldest go first)
    max_total: int = 100_000  # kept images in all chats at most
    # keypoints kept of each image's local-feature fingerprint (with their mirror descriptors, 70
    # bytes each); 0 keeps none: a newly protected photo is then not looked for in the window
    fingerprint_points: int = 300
    batch: int = 500  # kept images matched per step in the CPU pool

    @property
    def enabled(self) -> bool:
        return self.window_hours > 0


@dataclass(frozen=True)
class SnapshotsConfig:
    """[snapshots]: index snapshots a starting process loads instead of building its indexes
    (bot/snapshots.py), and how long a silent process holds the change logs (bot/follow.py)."""

    enabled: bool = True
    changes: int = 10_000  # write one when the log moved this far past the newest snapshot
    minutes: float = 30.0  # or moved at all and the newest is this old
    check_seconds: float = 60.0  # how often that is checked
    live_minutes: float = 10.0  # a process silent this long no longer holds the change logs

    @property
    def lease(self) -> float:
        """How long one process's turn at writing snapshots lasts without renewal: a few checks."""
        return max(3 * self.check_seconds, 60.0)


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    log_format: str = "text"
    log_level: str = "INFO"
    timezone: str = "UTC"
    detectors: DetectorSettings = DetectorSettings()
    pipeline: PipelineConfig = PipelineConfig()
    groups: GroupDefaults = GroupDefaults()
    telegram: TelegramConfig = TelegramConfig()
    matrix: MatrixConfig = MatrixConfig()
    ops: OpsConfig = OpsConfig()
    retention: RetentionConfig = RetentionConfig()
    protect: ProtectConfig = ProtectConfig()
    resources: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    # [database]: PostgreSQL instead of the SQLite file; the URL may hold a password, so it is
    # kept out of repr() and VIGIL_DATABASE_URL is the place for it
    database_url: str = field(default="", repr=False)
    database_pool: int = 10
    reports: ReportsConfig = ReportsConfig()
    cluster: ClusterConfig = ClusterConfig()
    flood: FloodConfig = FloodConfig()
    sweep: SweepConfig = SweepConfig()
    snapshots: SnapshotsConfig = SnapshotsConfig()

    @property
    def database(self) -> Path:
        """The SQLite file (used when no database URL is set)."""
        return self.data_dir / "vigil.sqlite3"


class _Table:
    """Reads one TOML table, remembering which keys were used so unknown ones are reported."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path, "must be a table", f"write it as [{path}] with key = value lines")
        self.data, self.path = data, path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type, default: Any, check: Callable[[Any], str | None] | None = None) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                self.key(name),
                f"expected {kind.__name__}, got {type(value).__name__} {value!r}",
                f"set it to a {kind.__name__} (see config.example.toml)",
            )
        if check is not None and (problem := check(value)):
            raise ConfigError(self.key(name), problem, "see config.example.toml for the allowed values")
        return value

    def choice(self, name: str, options: tuple[str, ...] | Mapping[str, Any], default: str) -> str:
        chosen: str = self.get(
            name, str, default, lambda v: None if v in options else f"'{v}' is not one of {', '.join(options)}"
        )
        return chosen

    def table(self, name: str) -> _Table:
        self.used.add(name)
        return _Table(self.data.get(name, {}), self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                self.key(unknown[0]),
                "is not a setting Vigil knows",
                f"remove it or fix its spelling; settings here: {', '.join(sorted(self.used)) or 'none'}",
            )


def _between(lo: float, hi: float) -> Callable[[float], str | None]:
    return lambda v: None if lo <= v <= hi else f"{v} is outside {lo}..{hi}"


def _duration(v: str) -> str | None:
    try:
        parse_duration(v)
    except ValueError as exc:
        return str(exc)
    return None


JOIN_ACTIONS = ("decline", "restrict", "ban", "alert")
HOLD_LIMIT = timedelta(days=30)  # the longest new members' media hold


def _hold(v: str) -> str | None:
    if v == "off":
        return None
    try:
        hold = parse_duration(v)
    except ValueError as exc:
        return f"{exc}, or 'off'"
    return None if timedelta(seconds=30) <= hold <= HOLD_LIMIT else f"{v} is outside 30s..30d"


def _timezone(v: str) -> str | None:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return f"'{v}' is not a time zone name such as UTC or Europe/Madrid"
    return None


def _model(t: _Table) -> ModelSource:
    path = t.get("path", str, "")
    sha = t.get(
        "sha256", str, "", lambda v: None if not v or re.fullmatch(r"[0-9a-fA-F]{64}", v) else "not 64 hex digits"
    )
    t.done()
    return ModelSource(path=Path(path).expanduser() if path else None, sha256=sha.lower() or None)


def _detectors(root: _Table) -> DetectorSettings:
    t = root.table("detectors")
    lim = t.table("limits")
    limits = MediaLimits(
        max_bytes=lim.get("max_bytes", int, MediaLimits.max_bytes, lambda v: None if v > 0 else "must be positive"),
        max_pixels=lim.get("max_pixels", int, MediaLimits.max_pixels, lambda v: None if v > 0 else "must be positive"),
        max_frames=lim.get("max_frames", int, MediaLimits.max_frames, _between(1, 64)),
        max_decoded_bytes=lim.get("max_decoded_bytes", int, MediaLimits.max_decoded_bytes, _between(2**20, 2**34)),
    )
    lim.done()
    thr = t.table("thresholds")
    classes = dict(DEFAULT_CLASS_THRESHOLDS)
    for name, value in thr.data.items():
        if name not in NUDENET_CLASSES:
            raise ConfigError(thr.key(name), "is not a NudeNet class", f"use one of {', '.join(NUDENET_CLASSES)}")
        if value == "off":
            classes.pop(name, None)
            thr.used.add(name)
            continue
        classes[name] = thr.get(name, float, 0.5, _between(0.05, 0.99))
    models = root.table("models")
    nudity, nsfw = _model(models.table("nudity")), _model(models.table("nsfw"))
    synthetic = _synthetic(models.table("synthetic"))
    models.done()
    generator_files = tuple(Path(p).expanduser() for p in t.get("generator_files", list, [], _paths))
    settings = DetectorSettings(
        limits=limits,
        nudity_model=nudity,
        nsfw_model=nsfw,
        nsfw_enabled=t.get("nsfw", bool, True),
        class_thresholds=classes,
        review_band=t.get("review_band", float, 0.2, _between(0.0, 0.5)),
        nsfw_review=t.get("nsfw_review", float, 0.85, _between(0.05, 1.0)),
        threads=t.get("threads", int, 0, _between(0, 64)),
        provenance=t.get("provenance", bool, True),
        c2pa=t.get("c2pa", bool, True),
        generator_files=generator_files,
        synthetic=synthetic,
    )
    t.done()
    return settings


def _paths(v: list[object]) -> str | None:
    bad = [p for p in v if not isinstance(p, str) or not Path(p).expanduser().is_file()]
    return f"{bad[0]!r} is not a file" if bad else None


def _synthetic(t: _Table) -> Any:
    """[models.synthetic]: an operator's ONNX classifier of AI-made images (off unless a path is set)."""
    from detectors.synthetic import ClassifierSpec  # here: it loads OpenCV, which reading a config needs not

    path = t.get("path", str, "")
    d = ClassifierSpec(path=Path())

    def triple(v: list[object]) -> str | None:
        return None if len(v) == 3 and all(isinstance(x, (int, float)) for x in v) else "needs three numbers (R, G, B)"

    spec = ClassifierSpec(
        path=Path(path).expanduser(),
        sha256=t.get(
            "sha256", str, "", lambda v: None if not v or re.fullmatch(r"[0-9a-fA-F]{64}", v) else "not 64 hex digits"
        ).lower()
        or None,
        input_size=t.get("input_size", int, d.input_size, _between(16, 2048)),
        mean=tuple(float(x) for x in t.get("mean", list, list(d.mean), triple)),  # type: ignore[arg-type]
        std=tuple(float(x) for x in t.get("std", list, list(d.std), triple)),  # type: ignore[arg-type]
        labels=tuple(
            t.get(
                "labels",
                list,
                list(d.labels),
                lambda v: (
                    None if len(v) >= 2 and all(isinstance(x, str) for x in v) else "needs two or more label names"
                ),
            )
        ),
        positive=t.get("positive", str, d.positive),
        layout=t.choice("layout", ("NCHW", "NHWC"), d.layout),
        softmax=t.get("softmax", bool, d.softmax),
        threshold=t.get("threshold", float, d.threshold, _between(0.0, 1.0)),
    )
    t.done()
    if not path:
        return None
    if spec.positive not in spec.labels:
        raise ConfigError(
            "models.synthetic.positive",
            f"'{spec.positive}' is not one of the labels {list(spec.labels)}",
            "name the label that means 'generated'",
        )
    return spec


def _groups(root: _Table) -> GroupDefaults:
    t = root.table("groups")
    d = GroupDefaults()
    g = GroupDefaults(
        mode=t.choice("mode", MODES, d.mode),
        sensitivity=t.choice("sensitivity", SENSITIVITIES, d.sensitivity),
        action=t.choice("action", ACTIONS, d.action),
        mute_duration=t.get("mute_duration", str, d.mute_duration, _duration),
        language=t.choice("language", LANGUAGES, d.language),
        region=t.choice("region", REGIONS, d.region),
        neutral_notice=t.get("neutral_notice", bool, d.neutral_notice),
        spare_exempt=t.get("spare_exempt", bool, d.spare_exempt),
        hash_distance=t.get("hash_distance", int, d.hash_distance, _between(0, 64)),
        pdq_min_quality=t.get("pdq_min_quality", int, d.pdq_min_quality, _between(0, 100)),
        joins=t.choice("joins", JOIN_ACTIONS, d.joins),
        newmedia_hold=t.get("newmedia_hold", str, d.newmedia_hold, _hold),
    )
    t.done()
    return g


def _telegram(root: _Table, env: Mapping[str, str]) -> TelegramConfig:
    t = root.table("telegram")
    d = TelegramConfig()
    token = env.get("VIGIL_TELEGRAM_TOKEN") or t.get("token", str, "")
    t.used.add("token")
    cfg = TelegramConfig(
        enabled=t.get("enabled", bool, bool(token)),
        token=token,
        base_url=t.get("base_url", str, d.base_url),
        base_file_url=t.get("base_file_url", str, d.base_file_url),
        poll_timeout=t.get("poll_timeout", int, d.poll_timeout, _between(0, 50)),
    )
    t.done()
    if cfg.enabled and not re.fullmatch(r"\d+:[\w-]{20,}", cfg.token):
        raise ConfigError(
            "telegram.token",
            "is missing or not a bot token" if cfg.token else "is missing",
            "set the VIGIL_TELEGRAM_TOKEN environment variable to the token BotFather gave you "
            "(or [telegram] token in the config file, which is less safe)",
        )
    return cfg


_MATRIX_USER = re.compile(r"^@[^:\s]+:[A-Za-z0-9.\-\[\]:]+$")
_MATRIX_SERVER = re.compile(r"^:?[A-Za-z0-9.\-\[\]]+(:\d+)?$")


_POLICY_ROOM = re.compile(r"[#!][^\s:]{1,200}:[A-Za-z0-9.\-\[\]:]{1,250}")


def _inviter(v: Any) -> str | None:
    if not isinstance(v, str) or not (v == "*" or _MATRIX_USER.match(v) or _MATRIX_SERVER.match(v)):
        return f'{v!r} is neither a user id like @alice:example.org, a server name like example.org, nor "*"'
    return None


def _matrix(root: _Table, env: Mapping[str, str]) -> MatrixConfig:
    t = root.table("matrix")
    d = MatrixConfig()
    password = env.get("VIGIL_MATRIX_PASSWORD") or t.get("password", str, "")
    token = env.get("VIGIL_MATRIX_ACCESS_TOKEN") or t.get("access_token", str, "")
    admin_token = env.get("VIGIL_MATRIX_ADMIN_TOKEN") or t.get("admin_token", str, "")
    t.used.update(("password", "access_token", "admin_token"))
    invite_from = t.get("invite_from", list, [])
    for i, entry in enumerate(invite_from):
        if problem := _inviter(entry):
            raise ConfigError(
                t.key(f"invite_from[{i}]"),
                problem,
                'list user ids and server names, e.g. ["@alice:example.org", "example.org"]',
            )
    policy_rooms = t.get("policy_rooms", list, [])
    for i, entry in enumerate(policy_rooms):
        if not isinstance(entry, str) or not _POLICY_ROOM.fullmatch(entry):
            raise ConfigError(
                t.key(f"policy_rooms[{i}]"),
                f"{entry!r} is not a room alias or id",
                'list aliases and room ids, e.g. ["#bans:example.org", "!abc:example.org"]',
            )
    cfg = MatrixConfig(
        enabled=t.get("enabled", bool, bool(password or token)),
        homeserver=t.get("homeserver", str, d.homeserver).rstrip("/"),
        user_id=t.get("user_id", str, d.user_id),
        password=password,
        access_token=token,
        admin_token=admin_token,
        device_name=t.get("device_name", str, d.device_name, lambda v: None if v.strip() else "must not be empty"),
        invite_from=tuple(e.lstrip(":") if not e.startswith("@") else e for e in invite_from),
        policy_rooms=tuple(policy_rooms),
        sync_timeout=t.get("sync_timeout", int, d.sync_timeout, _between(0, 120)),
        mute_check_interval=t.get("mute_check_interval", int, d.mute_check_interval, _between(1, 86400)),
        download_deadline=t.get("download_deadline", float, d.download_deadline, _between(1, 600)),
        undecryptable_notice_after=t.get(
            "undecryptable_notice_after", int, d.undecryptable_notice_after, _between(0, 86400)
        ),
    )
    t.done()
    if not cfg.enabled:
        return cfg
    if not re.match(r"^https?://[^\s/]+", cfg.homeserver):
        raise ConfigError(
            "matrix.homeserver",
            "is missing or not an http(s) URL" if cfg.homeserver else "is missing",
            "set it to your homeserver's client API address, e.g. https://matrix.example.org",
        )
    if not _MATRIX_USER.match(cfg.user_id):
        raise ConfigError(
            "matrix.user_id",
            f"{cfg.user_id!r} is not a Matrix user id",
            "set it to the bot account's full id, e.g. @vigil:example.org",
        )
    if not (cfg.password or cfg.access_token):
        raise ConfigError(
            "matrix.password",
            "is missing (and so is the access token)",
            "set VIGIL_MATRIX_PASSWORD (or VIGIL_MATRIX_ACCESS_TOKEN) in the environment to the bot account's "
            "password or token",
        )
    return cfg


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '0.0.0.0:9464', '[::1]:9464' → (host, port); raises ValueError saying the form."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.\-]+):(\d{1,5})", text or "")
    port = int(m.group(2) or m.group(4)) if m else -1
    if not m or port > 65535:
        raise ValueError(f"'{text}' is not an address and port like 127.0.0.1:9464 or [::1]:9464 (or \"\" for off)")
    return m.group(1) or m.group(3), port


def _listen(v: str) -> str | None:
    if not v:
        return None
    try:
        parse_listen(v)
    except ValueError as exc:
        return str(exc)
    return None


def _ops(root: _Table, env: Mapping[str, str]) -> OpsConfig:
    t = root.table("ops")
    listen = t.get("listen", str, OpsConfig.listen, _listen)
    t.done()
    if "VIGIL_OPS_LISTEN" in env:
        listen = env["VIGIL_OPS_LISTEN"].strip()
        if problem := _listen(listen):
            raise ConfigError(
                "VIGIL_OPS_LISTEN",
                problem,
                "set the environment variable to host:port, or to an empty value to turn the endpoint off",
            )
    return OpsConfig(listen=listen)


def _flood(root: _Table) -> FloodConfig:
    t = root.table("flood")
    d = FloodConfig()
    chat = t.get("log_chat", str, "")
    m = _TRUSTED_GROUP.fullmatch(chat)
    if chat and m is None:
        raise ConfigError(
            t.key("log_chat"),
            f"{chat[:300]!r} is not a chat",
            'write "telegram:CHAT_ID" (e.g. "telegram:-1001234567890") or "matrix:!ROOM_ID:SERVER"',
        )
    cfg = FloodConfig(
        count=t.get("count", int, d.count, _between(0, 100_000)),
        window=t.get("window", int, d.window, _between(1, 86400)),
        hold=t.get("hold", int, d.hold, _between(1, 7 * 86400)),
        tracked=t.get("tracked", int, d.tracked, _between(100, 1_000_000)),
        log_chat=None if m is None else ("telegram", m.group(1)) if m.group(1) is not None else ("matrix", m.group(2)),
        new_members=t.get("new_members", int, d.new_members, _between(0, 100_000)),
        new_member_minutes=t.get("new_member_minutes", int, d.new_member_minutes, _between(1, 30 * 1440)),
    )
    t.done()
    return cfg


def _snapshots(root: _Table) -> SnapshotsConfig:
    t = root.table("snapshots")
    d = SnapshotsConfig()
    cfg = SnapshotsConfig(
        enabled=t.get("enabled", bool, d.enabled),
        changes=t.get("changes", int, d.changes, _between(1, 100_000_000)),
        minutes=t.get("minutes", float, d.minutes, _between(1, 7 * 1440)),
        check_seconds=t.get("check_seconds", float, d.check_seconds, _between(1, 3600)),
        # at least two heartbeats (bot/follow.py: one a minute) within the bound
        live_minutes=t.get("live_minutes", float, d.live_minutes, _between(2, 7 * 1440)),
    )
    t.done()
    return cfg


def _retention(root: _Table) -> RetentionConfig:
    t = root.table("retention")
    d = RetentionConfig()
    days = _between(0, 36500)
    cfg = RetentionConfig(
        audit_days=t.get("audit_days", int, d.audit_days, days),
        fingerprint_days=t.get("fingerprint_days", int, d.fingerprint_days, days),
        work_days=t.get("work_days", int, d.work_days, days),
    )
    t.done()
    return cfg


def _protect(root: _Table) -> ProtectConfig:
    t = root.table("protect")
    d = ProtectConfig()
    cfg = ProtectConfig(
        enabled=t.get("enabled", bool, d.enabled),
        min_fraction=t.get("min_fraction", float, d.min_fraction, _between(0.02, 1.0)),
        group_photo_days=t.get("group_photo_days", int, d.group_photo_days, _between(1, 3650)),
        max_photos=t.get("max_photos", int, d.max_photos, _between(1, 1000)),
        session_minutes=t.get("session_minutes", int, d.session_minutes, _between(1, 1440)),
        trusted_groups=_trusted_groups(t),
    )
    t.done()
    return cfg


def _reports(root: _Table) -> ReportsConfig:
    t = root.table("reports")
    d = ReportsConfig()
    cfg = ReportsConfig(
        enabled=t.get("enabled", bool, d.enabled),
        per_member=t.get("per_member", int, d.per_member, _between(1, 1000)),
        per_chat=t.get("per_chat", int, d.per_chat, _between(1, 10000)),
        window_minutes=t.get("window_minutes", int, d.window_minutes, _between(1, 10080)),
        homeserver_poll_seconds=t.get("homeserver_poll_seconds", int, d.homeserver_poll_seconds, _between(5, 86400)),
        homeserver_page_size=t.get("homeserver_page_size", int, d.homeserver_page_size, _between(1, 1000)),
    )
    t.done()
    return cfg


def _sweep(root: _Table) -> SweepConfig:
    t = root.table("sweep")
    d = SweepConfig()
    cfg = SweepConfig(
        window_hours=t.get("window_hours", int, d.window_hours, _between(0, 720)),
        max_per_chat=t.get("max_per_chat", int, d.max_per_chat, _between(100, 10_000_000)),
        max_total=t.get("max_total", int, d.max_total, _between(100, 10_000_000)),
        fingerprint_points=t.get("fingerprint_points", int, d.fingerprint_points, _between(0, 600)),
        batch=t.get("batch", int, d.batch, _between(10, 10_000)),
    )
    t.done()
    return cfg


_TRUSTED_GROUP = re.compile(r"telegram:(-?\d{1,20})|matrix:(![^:\s]{1,200}:[A-Za-z0-9.\-\[\]:]{1,250})")


def _trusted_groups(t: _Table) -> tuple[tuple[str, str], ...]:
    """``[protect] trusted_groups``: "telegram:CHAT_ID" or "matrix:!ROOM:SERVER" entries."""
    out = []
    for i, entry in enumerate(t.get("trusted_groups", list, [])):
        m = _TRUSTED_GROUP.fullmatch(entry) if isinstance(entry, str) else None
        if m is None:
            raise ConfigError(
                t.key(f"trusted_groups[{i}]"),
                f"{entry!r} is not a group",
                'write "telegram:CHAT_ID" (e.g. "telegram:-1001234567890") or "matrix:!ROOM_ID:SERVER"',
            )
        out.append(("telegram", m.group(1)) if m.group(1) is not None else ("matrix", m.group(2)))
    return tuple(dict.fromkeys(out))


def _pipeline(root: _Table) -> PipelineConfig:
    t = root.table("pipeline")
    d = PipelineConfig()
    cfg = PipelineConfig(
        workers=t.get("workers", int, d.workers, _between(1, 64)),
        queue_size=t.get("queue_size", int, d.queue_size, _between(1, 100_000)),
        scan_timeout=t.get("scan_timeout", float, d.scan_timeout, _between(1, 3600)),
        in_flight=t.get("in_flight", int, d.in_flight, _between(1, 256)),
        download_timeout=t.get("download_timeout", float, d.download_timeout, _between(1, 3600)),
        max_attempts=t.get("max_attempts", int, d.max_attempts, _between(1, 20)),
        retry_backoff=t.get("retry_backoff", float, d.retry_backoff, _between(0.1, 86400)),
        batch_deletes=t.get("batch_deletes", bool, d.batch_deletes),
        repeat_cache_entries=t.get("repeat_cache_entries", int, d.repeat_cache_entries, _between(0, 1_000_000)),
        repeat_cache_mb=t.get("repeat_cache_mb", int, d.repeat_cache_mb, _between(1, 4096)),
        index_wait=t.get("index_wait", float, d.index_wait, _between(0, 600)),
    )
    t.done()
    return cfg


def _database(root: _Table, env: Mapping[str, str]) -> tuple[str, int]:
    """[database] url (or VIGIL_DATABASE_URL, which wins) and pool_size."""
    from bot.store.urls import is_postgres, redacted  # here: bot.store loads the database drivers

    t = root.table("database")
    url = t.get("url", str, "").strip()
    pool = t.get("pool_size", int, 10, _between(1, 100))
    t.done()
    where = "database.url"
    if env.get("VIGIL_DATABASE_URL", "").strip():
        url, where = env["VIGIL_DATABASE_URL"].strip(), "VIGIL_DATABASE_URL"
    if url and not is_postgres(url):
        raise ConfigError(
            where,
            f"'{redacted(url)[:200]}' is not a PostgreSQL URL",
            "write postgresql://USER@HOST:PORT/DATABASE (put the password in VIGIL_DATABASE_URL, not in the "
            "file), or leave it out to use the SQLite file in data_dir",
        )
    return url, pool


def _cluster(root: _Table) -> ClusterConfig:
    t = root.table("cluster")
    d = ClusterConfig()
    cfg = ClusterConfig(
        jobs=t.get("jobs", bool, d.jobs),
        concurrency=t.get("concurrency", int, d.concurrency, _between(1, 256)),
        standby_poll=t.get("standby_poll", float, d.standby_poll, _between(0.1, 60)),
        heartbeat=t.get("heartbeat", float, d.heartbeat, _between(0.5, 300)),
        stalled_after=t.get("stalled_after", float, d.stalled_after, _between(2, 3600)),
        sweep_every=t.get("sweep_every", int, d.sweep_every, _between(1, 59)),
    )
    t.done()
    if cfg.stalled_after <= 2 * cfg.heartbeat:
        raise ConfigError(
            "cluster.stalled_after",
            f"{cfg.stalled_after} s is not more than twice cluster.heartbeat ({cfg.heartbeat} s)",
            "make stalled_after at least three heartbeats, or a live worker's jobs would be run twice",
        )
    return cfg


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file (None: the defaults, plus the environment)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                str(path), "the config file does not exist", "check the path, or copy config.example.toml"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"is not valid TOML ({exc})", "fix the syntax at the line named") from None
    root = _Table(data, "")
    v = root.table("vigil")
    data_dir = v.get("data_dir", str, "data")
    # VIGIL_DATA_DIR: the container image sets it to its /data volume, whatever the file says
    data_dir = env.get("VIGIL_DATA_DIR") or data_dir
    database_url, database_pool = _database(root, env)
    cfg = Config(
        data_dir=Path(data_dir).expanduser(),
        log_format=v.choice("log_format", LOG_FORMATS, "text"),
        log_level=v.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        timezone=v.get("timezone", str, "UTC", _timezone),
        detectors=_detectors(root),
        pipeline=_pipeline(root),
        groups=_groups(root),
        telegram=_telegram(root, env),
        matrix=_matrix(root, env),
        ops=_ops(root, env),
        retention=_retention(root),
        protect=_protect(root),
        resources=root.get("resources", dict, {}),
        source=path,
        database_url=database_url,
        database_pool=database_pool,
        reports=_reports(root),
        cluster=_cluster(root),
        flood=_flood(root),
        sweep=_sweep(root),
        snapshots=_snapshots(root),
    )
    v.done()
    root.done()
    if cfg.data_dir and path is not None and not cfg.data_dir.is_absolute():
        # a relative data_dir is relative to the config file, not to wherever Vigil was started
        cfg = Config(**{**cfg.__dict__, "data_dir": (path.parent / cfg.data_dir)})
    return cfg
