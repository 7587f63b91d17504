"""Help lines and reporting routes by region and platform, from resources.toml plus the operator's overrides.

The TOML file is the catalog; the config's ``[resources]`` table has the same shape and wins:
a field set there replaces the catalog's, a new id adds a resource, ``enabled = false``
removes one. Overrides are checked strictly, so a typo stops start-up with the key named.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from detectors.errors import ConfigError

CATALOG = Path(__file__).resolve().parent / "resources.toml"

REGIONS: tuple[str, ...] = ("ES", "GB", "US", "EU", "OTHER")
PLATFORMS: tuple[str, ...] = ("telegram", "matrix")
WORLDWIDE = "worldwide"
SECTIONS: tuple[str, ...] = REGIONS + (WORLDWIDE,) + PLATFORMS
AUDIENCES: tuple[str, ...] = ("minor", "adult", "all")
KINDS: tuple[str, ...] = ("emergency", "police", "hotline", "removal", "helpline", "professional", "platform")
LANGUAGES: tuple[str, ...] = ("en", "es")

_FIELDS = ("name", "purpose", "contact", "audience", "kind", "secondary", "check", "enabled")
_REQUIRED = ("name", "purpose", "contact", "audience", "kind")
_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")

_URL = re.compile(r"^https?://[^\s<>\"]+$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9A-Z][0-9A-Z ()\-]*$")
_APP = re.compile(r"^(WhatsApp|Telegram|Signal|Matrix):\s*(\S.*)$")


@dataclass(frozen=True)
class Contact:
    """One way to reach a resource, as written in the catalog."""

    kind: str  # "phone" | "url" | "email" | "app" | "text"
    value: str
    app: str = ""  # for kind "app": "WhatsApp", "Telegram", ...

    @property
    def shown(self) -> str:
        """How it reads in an alert: web addresses without the scheme, apps with their name."""
        if self.kind == "url":
            return re.sub(r"^https?://", "", self.value, flags=re.IGNORECASE).rstrip("/")
        if self.kind == "app":
            return f"{self.app}: {self.value}"
        return self.value

    @property
    def href(self) -> str | None:
        """A link target for web addresses only (chat apps reject other schemes in formatted text)."""
        return self.value if self.kind == "url" else None


def parse_contact(text: str) -> Contact:
    text = " ".join(text.split())
    app = _APP.match(text)
    if app:
        return Contact("app", app.group(2), app.group(1))
    if _URL.match(text):
        return Contact("url", text)
    if _EMAIL.match(text):
        return Contact("email", text)
    if _PHONE.match(text) and sum(c.isdigit() for c in text) >= 3:
        return Contact("phone", text)
    return Contact("text", text)


@dataclass(frozen=True)
class Resource:
    id: str
    section: str  # region or platform it is listed under
    kind: str
    audience: str
    names: Mapping[str, str]  # language → text; "en" always present
    purposes: Mapping[str, str]
    contacts: Mapping[str, tuple[Contact, ...]]
    secondary: bool = False
    check: str = ""

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names["en"]

    def purpose(self, language: str) -> str:
        return self.purposes.get(language) or self.purposes["en"]

    def contact(self, language: str) -> tuple[Contact, ...]:
        return self.contacts.get(language) or self.contacts["en"]


@dataclass(frozen=True)
class Note:
    """A background fact kept with its source status; not shown in alerts."""

    id: str
    text: str
    secondary: bool = False
    check: str = ""


@dataclass(frozen=True)
class Resources:
    sections: Mapping[str, tuple[Resource, ...]]
    notes: tuple[Note, ...] = ()

    def region(self, region: str) -> tuple[Resource, ...]:
        """The resources of a region (ES, GB, US, EU, OTHER); an unknown region gets OTHER's."""
        key = (region or "").upper()
        return self.sections.get(key if key in REGIONS else "OTHER", ())

    def platform(self, platform: str) -> tuple[Resource, ...]:
        return self.sections.get((platform or "").lower(), ())

    def get(self, section: str, resource_id: str) -> Resource | None:
        return next((r for r in self.sections.get(section, ()) if r.id == resource_id), None)

    def secondary(self) -> tuple[Resource, ...]:
        """Entries resting on press reports: an operator should confirm them."""
        return tuple(r for rs in self.sections.values() for r in rs if r.secondary)


