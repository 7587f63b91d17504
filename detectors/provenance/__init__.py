"""Provenance signals: evidence in a file's metadata that a generative model made or altered it.

Reads, from bytes in memory and without decoding pixels, Content Credentials (C2PA), XMP,
EXIF and PNG text chunks, and reports positive findings only: absence of evidence proves
nothing (most tools write no metadata, and messengers strip it: Telegram does for anything
sent as a photo).

The package is cut where its readers change for different reasons:

``findings``     what a finding is and which digital source types count;
``catalog``      the generator catalog (names, PNG keywords, settings texts) and its files;
``metadata``     XMP, EXIF and PNG text, bounded against hostile files;
``credentials``  Content Credentials through c2pa-python, with the network off;
``scanner``      ``ProvenanceScanner``: both readers' output turned into findings.

Import from here: the names below are the package's interface.
"""

from __future__ import annotations

from detectors.provenance.catalog import (
    DEFAULT_GENERATORS_FILE,
    Generator,
    GeneratorCatalog,
    PngKey,
    SettingsText,
    load_catalog,
)
from detectors.provenance.findings import GENERATIVE_SOURCE_TYPES, MAX_GENERATOR_NAME, SOURCES, ProvenanceFinding
from detectors.provenance.metadata import (
    MAX_EXIF_BYTES,
    MAX_PNG_CHUNKS,
    MAX_TEXT_BYTES,
    MAX_TEXT_CHUNKS,
    MAX_VALUES_PER_PROPERTY,
    MAX_XMP_BYTES,
)
from detectors.provenance.scanner import ProvenanceScanner

__all__ = [
    "DEFAULT_GENERATORS_FILE",
    "GENERATIVE_SOURCE_TYPES",
    "MAX_EXIF_BYTES",
    "MAX_GENERATOR_NAME",
    "MAX_PNG_CHUNKS",
    "MAX_TEXT_BYTES",
    "MAX_TEXT_CHUNKS",
    "MAX_VALUES_PER_PROPERTY",
    "MAX_XMP_BYTES",
    "SOURCES",
    "Generator",
    "GeneratorCatalog",
    "PngKey",
    "ProvenanceFinding",
    "ProvenanceScanner",
    "SettingsText",
    "load_catalog",
]
