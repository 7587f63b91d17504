"""Help lines and reporting routes by region and platform, from resources.toml plus the operator's overrides.

The TOML file is the catalog; the config's ``[resources]`` table has the same shape and wins:
a field set there replaces the catalog's, a new id adds a resource, ``enabled = false``
removes one. Overrides are checked strictly, so a typo stops start-up with the key named.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from bot.errors import ConfigError

_T = TypeVar("_T")
CATALOG = Path(__file__).resolve().parent / "resources.toml"
# names, purposes and worded contacts in more languages: resource_texts/<language>.toml, keyed like the catalog
TEXTS_DIR = Path(__file__).resolve().parent / "resource_texts"

PLATFORMS: tuple[str, ...] = ("telegram", "matrix")
WORLDWIDE = "worldwide"
AUDIENCES: tuple[str, ...] = ("minor", "adult", "all")
# "removal" is the old name of "regulator", still accepted from operators' configs
KINDS: tuple[str, ...] = (
    "emergency",
    "police",
    "hotline",
    "regulator",
    "helpline",
    "hash_tool",
    "professional",
    "platform",
    "removal",
)
# what every region lists, or says in its `gaps` why it cannot
REQUIRED_KINDS: tuple[str, ...] = ("emergency", "police", "helpline", "regulator", "hotline")

_FIELDS = ("name", "purpose", "contact", "audience", "kind", "secondary", "check", "enabled", "source", "checked")
_REQUIRED = ("name", "purpose", "contact", "audience", "kind")
_REGION_FIELDS = ("name", "parent", "emergency", "lead", "minor_images_crime", "gaps")
_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
_REGION_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$|^OTHER$")
# a language key in a text table: en, es, pt, pt_BR ... (a catalog may come later than the text)
_LANG = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_URL = re.compile(r"^https?://[^\s<>\"]+$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^[+*]?[0-9A-Z][0-9A-Z ()\-]*$")
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
    sources: tuple[str, ...] = ()  # where the facts come from
    checked: str = ""  # when they were checked, YYYY-MM-DD

    @property
    def role(self) -> str:
        """The kind, with the old name "removal" read as "regulator"."""
        return "regulator" if self.kind == "removal" else self.kind

    def name(self, language: str) -> str:
        return _pick(self.names, language)

    def purpose(self, language: str) -> str:
        return _pick(self.purposes, language)

    def contact(self, language: str) -> tuple[Contact, ...]:
        return _pick(self.contacts, language)


def _pick(texts: Mapping[str, _T], language: str) -> _T:
    """The text for a language: exact (pt_BR), then the bare language (pt), then English."""
    return texts.get(language) or texts.get(language.split("_")[0]) or texts["en"]


@dataclass(frozen=True)
class Region:
    """A region's name and what its short alert shows first."""

    code: str
    names: Mapping[str, str]
    parent: str | None = None
    emergency: str = ""  # resource id of the number to call when someone is in danger
    lead: str = ""  # resource id of the one help line that matters most
    minor_images_crime: bool = False  # a checked source says: a crime for under-18s, real or AI-made
    gaps: Mapping[str, str] = field(default_factory=dict)  # kind → why the region has none

    def name(self, language: str) -> str:
        return _pick(self.names, language)


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
    regions: Mapping[str, Region] = field(default_factory=dict)

    def code(self, region: str | None) -> str:
        """A region code as Vigil knows it ('es-ct', 'ES_CT' → 'ES-CT'); an unknown one is OTHER."""
        key = region_code(region)
        return key if key in self.regions else "OTHER"

    def region(self, region: str) -> tuple[Resource, ...]:
        """The resources of a region; an unknown region gets OTHER's."""
        return self.sections.get(self.code(region), ())

    def info(self, region: str) -> Region:
        return self.regions.get(self.code(region)) or Region("OTHER", MappingProxyType({"en": "other countries"}))

    def _pick_id(self, region: str, rid: str) -> Resource | None:
        return next((r for r in self.region(region) if r.id == rid), None) if rid else None

    def emergency(self, region: str) -> Resource | None:
        """The number to call when someone is in danger now."""
        return self._pick_id(region, self.info(region).emergency) or next(
            (r for r in self.region(region) if r.role == "emergency"), None
        )

    def lead(self, region: str) -> Resource | None:
        """The one help line the short alert names."""
        return self._pick_id(region, self.info(region).lead) or next(
            (r for r in self.region(region) if r.role in ("helpline", "hotline")), None
        )

    def of_role(self, region: str, role: str) -> tuple[Resource, ...]:
        return tuple(r for r in self.region(region) if r.role == role)

    def platform(self, platform: str) -> tuple[Resource, ...]:
        return self.sections.get((platform or "").lower(), ())

    def get(self, section: str, resource_id: str) -> Resource | None:
        return next((r for r in self.sections.get(section, ()) if r.id == resource_id), None)

    def secondary(self) -> tuple[Resource, ...]:
        """Entries resting on press reports or third-party pages: an operator should confirm them."""
        seen: dict[tuple[str, str], Resource] = {}
        for rs in self.sections.values():
            for r in rs:
                if r.secondary:
                    seen.setdefault((r.id, r.section), r)
        return tuple(seen.values())

    def missing(self, region: str) -> tuple[str, ...]:
        """Kinds of resource the region neither lists nor explains (should be empty)."""
        info = self.info(region)
        have = {r.role for r in self.region(region)}
        return tuple(k for k in REQUIRED_KINDS if k not in have and k not in info.gaps)