# --- loading ------------------------------------------------------------------------------


def _read_catalog(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _check_text(key: str, value: Any, *, allow_list: bool = False) -> None:
    """A string, or {en=..., es=...} of strings (with allow_list: lists of strings too)."""

    def plain(v: Any) -> bool:
        if isinstance(v, str):
            return bool(v.strip())
        return allow_list and isinstance(v, list) and bool(v) and all(isinstance(s, str) and s.strip() for s in v)

    what = "a string, a list of strings" if allow_list else "a string"
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in LANGUAGES]
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", "is not a language Vigil has", f"use {', '.join(LANGUAGES)}")
        if "en" not in value:
            raise ConfigError(key, "has no English text", "add en = \"...\"; it is the fallback for every language")
        for lang, v in value.items():
            if not plain(v):
                raise ConfigError(f"{key}.{lang}", "is empty or not text", f"give {what}")
    elif not plain(value):
        raise ConfigError(key, "is empty or not text", f"give {what}, or {{ en = \"...\", es = \"...\" }}")


def _check_entry(key: str, entry: Any, *, new: bool, worldwide: bool) -> None:
    if not isinstance(entry, Mapping):
        raise ConfigError(key, "is not a table", f"write it as [{key}] with fields such as contact = \"...\"")
    allowed = _FIELDS + (("regions",) if worldwide else ())
    for field in entry:
        if field not in allowed:
            raise ConfigError(f"{key}.{field}", "is not a resource field", f"use one of {', '.join(allowed)}")
    if new and entry.get("enabled", True):
        missing = [f for f in _REQUIRED if f not in entry]
        if missing:
            raise ConfigError(
                f"{key}.{missing[0]}",
                "is missing for a new resource",
                f"a new resource needs {', '.join(_REQUIRED)} (or fix the id if you meant an existing one)",
            )
    for field in ("name", "purpose"):
        if field in entry:
            _check_text(f"{key}.{field}", entry[field])
    if "check" in entry and not isinstance(entry["check"], str):
        raise ConfigError(f"{key}.check", "is not text", "write check = \"what an operator should confirm\"")
    if "contact" in entry:
        _check_text(f"{key}.contact", entry["contact"], allow_list=True)
    if "audience" in entry and entry["audience"] not in AUDIENCES:
        raise ConfigError(f"{key}.audience", f"'{entry['audience']}' is not an audience", f"use one of {', '.join(AUDIENCES)}")
    if "kind" in entry and entry["kind"] not in KINDS:
        raise ConfigError(f"{key}.kind", f"'{entry['kind']}' is not a kind", f"use one of {', '.join(KINDS)}")
    for field in ("secondary", "enabled"):
        if field in entry and not isinstance(entry[field], bool):
            raise ConfigError(f"{key}.{field}", "is not true or false", f"write {field} = true or {field} = false")
    if "regions" in entry:
        regions = entry["regions"]
        if not isinstance(regions, list) or any(r not in REGIONS for r in regions):
            raise ConfigError(f"{key}.regions", f"{regions!r} is not a list of regions", f"use regions from {', '.join(REGIONS)}")


