"""Content Credentials (C2PA), read through ``c2pa-python`` with the network off.

A ``digitalSourceType`` that says the content was made or altered by a generative model,
in any manifest of the store (the current one or an ingredient's), is reported with the
claim generator, the signer and the store's validation state. An invalid or untrusted
manifest is still reported, with its state in the detail: it is evidence, not proof.
No remote manifest is fetched, no OCSP asked, no host allowed; trust anchors are only
what the operator gives. The library's context is kept per thread.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

from detectors.errors import SettingError


class C2paReader:
    """c2pa-python with the network off: no remote manifests, no OCSP, no hosts allowed."""

    def __init__(self, trust_anchors: str | None) -> None:
        try:
            import c2pa
        except ImportError:
            raise SettingError(
                "provenance c2pa",
                "is on, but the c2pa-python package is not installed",
                "install c2pa-python into Vigil's environment, or turn C2PA reading off",
            ) from None
        self._lib = c2pa
        settings: dict[str, Any] = {
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
            "core": {"allowed_network_hosts": []},
        }
        if trust_anchors:
            settings["trust"] = {"user_anchors": trust_anchors}
        self._settings = json.dumps(settings)
        self._local = threading.local()
        try:
            self._context()  # fail at start-up, not on the first image
        except Exception as e:
            raise SettingError(
                "provenance trust anchors" if trust_anchors else "provenance c2pa",
                f"the C2PA library refused its settings ({e})",
                "give trust anchors as PEM certificates, or none",
            ) from None

    def _context(self) -> Any:
        # one context per thread, so no two threads share the library's handle
        ctx = getattr(self._local, "context", None)
        if ctx is None:
            ctx = self._lib.Context.from_json(self._settings)
            self._local.context = ctx
        return ctx

    def read(self, data: bytes, mime: str) -> tuple[dict[str, Any], str | None] | None:
        """(manifest store, validation state), or None if there is none."""
        reader = self._lib.Reader.try_create(mime, io.BytesIO(data), None, self._context())
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        return (store if isinstance(store, dict) else {}), state


def walk_actions(node: object, agent: str | None, depth: int = 0) -> Iterator[tuple[str | None, str | None]]:
    """(digitalSourceType, softwareAgent nearest to it) for every object in an assertion's
    data that has either (actions, templates, ...), at any depth up to a bound."""
    if depth > 12:
        return
    if isinstance(node, dict):
        here = node.get("softwareAgent")
        if isinstance(here, dict):  # C2PA 2 writes {"name": ...}, C2PA 1 a string
            here = here.get("name")
        has_agent = isinstance(here, str) and bool(here.strip())
        if has_agent:
            agent = here
        dst = node.get("digitalSourceType")
        if isinstance(dst, str) or has_agent:
            yield (dst if isinstance(dst, str) else None), agent
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from walk_actions(value, agent, depth + 1)
    elif isinstance(node, list):
        for value in node[:1000]:
            yield from walk_actions(value, agent, depth + 1)


def claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name = info[0].get("name")
        if isinstance(name, str) and name.strip():
            version = info[0].get("version")
            return f"{name} {version}" if isinstance(version, str) and version else name
    name = manifest.get("claim_generator")
    return name if isinstance(name, str) and name.strip() else None


def signer_of(manifest: dict[str, Any]) -> str | None:
    sig = manifest.get("signature_info")
    if not isinstance(sig, dict):
        return None
    who = sig.get("common_name") or sig.get("issuer")
    issuer = sig.get("issuer")
    if not isinstance(who, str):
        return None
    return f"{who} ({issuer})" if isinstance(issuer, str) and issuer != who else who


def validation_text(store: dict[str, Any], state: str | None) -> str:
    codes: list[str] = [
        s["code"]
        for s in store.get("validation_status") or []
        if isinstance(s, dict) and isinstance(s.get("code"), str)
    ]
    if state == "Trusted":
        return "signature valid, signer trusted"
    if state == "Valid":
        return "signature valid, but the signer is not on a trust list (anyone can make such a signature)"
    if state == "Invalid":
        failures = [c for c in codes if c != "signingCredential.untrusted"][:3]
        why = f" ({', '.join(failures)})" if failures else ""
        return f"validation failed{why}: altered after signing or forged; still evidence, not proof"
    return "not validated"
