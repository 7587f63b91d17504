"""Translations for admin-facing texts: gettext catalogs read from the .po files at run time.

English msgids in the code are the source strings. ``bot/guidance/locales/<lang>/LC_MESSAGES/vigil.po``
holds the translations; Babel parses them when a language is first used (no compile step), and
a missing or empty translation falls back to the English msgid. The languages Vigil speaks are
the catalogs present: adding one is dropping its .po file in (``<lang>`` is a language code such
as ``ca`` or, for a regional variant, ``pt_BR``). ``supported`` turns any client's language tag
into one of them, in this one place. Dates and numbers are formatted
in the admin's language with Babel, in the time zone from the config.
"""

from __future__ import annotations

import gettext as _gettext
import io
import string
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime as _babel_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po, write_po
from babel.numbers import format_percent as _babel_percent

from bot.errors import ConfigError

DEFAULT_LANGUAGE = "en"
DOMAIN = "vigil"
LOCALES_DIR = Path(__file__).resolve().parent / "guidance" / "locales"
BOT_DIR = Path(__file__).resolve().parent


# The CLDR locale a catalog stands for, where Babel's reading of the bare code is another variant:
# Babel's "pt" is Brazilian Portuguese, Vigil's pt catalog is European Portuguese (pt_BR has its own).
# It decides the plural rule the catalog must declare and how dates and numbers are written.
CLDR_LOCALES: dict[str, str] = {"pt": "pt_PT"}


