"""The audit records the core writes: a work item's scan record (what was found and decided, ids and
hashes only, never the image) and an admin's command."""

from __future__ import annotations

from typing import Any

from bot.events import ChatRef, MediaPosted, picture_role
from bot.lists import ListMatch
from bot.policy import Decision
from bot.protect import DerivedMatch
from bot.redact import redact
from bot.store.protocol import AuditStore, Store
from bot.values import Verdict
from detectors.scanner import Scan


def audit_key(work_id: int) -> str:
    """The state key that ties a work item to its audit record until the item is finished."""
    return f"work:{work_id}:audit"


async def record_scan(
    store: Store,
    work_id: int,
    event: MediaPosted,
    scan: Scan | None,
    error: Exception | None,
    matches: tuple[ListMatch, ...],
    severity: str,
    decision: Decision,
    derived: tuple[DerivedMatch, ...] = (),
) -> int:
    """The audit record of one work item, reused when the item is replayed after a restart."""
    key = audit_key(work_id)
    existing = await store.get_state(key)
    if existing:
        return int(existing)
    findings: dict[str, Any] = {}
    hashes: dict[str, Any] = {}
    clean = decision.verdict == Verdict.ALLOW and error is None
    if scan is not None:
        findings = {
            "nudity": [{"class": h.label, "score": round(h.score, 4), "level": h.level} for h in scan.hits],
            "nsfw": None if scan.nsfw is None else round(scan.nsfw, 4),
            "format": scan.format,
            "frames": len(scan.frames),
        }
        if not scan.checked:  # a copy of a blocked image, deleted on its hashes: no model ran
            findings["models_run"] = False
        if scan.provenance:  # signals only (e.g. "c2pa.generative"), for the alert's details
            findings["provenance"] = [p.signal for p in scan.provenance]
        if not clean:
            # hashes only for images that matter: a clean member photo leaves no trace
            hashes = {
                "pdq": scan.hashes.pdq,
                "pdq_quality": scan.hashes.pdq_quality,
                "phash": scan.hashes.phash,
                "sha256": scan.hashes.sha256,
            }
    if event.sender.kind != "user":  # a post made as a chat: the details say which kind
        findings["sender_kind"] = event.sender.kind
    if picture := picture_role(event.variant):  # a thumbnail, a cover or a quoted message's picture
        findings["picture"] = picture
    if derived:
        # which protected photo (ids only): the owner's name stays out of the record
        findings["derived"] = [
            {
                "photo": d.photo.id,
                "owner": d.photo.owner_id,
                "match_fraction": round(d.match_fraction, 3),
                "frame": d.frame,
            }
            for d in derived
        ]
    if matches:
        findings["lists"] = [
            {
                "list": m.list_name,
                "kind": m.kind,
                "entry": m.entry_id,
                "algorithm": m.algorithm,
                "distance": m.distance,
            }
            for m in matches
        ]
    if error is not None:
        findings["error"] = getattr(error, "reason", type(error).__name__)
        findings["error_detail"] = redact(str(error))  # exported: no media link, no token
    audit_id = await store.add_audit(
        platform=event.chat.platform,
        chat_id=event.chat.chat_id,
        message_id=event.message_id,
        sender_id=None if clean else event.sender.user_id,
        sender_name=None if clean else event.sender.display_name,
        kind="scan",
        label=severity if error is None else "unscannable",  # the record's label: the image's severity
        findings=findings,
        hashes=hashes,
        decision=str(decision.verdict),  # a plain word for the store, whatever a driver makes of enums
        actions={"sender_action": str(decision.sender_action), "reason": decision.reason},
        actor=None,
        dry_run=decision.dry_run,
    )
    await store.set_state(key, str(audit_id))
    return audit_id


async def record_command(store: AuditStore, chat: ChatRef, actor: str, what: str) -> None:
    """An admin's command or choice, for the group's audit log."""
    await store.add_audit(
        platform=chat.platform,
        chat_id=chat.chat_id,
        message_id=None,
        sender_id=None,
        sender_name=None,
        kind="admin_command",
        label=what,
        findings={},
        hashes={},
        decision=None,
        actions={},
        actor=actor,
        dry_run=False,
    )
