"""The generator catalog: names of AI tools, PNG keywords and settings texts that count as evidence.

Names and keywords come from ``detectors/data/generators.toml`` plus any files an operator
adds (``ProvenanceScanner(extra_files=...)``); extra files only add. A malformed file is a
``SettingError`` naming the file, the entry and the fix, raised when the scanner is made,
never while an image is checked.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from detectors.errors import SettingError

DEFAULT_GENERATORS_FILE = Path(__file__).resolve().parent.parent / "data" / "generators.toml"

KIND_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "image-generator": "an AI image generator",
        "face-swap": "an AI face-swap or face-altering app",
        "nudify": "an app that makes fake nude images ('nudify')",
    }
)


@dataclass(frozen=True)
class Generator:
    name: str
    kind: str  # a key of KIND_TEXT
    match: tuple[str, ...]


@dataclass(frozen=True)
class PngKey:
    key: str
    generator: str
    contains_any: tuple[str, ...] = ()  # empty: the keyword alone counts


@dataclass(frozen=True)
class SettingsText:
    generator: str
    contains_all: tuple[str, ...]


@dataclass(frozen=True)
class GeneratorCatalog:
    generators: tuple[Generator, ...]
    png_keys: tuple[PngKey, ...]
    settings_texts: tuple[SettingsText, ...]


def _norm_name(text: str) -> str:
    # the same folding the name pattern allows: case, and runs of space/_/-
    return re.sub(r"[\s_-]+", " ", text.casefold()).strip()


def _names(value: object, key: str) -> tuple[str, ...]:
    names = _strings(value, key, required=True)
    for name in names:
        if sum(c.isalnum() for c in name) < 3:
            raise SettingError(
                key,
                f"has the name {name!r}, which is too short: it would match ordinary text",
                "give names of at least 3 letters or digits, as the tool writes them",
            )
    return names


def _strings(value: object, key: str, *, required: bool) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        field = key.rsplit(".", 1)[-1]
        raise SettingError(key, "must be a non-empty list of non-empty strings", f'write e.g. {field} = ["..."]')
    return tuple(value)


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(key, "is missing or not a non-empty string", "give it a name in quotes")
    return value.strip()


def _read_catalog_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SettingError(
            f"provenance generators file {path}",
            f"cannot be read ({e.strerror or e})",
            "check the path, or remove it from the list of generator files",
        ) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingError(
            f"provenance generators file {path}",
            f"is not valid UTF-8 TOML ({e})",
            "fix the syntax; see detectors/data/generators.toml for the format",
        ) from None


def load_catalog(extra_files: Sequence[Path] = ()) -> GeneratorCatalog:
    """The built-in catalog followed by each extra file's entries (which only add).

    Raises ``SettingError`` naming the file and entry for anything malformed.
    """
    if isinstance(extra_files, (str, Path)):  # one file given bare, not a list of them
        extra_files = [Path(extra_files)]
    generators: list[Generator] = []
    png_keys: list[PngKey] = []
    settings: list[SettingsText] = []
    for path in (DEFAULT_GENERATORS_FILE, *map(Path, extra_files)):
        doc = _read_catalog_file(path)
        unknown = set(doc) - {"generator", "png_key", "settings_text"}
        if unknown:
            raise SettingError(
                f"{path}: {sorted(unknown)[0]}",
                "is not a known table",
                "use [[generator]], [[png_key]] or [[settings_text]]",
            )
        for i, entry in enumerate(_tables(doc, "generator", path)):
            where = f"{path}: generator[{i}]"
            kind = entry.get("kind", "image-generator")
            if kind not in KIND_TEXT:
                raise SettingError(f"{where}.kind", f"is {kind!r}", f"use one of {sorted(KIND_TEXT)}")
            generators.append(
                Generator(
                    name=_text(entry.get("name"), f"{where}.name"),
                    kind=kind,
                    match=_names(entry.get("match"), f"{where}.match"),
                )
            )
        for i, entry in enumerate(_tables(doc, "png_key", path)):
            where = f"{path}: png_key[{i}]"
            png_keys.append(
                PngKey(
                    key=_text(entry.get("key"), f"{where}.key"),
                    generator=_text(entry.get("generator"), f"{where}.generator"),
                    contains_any=_strings(entry.get("contains_any"), f"{where}.contains_any", required=False),
                )
            )
        for i, entry in enumerate(_tables(doc, "settings_text", path)):
            where = f"{path}: settings_text[{i}]"
            settings.append(
                SettingsText(
                    generator=_text(entry.get("generator"), f"{where}.generator"),
                    contains_all=_strings(entry.get("contains_all"), f"{where}.contains_all", required=True),
                )
            )
    return GeneratorCatalog(tuple(generators), tuple(png_keys), tuple(settings))


def _tables(doc: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    tables = doc.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SettingError(f"{path}: {name}", "must be an array of tables", f"write each entry as [[{name}]]")
    return tables


class NameMatcher:
    """Finds catalog names as whole words (not inside a longer alphanumeric run)."""

    def __init__(self, generators: Sequence[Generator]) -> None:
        self._by_name: dict[str, Generator] = {}
        for gen in generators:
            for name in gen.match:
                # the first entry to claim a name keeps it (built-in before operator files)
                self._by_name.setdefault(_norm_name(name), gen)
        # longest first, so "DALL-E mini" wins over "DALL-E" at the same place
        alternatives = sorted(self._by_name, key=len, reverse=True)
        body = "|".join(r"[\s_-]+".join(re.escape(part) for part in name.split(" ")) for name in alternatives)
        self._pattern = re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE) if body else None

    def find(self, text: str) -> list[Generator]:
        if self._pattern is None:
            return []
        found: list[Generator] = []
        for m in self._pattern.finditer(text):
            gen = self._by_name.get(_norm_name(m.group(0)))
            if gen is not None and gen not in found:
                found.append(gen)
        return found
