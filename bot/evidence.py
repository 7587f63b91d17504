"""The evidence export: the audit records of a group (or one record) as a JSON file, sent privately.

Identifiers, times, findings and hashes only: no image, and no protected photo's or owner's ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.events import ChatRef
from bot.i18n import Translator
from bot.platforms.base import Platform
from bot.platforms.errors import Unreachable
from bot.protect import exported_findings
from bot.store.protocol import AuditStore
from bot.store.records import AuditRecord


async def export_evidence(
    store: AuditStore, platform: Platform, group: ChatRef, user_id: str, record_id: int | None, t: Translator
) -> str:
    """The evidence records as a JSON file, sent privately: ids, times, findings and hashes only."""
    records = (
        [await store.audit_record(record_id)]
        if record_id
        else await store.audit_for_group(group.platform, group.chat_id)
    )
    items = [evidence_record(r) for r in records if r is not None and r.kind == "scan" and r.label != "clean"]
    doc = {
        "exported_at": datetime.now(UTC).isoformat(),
        "platform": group.platform,
        "group": group.chat_id,
        "note": (
            "Evidence records kept by Vigil: identifiers, times, findings and hashes. No image is kept or included."
        ),
        "records": items,
    }
    data = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    name = f"vigil-evidence-{group.chat_id}{'-' + str(record_id) if record_id else ''}.json"
    try:
        await platform.send_file(user_id, name, data, t.gettext("Vigil evidence records ({count})", count=len(items)))
        text = t.gettext("The evidence records were sent to you privately.")
    except Unreachable:
        text = t.gettext("Open a private chat with the bot and press Start, then ask again.")
    await store.add_audit(
        platform=group.platform,
        chat_id=group.chat_id,
        message_id=None,
        sender_id=None,
        sender_name=None,
        kind="admin_command",
        label="export",
        findings={"records": len(items)},
        hashes={},
        decision=None,
        actions={},
        actor=user_id,
        dry_run=False,
    )
    return text


def evidence_record(r: AuditRecord) -> dict[str, Any]:
    return {
        "record": r.id,
        "at": r.at,
        "message_id": r.message_id,
        "sender_id": r.sender_id,
        "sender_name": r.sender_name,
        "label": r.label,
        "findings": exported_findings(r.findings),  # no protected photo's or owner's ids
        "hashes": r.hashes,
        "decision": r.decision,
        "actions": r.actions,
        "dry_run": r.dry_run,
    }