def cldr_locale(language: str) -> str:
    """The Babel locale for a catalog's language: 'pt' → 'pt_PT', 'pt_BR' → 'pt_BR', 'es' → 'es'."""
    return CLDR_LOCALES.get(language, language)


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; translate it later with gettext."""
    return message


def available_languages(locales_dir: Path = LOCALES_DIR) -> tuple[str, ...]:
    """English (the source) and every language with a catalog, sorted: ('ca', 'en', 'es', 'pt', 'pt_BR')."""
    found = {DEFAULT_LANGUAGE}
    if locales_dir.is_dir():
        found |= {d.name for d in locales_dir.iterdir() if (d / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()}
    return tuple(sorted(found))


# the languages of the shipped catalogs, read once at start-up
LANGUAGES: tuple[str, ...] = available_languages()


def supported(tag: str | None, languages: Iterable[str] | None = None) -> str | None:
    """The catalog for a client's or admin's language tag, or None when Vigil has none.

    'pt-BR' → 'pt_BR' if that catalog exists, else 'pt'; 'ca-ES' → 'ca'; 'ES' → 'es';
    'zh-Hant-TW' → None unless a 'zh' catalog exists. The one place tags are normalised.
    """
    have = {lang.lower(): lang for lang in (LANGUAGES if languages is None else languages)}
    parts = [p for p in (tag or "").strip().replace("_", "-").split("-") if p]
    if not parts or not parts[0].isalpha() or len(parts[0]) > 8:
        return None
    primary = parts[0].lower()
    region = next((p for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
    if region and f"{primary}_{region}".lower() in have:
        return have[f"{primary}_{region}".lower()]
    return have.get(primary)


def language_of(tag: str | None, locales_dir: Path = LOCALES_DIR) -> str:
    """'es-ES', 'es_MX', 'ES' → 'es'; anything Vigil has no catalog for → 'en'."""
    have = LANGUAGES if locales_dir == LOCALES_DIR else available_languages(locales_dir)
    return supported(tag, have) or DEFAULT_LANGUAGE


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; a wrong name is a config error, since that is where it comes from."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            "timezone", f"'{name}' is not a known time zone", "use an IANA name such as UTC or Europe/Madrid"
        ) from None


# --- catalogs ------------------------------------------------------------------------

_lock = threading.Lock()
_cache: dict[tuple[Path, str], _gettext.NullTranslations] = {}


def po_path(language: str, locales_dir: Path = LOCALES_DIR) -> Path:
    return locales_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str, locales_dir: Path = LOCALES_DIR) -> Catalog | None:
    """The parsed .po file of a language, or None when the language has none."""
    path = po_path(language, locales_dir)
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


def _load(language: str, locales_dir: Path) -> _gettext.NullTranslations:
    catalog = read_catalog(language, locales_dir)
    if catalog is None:
        return _gettext.NullTranslations()
    # GNUTranslations does the lookups and plural rules; it reads the catalog from memory
    buf = io.BytesIO()
    write_mo(buf, catalog)  # skips fuzzy and empty entries, so they fall back to English
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def translations(language: str, locales_dir: Path = LOCALES_DIR) -> _gettext.NullTranslations:
    """The shared, read-only translations of a language, parsed once per process."""
    key = (locales_dir, language_of(language, locales_dir))
    found = _cache.get(key)
    if found is None:
        with _lock:
            found = _cache.get(key)
            if found is None:
                found = _cache[key] = _load(key[1], locales_dir)
    return found


def clear_cache() -> None:
    """Forget parsed catalogs, so edited .po files are read again."""
    with _lock:
        _cache.clear()


# --- the translator ------------------------------------------------------------------


def _safe_format(translated: str, source: str, fmt: dict[str, Any]) -> str:
    # a broken placeholder in a translation must not lose the alert: fall back to English
    try:
        return translated.format(**fmt)
    except (KeyError, IndexError, ValueError):
        return source.format(**fmt)


class Translator:
    """Texts, dates and numbers in one admin's language. Cheap to make; catalogs are shared."""

    def __init__(
        self, language: str | None = DEFAULT_LANGUAGE, timezone: str = "UTC", *, locales_dir: Path = LOCALES_DIR
    ) -> None:
        self.language = language_of(language, locales_dir)
        self.timezone_name = timezone or "UTC"
        self.tzinfo = zone(self.timezone_name)
        self._t = translations(self.language, locales_dir)

    def __repr__(self) -> str:
        return f"Translator({self.language!r}, timezone={self.timezone_name!r})"

    def gettext(self, msgid: str, **fmt: Any) -> str:
        """The translation of ``msgid``; with keyword arguments, formatted with them."""
        translated = self._t.gettext(msgid)
        return _safe_format(translated, msgid, fmt) if fmt else translated

    def ngettext(self, singular: str, plural: str, n: int, **fmt: Any) -> str:
        """The singular or plural form for ``n``, formatted; ``{n}`` is filled in unless given."""
        translated = self._t.ngettext(singular, plural, n)
        fmt.setdefault("n", n)
        return _safe_format(translated, singular if n == 1 else plural, fmt)

    def format_datetime(self, moment: datetime, format: str = "medium") -> str:
        """A moment in the configured time zone and the admin's language, e.g. '5 mar 2024, 15:04:05 (Europe/Madrid)'.

        A naive datetime is taken as UTC, which is what Vigil stores.
        """
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        shown = _babel_datetime(moment, format, tzinfo=self.tzinfo, locale=cldr_locale(self.language))
        return f"{shown} ({self.timezone_name})"

    def format_percent(self, fraction: float) -> str:
        """0.914 → '91%' (English) or '91 %' (Spanish)."""
        return _babel_percent(max(0.0, min(1.0, float(fraction))), locale=cldr_locale(self.language))


# --- checks used by tests and by whoever updates the catalogs -------------------------


@dataclass(frozen=True)
class ExtractedMessage:
    msgid: str | tuple[str, ...]
    path: str
    line: int


def extract_messages(root: Path = BOT_DIR) -> list[ExtractedMessage]:
    """Every gettext/ngettext/N_ string in the Python files under ``root``."""
    found: list[ExtractedMessage] = []
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(root), method_map=[("**.py", "python")], strip_comment_tags=True
    ):
        if isinstance(message, tuple):
            message = tuple(m for m in message if m)
            if not message:
                continue
        elif not message:
            continue
        found.append(ExtractedMessage(message, filename, lineno))
    return found


def placeholders(text: str) -> frozenset[str]:
    """The format field names in a text: 'Hi {name}, {n} new' → {'name', 'n'}."""
    names = set()
    for _literal, field, _spec, _conv in string.Formatter().parse(text):
        if field is not None:
            names.add(field.split(".")[0].split("[")[0])
    return frozenset(names)