def _merge_overrides(data: dict[str, dict[str, dict]], overrides: Mapping[str, Any]) -> None:
    for section, entries in overrides.items():
        key = f"resources.{section}"
        if section not in SECTIONS:
            raise ConfigError(key, "is not a region or platform", f"use one of {', '.join(SECTIONS)}")
        if not isinstance(entries, Mapping):
            raise ConfigError(key, "is not a table", f"write [{key}.<id>] tables, e.g. [{key}.my_helpline]")
        known = data.setdefault(section, {})
        worldwide_ids = data.get(WORLDWIDE, {}) if section in REGIONS else {}
        for rid, entry in entries.items():
            rkey = f"{key}.{rid}"
            if not isinstance(rid, str) or not _ID.match(rid):
                raise ConfigError(rkey, "is not a usable id", "use lower-case letters, digits and _")
            exists = rid in known or rid in worldwide_ids
            _check_entry(rkey, entry, new=not exists, worldwide=section == WORLDWIDE)
            if not exists and entry.get("enabled", True) is False:
                raise ConfigError(
                    f"{rkey}.enabled", f"there is no resource '{rid}' in {section} to disable",
                    f"check the id against bot/guidance/resources.toml [resources.{section}] or [resources.worldwide]",
                )
            known.setdefault(rid, {}).update(copy.deepcopy(dict(entry)))


def _texts(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {"en": value}


def _contacts(value: Any) -> Mapping[str, tuple[Contact, ...]]:
    out = {}
    for lang, v in _texts(value).items():
        items = [v] if isinstance(v, str) else list(v)
        out[lang] = tuple(parse_contact(s) for s in items)
    return MappingProxyType(out)


def _build(section: str, rid: str, entry: Mapping[str, Any]) -> Resource:
    return Resource(
        id=rid,
        section=section,
        kind=entry["kind"],
        audience=entry["audience"],
        names=MappingProxyType({k: " ".join(v.split()) for k, v in _texts(entry["name"]).items()}),
        purposes=MappingProxyType({k: " ".join(v.split()) for k, v in _texts(entry["purpose"]).items()}),
        contacts=_contacts(entry["contact"]),
        secondary=bool(entry.get("secondary", False)),
        check=entry.get("check", ""),
    )


def load_resources(overrides: Mapping[str, Any] | None = None, *, catalog: Path = CATALOG) -> Resources:
    """The catalog with the operator's overrides applied.

    ``overrides`` is the config's ``[resources]`` table: ``{"ES": {"incibe_017": {"contact": "..."}}}``
    (a mapping with a single "resources" key is unwrapped). Raises ``ConfigError`` naming the key.
    """
    raw = _read_catalog(catalog)
    data: dict[str, dict[str, dict]] = {s: dict(v) for s, v in raw.get("resources", {}).items()}
    for section, entries in data.items():  # the shipped file is checked like an override
        if section not in SECTIONS:
            raise ConfigError(f"resources.{section}", f"in {catalog} is not a region or platform", f"use one of {', '.join(SECTIONS)}")
        for rid, entry in entries.items():
            _check_entry(f"resources.{section}.{rid}", entry, new=True, worldwide=section == WORLDWIDE)
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ConfigError("resources", "is not a table", "write [resources.<REGION>.<id>] tables")
        if set(overrides) == {"resources"}:
            overrides = overrides["resources"]
        _merge_overrides(data, overrides)

    sections: dict[str, list[Resource]] = {s: [] for s in REGIONS + PLATFORMS}
    worldwide = data.get(WORLDWIDE, {})
    for region in REGIONS:
        local = data.get(region, {})
        # worldwide entries come first in a region's list: they are the age routes everyone needs
        for rid, entry in worldwide.items():
            if region in entry.get("regions", REGIONS) or rid in local:
                merged = {**entry, **local.get(rid, {})}
                if merged.get("enabled", True):
                    sections[region].append(_build(region, rid, merged))
        for rid, entry in local.items():
            if rid not in worldwide and entry.get("enabled", True):
                sections[region].append(_build(region, rid, entry))
    for platform in PLATFORMS:
        for rid, entry in data.get(platform, {}).items():
            if entry.get("enabled", True):
                sections[platform].append(_build(platform, rid, entry))

    notes = tuple(
        Note(nid, n.get("text", ""), bool(n.get("secondary", False)), n.get("check", ""))
        for nid, n in raw.get("notes", {}).items()
    )
    return Resources(MappingProxyType({k: tuple(v) for k, v in sections.items()}), notes)
