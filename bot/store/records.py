"""Rows of the store as frozen values.

JSON columns come back as ``FrozenJSON`` and ``FrozenList`` (read-only subclasses of dict and
list): they cannot be changed by accident, compare equal to what was stored, and
``json.dumps`` still writes them as plain JSON.
Timestamps are ISO-8601 UTC strings, as stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FrozenJSON(dict[str, Any]):
    """A dict that refuses changes; a subclass of dict so ``json.dumps`` accepts it."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a stored record is read-only: copy it with dict(...) to change it")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

    def __copy__(self) -> FrozenJSON:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> FrozenJSON:
        return self

    def __reduce__(self) -> tuple[type[FrozenJSON], tuple[dict[str, Any]]]:  # pickling a read-only dict
        return (FrozenJSON, (dict(self),))


class FrozenList(list[Any]):
    """A list that refuses changes; equal to a plain list with the same items."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a stored record is read-only: copy it with list(...) to change it")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse  # type: ignore[assignment]
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """A read-only copy of a JSON value (FrozenJSON and FrozenList), equal to the original."""
    if isinstance(value, dict):
        return FrozenJSON({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


def load_json(text: str | None) -> Any:
    return None if text is None else freeze(json.loads(text))


@dataclass(frozen=True)
class GroupRecord:
    platform: str
    chat_id: str
    title: str | None
    settings: Mapping[str, Any]
    added_by: str | None
    bot_rights: Mapping[str, Any] | None
    owner_hint_sent_at: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ContactRecord:
    platform: str
    user_id: str
    can_dm: bool
    language: str | None
    dm_room: str | None
    display_name: str | None
    updated_at: str


@dataclass(frozen=True)
class ExemptionRecord:
    platform: str
    chat_id: str
    user_id: str
    added_at: str


@dataclass(frozen=True)
class ListRecord:
    id: int
    name: str
    label: str  # "local", "ncii", "deepfake", "spam", ...
    kind: str  # "block" | "allow"
    action: str  # "delete" | "review" (what a block hit does; unused for allow lists)
    scope: str  # "group" | "instance"
    platform: str | None  # None for instance lists
    chat_id: str | None
    created_at: str


@dataclass(frozen=True)
class EntryRecord:
    id: int
    list_id: int
    pdq: str | None
    pdq_quality: int | None
    phash: str | None
    sha256: str | None
    added_by: str | None
    added_at: str
    source_platform: str | None
    source_chat: str | None
    note: str | None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: str
    platform: str
    chat_id: str
    message_id: str | None
    sender_id: str | None
    sender_name: str | None
    kind: str  # "scan" | "action" | "admin_command" | "alert" | "error"
    label: str
    findings: Mapping[str, Any]
    hashes: Mapping[str, Any]
    decision: str | None
    actions: Mapping[str, Any]
    actor: str | None
    dry_run: bool


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    audit_id: int
    platform: str
    chat_id: str
    message_id: str
    state: str  # "open" | "deleted" | "kept"
    opened_at: str
    decided_by: str | None
    decided_at: str | None


@dataclass(frozen=True)
class AlertRecord:
    id: int
    audit_id: int
    platform: str
    user_id: str
    message_id: str | None  # the alert's own message on the platform
    sent_at: str


@dataclass(frozen=True)
class WorkItem:
    id: int
    platform: str
    chat_id: str
    message_id: str
    variant: str  # which version / picture of the message (MediaPosted.variant)
    payload: Mapping[str, Any]  # empty once finished
    enqueued_at: str
    attempts: int
    last_error: str | None
    last_attempt_at: str | None
    finished_at: str | None
    not_before: str | None = None  # a failed item waits until then before its next attempt
    gave_up: bool = False  # finished without a check after too many attempts

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True)
class ActionRecord:
    id: int
    platform: str
    chat_id: str
    message_id: str
    action: str
    params: Mapping[str, Any]
    state: str  # "pending" | "done" | "failed"
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class PurgeCounts:
    """What ``purge_user`` removed (or anonymised) for one person."""

    audit: int = 0  # records where they were the sender
    contacts: int = 0
    exemptions: int = 0
    entries: int = 0  # list entries they added
    alerts: int = 0  # alerts sent to them
    actions: int = 0  # platform actions aimed at them (mute, ban)
    anonymised: int = 0  # records where they acted as admin, now without their id

    @property
    def total(self) -> int:
        return (
            self.audit + self.contacts + self.exemptions + self.entries + self.alerts + self.actions + self.anonymised
        )


@dataclass(frozen=True)
class PruneCounts:
    """What ``prune_work_before`` removed: finished work items and settled actions."""

    work: int = 0
    actions: int = 0


@dataclass(frozen=True)
class EntryFeatures:
    """List-matching signals of an entry's image beyond its own hashes (never pixels)."""

    entry_id: int
    views: tuple[Mapping[str, Any], ...]  # trimmed views: {"crop", "pdq", "quality", "phash"}
    fingerprint: bytes | None  # detectors.localmatch.Fingerprint.to_bytes(), or None
    added_at: str


class ChangeKind(StrEnum):
    """What a change log follows: hash lists and their entries, or protected photos."""

    LISTS = "lists"
    PROTECTED = "protected"


class ChangeOp(StrEnum):
    """What one change log row says happened (ids only)."""

    ADD = "add"  # an entry or photo was added or changed (its item id)
    REMOVE = "remove"  # an entry or photo is gone
    LIST = "list"  # lists: a list was created or changed (its parent id)
    UNLIST = "unlist"  # lists: a list is gone
    OWNER = "owner"  # protected photos: an owner's name or notice choice changed


@dataclass(frozen=True)
class Change:
    """One row of a change log: ``parent`` is the list (lists) or owner (protected photos),
    ``item`` the entry or photo (None for a change to the parent itself)."""

    seq: int
    op: ChangeOp
    parent: int
    item: int | None


@dataclass(frozen=True)
class ImportCounts:
    """What ``add_entries_bulk`` did: entries added, and lines that were already in the list."""

    added: int
    duplicates: int
