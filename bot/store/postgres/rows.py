"""Rows of the PostgreSQL store as the same frozen records the SQLite store returns."""

from __future__ import annotations

import base64
from typing import Any

from bot.store.protected import ProtectedOwner, ProtectedPhoto
from bot.store.records import (
    ActionRecord,
    AlertRecord,
    AuditRecord,
    ContactRecord,
    EntryFeatures,
    EntryRecord,
    GroupRecord,
    ListRecord,
    ReviewRecord,
    WorkItem,
    freeze,
)

Row = dict[str, Any]


def _sorted(value: Any) -> Any:
    """jsonb keeps an object's keys ordered by length, SQLite's JSON text keeps them sorted (the store
    writes them with sort_keys): sorting here gives both backends the same order (exports, alerts)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _json(value: Any) -> Any:
    return freeze(_sorted(value))


def group(r: Row) -> GroupRecord:
    return GroupRecord(
        platform=r["platform"],
        chat_id=r["chat_id"],
        title=r["title"],
        settings=_json(r["settings"]),
        added_by=r["added_by"],
        bot_rights=_json(r["bot_rights"]),
        owner_hint_sent_at=r["owner_hint_sent_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def contact(r: Row) -> ContactRecord:
    return ContactRecord(
        platform=r["platform"],
        user_id=r["user_id"],
        can_dm=r["can_dm"],
        language=r["language"],
        dm_room=r["dm_room"],
        display_name=r["display_name"],
        updated_at=r["updated_at"],
    )


def list_(r: Row) -> ListRecord:
    return ListRecord(
        id=r["id"],
        name=r["name"],
        label=r["label"],
        kind=r["kind"],
        action=r["action"],
        scope=r["scope"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        created_at=r["created_at"],
    )


ENTRY_COLUMNS = "id, list_id, pdq, pdq_quality, phash, sha256, added_by, added_at, source_platform, source_chat, note"


def entry(r: Row) -> EntryRecord:
    return EntryRecord(**r)


def features(r: Row) -> EntryFeatures:
    fp = r["fingerprint"]
    return EntryFeatures(
        entry_id=r["entry_id"],
        views=tuple(freeze(v) for v in r["views"]),
        fingerprint=None if fp is None else base64.b64decode(fp),
        added_at=r["added_at"],
    )


def audit(r: Row) -> AuditRecord:
    return AuditRecord(
        id=r["id"],
        at=r["at"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        message_id=r["message_id"],
        sender_id=r["sender_id"],
        sender_name=r["sender_name"],
        kind=r["kind"],
        label=r["label"],
        findings=_json(r["findings"]),
        hashes=_json(r["hashes"]),
        decision=r["decision"],
        actions=_json(r["actions"]),
        actor=r["actor"],
        dry_run=r["dry_run"],
    )


def review(r: Row) -> ReviewRecord:
    return ReviewRecord(
        id=r["id"],
        audit_id=r["audit_id"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        message_id=r["message_id"],
        state=r["state"],
        opened_at=r["opened_at"],
        decided_by=r["decided_by"],
        decided_at=r["decided_at"],
    )


def alert(r: Row) -> AlertRecord:
    return AlertRecord(
        id=r["id"],
        audit_id=r["audit_id"],
        platform=r["platform"],
        user_id=r["user_id"],
        message_id=r["message_id"],
        sent_at=r["sent_at"],
    )


def work(r: Row) -> WorkItem:
    return WorkItem(
        id=r["id"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        message_id=r["message_id"],
        variant=r["variant"],
        payload=_json(r["payload"]),
        enqueued_at=r["enqueued_at"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        last_attempt_at=r["last_attempt_at"],
        finished_at=r["finished_at"],
        not_before=r["not_before"],
        gave_up=r["gave_up"],
    )


def action(r: Row) -> ActionRecord:
    return ActionRecord(
        id=r["id"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        message_id=r["message_id"],
        action=r["action"],
        params=_json(r["params"]),
        state=r["state"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def owner(r: Row) -> ProtectedOwner:
    return ProtectedOwner(
        id=r["id"],
        kind=r["kind"],
        platform=r["platform"],
        user_id=r["user_id"],
        name=r["name"],
        notify=r["notify"],
        notify_platform=r["notify_platform"],
        notify_user=r["notify_user"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


PHOTO_COLUMNS = "p.id, p.owner_id, p.source, p.platform, p.chat_id, p.label, p.pdq, p.added_at, p.expires_at"


def photo(r: Row, with_fingerprint: bool = False) -> ProtectedPhoto:
    return ProtectedPhoto(
        id=r["id"],
        owner_id=r["owner_id"],
        source=r["source"],
        platform=r["platform"],
        chat_id=r["chat_id"],
        label=r["label"],
        pdq=r["pdq"],
        added_at=r["added_at"],
        expires_at=r["expires_at"],
        fingerprint=r["fingerprint"] if with_fingerprint else None,
    )