def region_code(text: str | None) -> str:
    """One spelling of a region code: upper case, '-' between country and subdivision."""
    return (text or "").strip().upper().replace("_", "-")


# --- loading ------------------------------------------------------------------------------


def _read_catalog(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


# the regions the shipped catalog describes, in its order (codes for config and /vigil region)
REGIONS: tuple[str, ...] = tuple(_read_catalog(CATALOG).get("regions", {}))
SECTIONS: tuple[str, ...] = REGIONS + (WORLDWIDE,) + PLATFORMS


def _check_text(key: str, value: Any, *, allow_list: bool = False) -> None:
    """A string, or {en=..., es=...} of strings (with allow_list: lists of strings too)."""

    def plain(v: Any) -> bool:
        if isinstance(v, str):
            return bool(v.strip())
        return allow_list and isinstance(v, list) and bool(v) and all(isinstance(s, str) and s.strip() for s in v)

    what = "a string, a list of strings" if allow_list else "a string"
    if isinstance(value, Mapping):
        unknown = [k for k in value if not isinstance(k, str) or not _LANG.match(k)]
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", "is not a language code", "use codes such as en, es, pt or pt_BR")
        if "en" not in value:
            raise ConfigError(key, "has no English text", 'add en = "..."; it is the fallback for every language')
        for lang, v in value.items():
            if not plain(v):
                raise ConfigError(f"{key}.{lang}", "is empty or not text", f"give {what}")
    elif not plain(value):
        raise ConfigError(key, "is empty or not text", f'give {what}, or {{ en = "...", es = "..." }}')


def _check_entry(key: str, entry: Any, *, new: bool, worldwide: bool) -> None:
    if not isinstance(entry, Mapping):
        raise ConfigError(key, "is not a table", f'write it as [{key}] with fields such as contact = "..."')
    allowed = _FIELDS + (("regions",) if worldwide else ())
    for name in entry:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", "is not a resource field", f"use one of {', '.join(allowed)}")
    if new and entry.get("enabled", True):
        missing = [f for f in _REQUIRED if f not in entry]
        if missing:
            raise ConfigError(
                f"{key}.{missing[0]}",
                "is missing for a new resource",
                f"a new resource needs {', '.join(_REQUIRED)} (or fix the id if you meant an existing one)",
            )
    for text_field in ("name", "purpose"):
        if text_field in entry:
            _check_text(f"{key}.{text_field}", entry[text_field])
    if "check" in entry and not isinstance(entry["check"], str):
        raise ConfigError(f"{key}.check", "is not text", 'write check = "what an operator should confirm"')
    if "contact" in entry:
        _check_text(f"{key}.contact", entry["contact"], allow_list=True)
    if "audience" in entry and entry["audience"] not in AUDIENCES:
        raise ConfigError(
            f"{key}.audience", f"'{entry['audience']}' is not an audience", f"use one of {', '.join(AUDIENCES)}"
        )
    if "kind" in entry and entry["kind"] not in KINDS:
        raise ConfigError(f"{key}.kind", f"'{entry['kind']}' is not a kind", f"use one of {', '.join(KINDS[:-1])}")
    for flag in ("secondary", "enabled"):
        if flag in entry and not isinstance(entry[flag], bool):
            raise ConfigError(f"{key}.{flag}", "is not true or false", f"write {flag} = true or {flag} = false")
    if "source" in entry:
        src = entry["source"]
        if not isinstance(src, list) or not src or any(not isinstance(u, str) or not _URL.match(u) for u in src):
            raise ConfigError(
                f"{key}.source", f"{src!r} is not a list of web addresses", 'write source = ["https://..."]'
            )
    if "checked" in entry and not (isinstance(entry["checked"], str) and _DATE.match(entry["checked"])):
        raise ConfigError(f"{key}.checked", f"{entry['checked']!r} is not a date", 'write checked = "YYYY-MM-DD"')
    if "regions" in entry:
        regions = entry["regions"]
        if not isinstance(regions, list) or any(r not in REGIONS for r in regions):
            raise ConfigError(
                f"{key}.regions", f"{regions!r} is not a list of regions", f"use regions from {', '.join(REGIONS)}"
            )


def _parents(regions: Mapping[str, Any], code: str) -> list[str]:
    """The region's ancestors, nearest first."""
    chain, seen = [], {code}
    parent = regions.get(code, {}).get("parent")
    while parent:
        chain.append(parent)
        if parent in seen:
            break
        seen.add(parent)
        parent = regions.get(parent, {}).get("parent")
    return chain


def _merge_overrides(
    data: dict[str, dict[str, dict[str, Any]]], overrides: Mapping[str, Any], regions: Mapping[str, Any]
) -> None:
    for section, entries in overrides.items():
        key = f"resources.{section}"
        if section not in SECTIONS:
            raise ConfigError(key, "is not a region or platform", f"use one of {', '.join(SECTIONS)}")
        if not isinstance(entries, Mapping):
            raise ConfigError(key, "is not a table", f"write [{key}.<id>] tables, e.g. [{key}.my_helpline]")
        known = data.setdefault(section, {})
        inherited: set[str] = set()
        if section in REGIONS:
            inherited |= set(data.get(WORLDWIDE, {}))
            for parent in _parents(regions, section):
                inherited |= set(data.get(parent, {}))
        for rid, entry in entries.items():
            rkey = f"{key}.{rid}"
            if not isinstance(rid, str) or not _ID.match(rid):
                raise ConfigError(rkey, "is not a usable id", "use lower-case letters, digits and _")
            exists = rid in known or rid in inherited
            _check_entry(rkey, entry, new=not exists, worldwide=section == WORLDWIDE)
            if not exists and entry.get("enabled", True) is False:
                raise ConfigError(
                    f"{rkey}.enabled",
                    f"there is no resource '{rid}' in {section} to disable",
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
        sources=tuple(entry.get("source", ())),
        checked=entry.get("checked", ""),
    )


def _check_region(code: str, meta: Any, catalog: Path) -> None:
    key = f"regions.{code}"
    if not _REGION_CODE.match(code) and code != "EU":
        raise ConfigError(key, f"in {catalog}: '{code}' is not a region code", "use ISO 3166 codes such as FR or ES-CT")
    if not isinstance(meta, Mapping):
        raise ConfigError(key, f"in {catalog} is not a table", 'write [regions.XX] with name = { en = "..." }')
    for name in meta:
        if name not in _REGION_FIELDS:
            raise ConfigError(f"{key}.{name}", "is not a region field", f"use one of {', '.join(_REGION_FIELDS)}")
    _check_text(f"{key}.name", meta.get("name"))
    if meta.get("parent") is not None and meta["parent"] not in REGIONS:
        raise ConfigError(f"{key}.parent", f"'{meta['parent']}' is not a region", f"use one of {', '.join(REGIONS)}")
    gaps = meta.get("gaps", {})
    if not isinstance(gaps, Mapping) or any(
        k not in REQUIRED_KINDS or not isinstance(v, str) or not v.strip() for k, v in gaps.items()
    ):
        raise ConfigError(
            f"{key}.gaps", 'is not a table of kind = "why"', f"use kinds from {', '.join(REQUIRED_KINDS)}"
        )


def _nearest(chain: list[Mapping[str, Any]], name: str, default: Any) -> Any:
    """A region's own value of a field, else its parent's, else the default."""
    return next((m[name] for m in chain if name in m), default)


def _regions(raw: Mapping[str, Any]) -> Mapping[str, Region]:
    out: dict[str, Region] = {}
    for code, meta in raw.items():
        chain = [meta] + [raw[p] for p in _parents(raw, code) if p in raw]
        first = partial(_nearest, chain)
        gaps: dict[str, str] = {}
        for m in reversed(chain):  # the nearest region's reasons win
            gaps.update(m.get("gaps", {}))
        out[code] = Region(
            code=code,
            names=MappingProxyType(_texts(meta["name"])),
            parent=meta.get("parent"),
            emergency=first("emergency", ""),
            lead=first("lead", ""),
            minor_images_crime=bool(first("minor_images_crime", False)),
            gaps=MappingProxyType(gaps),
        )
    return MappingProxyType(out)


_TEXT_FIELDS = ("name", "purpose", "contact")


def _add_texts(raw: dict[str, Any], texts_dir: Path) -> None:
    """Adds each resource_texts/<language>.toml to the catalog's text tables, in place.

    An overlay is keyed like the catalog ([regions.<CODE>] name; [resources.<section>.<id>] name, purpose,
    and contact where the catalog words it per language) and names only what the catalog has, so a
    renamed or removed id is caught at start-up. A text the catalog itself has in that language wins.
    """
    regions, resources = raw.get("regions", {}), raw.get("resources", {})
    for path in sorted(texts_dir.glob("*.toml")):
        lang = path.stem
        if not _LANG.match(lang) or lang == "en":
            raise ConfigError(
                str(path), "is not named after a language", "name it <language>.toml, e.g. ca.toml or pt_BR.toml"
            )
        overlay = _read_catalog(path)
        for key in overlay:
            if key not in ("regions", "resources"):
                raise ConfigError(
                    f"{path}: {key}",
                    "is not a table of the resources file",
                    "use [regions.<CODE>] and [resources.<section>.<id>]",
                )
        targets: list[tuple[str, dict[str, Any], Mapping[str, Any], tuple[str, ...]]] = []
        for code, meta in overlay.get("regions", {}).items():
            if code not in regions:
                raise ConfigError(
                    f"{path}: regions.{code}", "is not a region of resources.toml", f"use one of {', '.join(regions)}"
                )
            targets.append((f"regions.{code}", regions[code], meta, ("name",)))
        for section, entries in overlay.get("resources", {}).items():
            if section not in resources or not isinstance(entries, Mapping):
                raise ConfigError(
                    f"{path}: resources.{section}",
                    "is not a section of resources.toml",
                    f"use one of {', '.join(resources)}",
                )
            for rid, fields in entries.items():
                if rid not in resources[section]:
                    raise ConfigError(
                        f"{path}: resources.{section}.{rid}",
                        "is not a resource of resources.toml",
                        f"check the id against bot/guidance/resources.toml [resources.{section}]",
                    )
                targets.append((f"resources.{section}.{rid}", resources[section][rid], fields, _TEXT_FIELDS))
        for key, entry, fields, allowed in targets:
            if not isinstance(fields, Mapping):
                raise ConfigError(
                    f"{path}: {key}", "is not a table", f'write [{key}] with {" / ".join(allowed)} = "..."'
                )
            for field_name, value in fields.items():
                where = f"{path}: {key}.{field_name}"
                if field_name not in allowed:
                    raise ConfigError(where, "is not a text field", f"use {', '.join(allowed)}")
                if field_name == "contact" and not isinstance(entry.get("contact"), Mapping):
                    raise ConfigError(where, "is the same in every language in resources.toml", "leave it out")
                if isinstance(value, Mapping):
                    raise ConfigError(where, "is a table", f"give the {lang} text only")
                _check_text(where, value, allow_list=field_name == "contact")
                entry[field_name] = {lang: value, **_texts(entry[field_name])}


def load_resources(
    overrides: Mapping[str, Any] | None = None, *, catalog: Path = CATALOG, texts_dir: Path | None = None
) -> Resources:
    """The catalog, with its texts in more languages and the operator's overrides applied.

    ``overrides`` is the config's ``[resources]`` table: ``{"ES": {"incibe_017": {"contact": "..."}}}``
    (a mapping with a single "resources" key is unwrapped). ``texts_dir`` holds the <language>.toml
    overlays (the shipped ones for the shipped catalog). Raises ``ConfigError`` naming the key.
    """
    raw = _read_catalog(catalog)
    if texts_dir is None and catalog == CATALOG:
        texts_dir = TEXTS_DIR
    if texts_dir is not None and texts_dir.is_dir():
        _add_texts(raw, texts_dir)
    region_meta = raw.get("regions", {})
    for code, meta in region_meta.items():
        _check_region(code, meta, catalog)
    data: dict[str, dict[str, dict[str, Any]]] = {s: dict(v) for s, v in raw.get("resources", {}).items()}
    for section, entries in data.items():  # the shipped file is checked like an override
        if section not in SECTIONS:
            raise ConfigError(
                f"resources.{section}", f"in {catalog} is not a region or platform", f"use one of {', '.join(SECTIONS)}"
            )
        for rid, entry in entries.items():
            _check_entry(f"resources.{section}.{rid}", entry, new=True, worldwide=section == WORLDWIDE)
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ConfigError("resources", "is not a table", "write [resources.<REGION>.<id>] tables")
        if set(overrides) == {"resources"}:
            overrides = overrides["resources"]
        _merge_overrides(data, overrides, region_meta)

    # each region's entries by id, before `enabled` is applied: a sub-region starts from its parent's
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    worldwide = data.get(WORLDWIDE, {})
    for region in sorted(REGIONS, key=lambda c: len(_parents(region_meta, c))):
        local = data.get(region, {})
        parent = region_meta.get(region, {}).get("parent")
        if parent:
            # the region's own services first (its police, its child line), then the country's
            entries = {rid: {} for rid in local if rid not in merged.get(parent, {})}
            entries.update({rid: dict(e) for rid, e in merged.get(parent, {}).items()})
        else:
            # worldwide entries come first in a region's list: they are the age routes everyone needs
            entries = {
                rid: dict(e) for rid, e in worldwide.items() if region in e.get("regions", REGIONS) or rid in local
            }
        for rid, entry in local.items():
            entries[rid] = {**entries.get(rid, {}), **entry}
        merged[region] = entries
    sections: dict[str, list[Resource]] = {s: [] for s in REGIONS + PLATFORMS}
    for region in REGIONS:
        sections[region] = [_build(region, rid, e) for rid, e in merged[region].items() if e.get("enabled", True)]
    for platform in PLATFORMS:
        for rid, entry in data.get(platform, {}).items():
            if entry.get("enabled", True):
                sections[platform].append(_build(platform, rid, entry))

    notes = tuple(
        Note(nid, n.get("text", ""), bool(n.get("secondary", False)), n.get("check", ""))
        for nid, n in raw.get("notes", {}).items()
    )
    return Resources(MappingProxyType({k: tuple(v) for k, v in sections.items()}), notes, _regions(region_meta))