def catalog_problems(language: str, messages: Iterable[ExtractedMessage], locales_dir: Path = LOCALES_DIR) -> list[str]:
    """What is missing or wrong in a language's catalog for these messages; empty when all is well."""
    catalog = read_catalog(language, locales_dir)
    if catalog is None:
        return [f"no catalog at {po_path(language, locales_dir)}"]
    problems: list[str] = []
    wanted_plurals = get_plural(cldr_locale(language))
    if (catalog.num_plurals, catalog.plural_expr) != (wanted_plurals.num_plurals, wanted_plurals.plural_expr):
        problems.append(
            f"{po_path(language, locales_dir)}: the Plural-Forms header says {catalog.plural_forms!r}; "
            f"{language} needs {wanted_plurals.plural_forms!r}"
        )
    for m in messages:
        ids = m.msgid if isinstance(m.msgid, tuple) else (m.msgid,)
        where = f"{m.path}:{m.line}"
        entry = catalog.get(ids[0])
        found = entry.string if entry is not None else None
        strings: tuple[str | None, ...] = tuple(found) if isinstance(found, (tuple, list)) else (found,)
        if entry is None or not all(strings):
            problems.append(f"{where}: no {language} translation for {ids[0]!r}")
            continue
        if entry.fuzzy:
            problems.append(f"{where}: the {language} translation of {ids[0]!r} is marked fuzzy")
        if len(ids) > 1 and len(strings) != wanted_plurals.num_plurals:
            problems.append(
                f"{where}: {ids[0]!r} has {len(strings)} plural forms; {language} needs {wanted_plurals.num_plurals}"
            )
        try:
            wanted = frozenset().union(*(placeholders(i) for i in ids))
            for s in strings:
                got = placeholders(s or "")
                # a plural form may leave out {n} (e.g. "one image"), never add or rename a field
                if not got <= wanted or (len(ids) == 1 and got != wanted):
                    problems.append(
                        f"{where}: placeholders differ in {ids[0]!r}: {sorted(wanted)} vs {sorted(got)} in {s!r}"
                    )
        except ValueError as exc:
            problems.append(f"{where}: bad format string in {ids[0]!r}: {exc}")
    return problems


def update_catalogs(root: Path = BOT_DIR, locales_dir: Path = LOCALES_DIR) -> dict[str, int]:
    """Brings every .po file in line with the code: new msgids are added untranslated, unused ones
    dropped, translations kept. Returns how many messages lack a translation per language."""
    template = Catalog(domain=DOMAIN, project="Vigil")
    for m in extract_messages(root):
        template.add(m.msgid, locations=[(m.path, m.line)])
    missing: dict[str, int] = {}
    for language in available_languages(locales_dir):
        catalog = read_catalog(language, locales_dir) or Catalog(locale=language, domain=DOMAIN)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.project, catalog.version, catalog.fuzzy = "Vigil", "0.1", False
        catalog.copyright_holder = "Vigil contributors"
        catalog.msgid_bugs_address = ""
        catalog.header_comment = (
            f"# Vigil's admin texts, language: {language}. English msgids are the source strings.\n"
            "# Update with: python -m bot.i18n update; check with: python -m bot.i18n check\n"
            "# SPDX-License-Identifier: AGPL-3.0-or-later"
        )
        catalog.obsolete.clear()
        path = po_path(language, locales_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, catalog, width=100, no_location=True, sort_output=False, omit_header=False)
        missing[language] = sum(
            1 for msg in catalog if msg.id and not (all(msg.string) if isinstance(msg.string, tuple) else msg.string)
        )
    clear_cache()
    return missing


def _main(argv: list[str]) -> int:
    """python -m bot.i18n check | update"""
    if argv[:1] == ["update"]:
        for language, count in update_catalogs().items():
            print(f"{language}: {count} messages without a translation")
        return 0
    if argv[:1] == ["check"]:
        messages = extract_messages()
        failed = False
        for language in available_languages():
            if language == DEFAULT_LANGUAGE:
                continue
            problems = catalog_problems(language, messages)
            print("\n".join(problems) or f"{language}: every message is translated")
            failed = failed or bool(problems)
        return 1 if failed else 0
    print("usage: python -m bot.i18n check|update")
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))


class Translators:
    """One Translator per language, made once: the admin's own language when Vigil has a catalog
    for it, else ``fallback`` (the group's), else English."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self._made: dict[str, Translator] = {}

    def __call__(self, language: str | None, fallback: str = DEFAULT_LANGUAGE) -> Translator:
        lang = supported(language) or supported(fallback) or DEFAULT_LANGUAGE
        if lang not in self._made:
            self._made[lang] = Translator(lang, timezone=self.timezone)
        return self._made[lang]
