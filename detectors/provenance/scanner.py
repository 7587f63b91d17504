"""The provenance scanner: findings from a file's Content Credentials and metadata.

Absence of evidence proves nothing, and the API cannot say otherwise: ``scan`` returns a
tuple of positive findings only, and there is no "authentic" verdict. Alerts never quote
prompt text: a prompt may describe the very abuse the alert is about, and the admin does
not need it to act; details name the field and the tool only. The only log lines are
warnings when the C2PA library fails, and they never contain metadata values.

Thread safety: a scanner is immutable after construction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.provenance.catalog import KIND_TEXT, NameMatcher, PngKey, load_catalog
from detectors.provenance.credentials import C2paReader, claim_generator, signer_of, validation_text, walk_actions
from detectors.provenance.findings import GENERATIVE_SOURCE_TYPES, ProvenanceFinding, shortened, source_type_term
from detectors.provenance.metadata import Metadata, MetadataField, collect, sniff

logger = logging.getLogger("detectors.provenance")


class ProvenanceScanner:
    """Finds provenance evidence in image bytes; holds no per-image state."""

    def __init__(
        self,
        extra_files: Sequence[Path] = (),
        *,
        c2pa: bool = True,
        trust_anchors: str | None = None,
    ) -> None:
        """``extra_files``: operator generator catalogs, added to the built-in one.
        ``c2pa``: read Content Credentials (needs c2pa-python).
        ``trust_anchors``: PEM root certificates whose signers count as trusted (e.g. the
        C2PA trust list, saved by the operator; nothing is ever downloaded).

        Raises ``SettingError`` for a missing or malformed catalog, or C2PA settings the
        library refuses.
        """
        self.catalog = load_catalog(extra_files)
        self._names = NameMatcher(self.catalog.generators)
        self._png_keys: dict[str, list[PngKey]] = {}
        for entry in self.catalog.png_keys:
            self._png_keys.setdefault(entry.key, []).append(entry)
        self._c2pa = C2paReader(trust_anchors) if c2pa else None

    def scan(self, data: bytes) -> tuple[ProvenanceFinding, ...]:
        """Positive findings only, strongest source first; () says nothing about the image.

        Never raises for bad input (corrupt, truncated, hostile or unknown files give no
        finding). ``TypeError`` if ``data`` is not bytes-like.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"scan() takes the file's bytes, not {type(data).__name__}")
        data = bytes(data)
        mime = sniff(data)
        if mime is None:
            return ()
        findings: list[ProvenanceFinding] = []
        if self._c2pa is not None:
            findings += self._scan_c2pa(data, mime)
        if mime.startswith("image/"):
            findings += self._scan_metadata(collect(data, mime))
        unique: dict[tuple[str, str, str | None], ProvenanceFinding] = {}
        for f in findings:
            unique.setdefault((f.source, f.signal, f.generator), f)
        return tuple(unique.values())

    # C2PA

    def _scan_c2pa(self, data: bytes, mime: str) -> list[ProvenanceFinding]:
        assert self._c2pa is not None
        # every embedded manifest store has a JUMBF "jumb" box labelled "c2pa": most
        # images have neither, and then the library is not called at all
        if b"jumb" not in data and b"c2pa" not in data:
            return []
        try:
            result = self._c2pa.read(data, mime)
        except Exception as e:  # the library's errors must never stop a scan
            logger.warning("Content Credentials (C2PA) could not be read: %s: %s", type(e).__name__, shortened(str(e)))
            return []
        if result is None:
            return []
        store, state = result
        manifests = store.get("manifests")
        if not isinstance(manifests, dict):
            return []
        active = store.get("active_manifest")
        status = validation_text(store, state)
        order = sorted(manifests, key=lambda label: label != active)  # the current one first
        findings: list[ProvenanceFinding] = []
        for label in order:
            manifest = manifests[label]
            if not isinstance(manifest, dict):
                continue
            where = "the Content Credentials" if label == active else "an earlier version's Content Credentials"
            claim = claim_generator(manifest)
            signer = signer_of(manifest)
            extra = "".join(
                (
                    f"; made with {shortened(claim)}" if claim else "",
                    f"; signed by {shortened(signer)}" if signer else "",
                    f"; {status}",
                )
            )
            pairs = self._actions(manifest)
            generative = [(source_type_term(value), agent) for value, agent in pairs]
            for term, agent in generative:
                if term is None:
                    continue
                findings.append(
                    ProvenanceFinding(
                        "c2pa",
                        f"digitalSourceType={term}",
                        f"{where} say: {GENERATIVE_SOURCE_TYPES[term]} ({term}){extra}",
                        self._tool_name(agent) or self._tool_name(claim),
                    )
                )
            if any(term for term, _ in generative):
                continue  # those findings already name the tool
            # no generative source type, but the tool that signed or acted may be one
            for text in (claim, *(agent for _, agent in pairs)):
                for gen in self._names.find(text or ""):
                    findings.append(
                        ProvenanceFinding(
                            "c2pa",
                            f"generator={gen.name}",
                            f"{where} name {gen.name}, {KIND_TEXT[gen.kind]}{extra}",
                            gen.name,
                        )
                    )
        return findings

    def _tool_name(self, text: str | None) -> str | None:
        if not text:
            return None
        known = self._names.find(text)
        return known[0].name if known else shortened(text)

    @staticmethod
    def _actions(manifest: dict[str, Any]) -> list[tuple[str | None, str | None]]:
        pairs: list[tuple[str | None, str | None]] = []
        for assertion in manifest.get("assertions") or []:
            if isinstance(assertion, dict):
                pairs += walk_actions(assertion.get("data"), None)
        return pairs

    # XMP, EXIF, PNG text

    def _scan_metadata(self, meta: Metadata) -> list[ProvenanceFinding]:
        findings: list[ProvenanceFinding] = []
        for field in meta.source_types:
            term = source_type_term(field.text)
            if term is not None:
                findings.append(
                    ProvenanceFinding(
                        field.source,
                        f"digitalSourceType={term}",
                        f"{field.label} says: {GENERATIVE_SOURCE_TYPES[term]} ({term})",
                        None,
                    )
                )
        for field in meta.ai_markers:
            # the GB 45438 label is JSON with a "Label" member; a bare "AIGC" could be
            # anything (even a namespace prefix)
            if field.label.endswith("AIGC label") and "Label" not in field.text:
                continue
            findings.append(self._ai_marker(field))
        fields = list(meta.fields)
        for key, value in meta.png_texts:
            entry = self._png_key(key, value)
            if entry is not None:
                findings.append(
                    ProvenanceFinding(
                        "png-text",
                        f"png-text={key}",
                        f"PNG text chunk '{key}' holds {entry.generator} generation data",
                        entry.generator,
                    )
                )
                # its value is a prompt or a node graph: never searched further
                continue
            if key == "AIGC" and "Label" in value:
                findings.append(self._ai_marker(MetadataField("png-text", "PNG text 'AIGC' label", value)))
                continue
            fields.append(MetadataField("png-text", f"PNG text '{key}'", value))
        for field in fields:
            for settings in self.catalog.settings_texts:
                if all(s in field.text for s in settings.contains_all):
                    findings.append(
                        ProvenanceFinding(
                            field.source,
                            "generation-settings",
                            f"{field.label} holds {settings.generator} generation settings",
                            settings.generator,
                        )
                    )
            for gen in self._names.find(field.text):
                findings.append(
                    ProvenanceFinding(
                        field.source,
                        f"generator={gen.name}",
                        f"{field.label} names {gen.name}, {KIND_TEXT[gen.kind]}",
                        gen.name,
                    )
                )
        return findings

    def _png_key(self, key: str, value: str) -> PngKey | None:
        for entry in self._png_keys.get(key, ()):
            if not entry.contains_any or any(s in value for s in entry.contains_any):
                return entry
        return None

    def _ai_marker(self, field: MetadataField) -> ProvenanceFinding:
        if field.label.endswith("AISystemUsed"):
            return ProvenanceFinding(
                field.source,
                "aiSystemUsed",
                f"{field.label} names the AI system that made the image",
                self._tool_name(field.text),
            )
        if field.label.endswith("AIPromptInformation"):
            return ProvenanceFinding(
                field.source,
                "aiPromptInformation",
                f"{field.label} records the prompt given to an AI system (not shown)",
                None,
            )
        return ProvenanceFinding(
            field.source,
            "aigc-label",
            f"{field.label}: marked as AI-generated under China's GB 45438-2025 labelling rules",
            None,
        )
