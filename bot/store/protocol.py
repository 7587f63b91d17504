"""The store contract as a type: every method the code calls on a store, with its types.

``bot.store.Store`` (SQLite) and ``bot.store.postgres.PostgresStore`` both satisfy ``Store``
(checked by mypy: tests/store_contract/test_protocol.py), and both pass the same contract
tests (tests/store_contract/). Code that needs only one concern can be typed with its part
(``ListsStore``, ``WorkStore``, ...). Docstrings here are the first lines of the SQLite
methods'; the full contract (idempotence, what a repeat returns) is in those methods.

Adding a store method: write it in the SQLite mixin, its twin in bot/store/postgres/ (same
module name, same order), declare it here, and test it in tests/store_contract/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from bot.store.changes import CHANGE_CHUNK
from bot.store.circles import CircleRecord
from bot.store.groups import UNSET
from bot.store.lists import ENTRY_CHUNK
from bot.store.members import MemberRecord
from bot.store.mutes import MuteRecord
from bot.store.protected import PHOTO_CHUNK, ProtectedOwner, ProtectedPhoto
from bot.store.records import (
    ActionRecord,
    AlertRecord,
    AuditRecord,
    Change,
    ChangeKind,
    ContactRecord,
    EntryFeatures,
    EntryRecord,
    ExemptionRecord,
    GroupRecord,
    ImportCounts,
    ListRecord,
    PruneCounts,
    PurgeCounts,
    ReviewRecord,
    WorkItem,
)
from bot.store.reports import ReportAdded, ReportRecord
from bot.store.seen import SEEN_CHUNK, SeenFrame, SeenImage
from bot.store.snapshots import SnapshotInfo


class GroupsStore(Protocol):
    """Groups and their settings, contacts, exempt members, a group that changed its id."""

    async def get_group(self, platform: str, chat_id: str | int) -> GroupRecord | None: ...

    async def upsert_group(
        self,
        platform: str,
        chat_id: str | int,
        title: str | None = None,
        *,
        added_by: str | int | None = None,
        bot_rights: Mapping[str, Any] | None = None,
    ) -> GroupRecord:
        """Create the group or refresh it; a None argument leaves the stored value as it is."""
        ...

    async def update_settings(self, platform: str, chat_id: str | int, changes: Mapping[str, Any]) -> GroupRecord:
        """Merge ``changes`` into the group's settings; a None value removes that key (the default applies)."""
        ...

    async def list_groups(self, platform: str | None = None) -> list[GroupRecord]: ...

    async def owner_hint_sent(self, platform: str, chat_id: str | int) -> bool:
        """Whether the group's owner was already told how to start the bot (told once only)."""
        ...

    async def mark_owner_hint_sent(self, platform: str, chat_id: str | int) -> bool:
        """Remember that the hint was sent; True the first time."""
        ...

    async def set_contact(
        self,
        platform: str,
        user_id: str | int,
        *,
        can_dm: bool = UNSET,
        language: str | None = UNSET,
        dm_room: str | None = UNSET,
        display_name: str | None = UNSET,
    ) -> ContactRecord:
        """Create or change a contact; fields not given keep their stored value (new contacts: cannot DM)."""
        ...

    async def get_contact(self, platform: str, user_id: str | int) -> ContactRecord | None: ...

    async def contacts(self, platform: str, user_ids: Iterable[str | int]) -> list[ContactRecord]:
        """The known contacts among ``user_ids``, sorted by user id; unknown ids are left out."""
        ...

    async def add_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was not exempt before."""
        ...

    async def remove_exemption(self, platform: str, chat_id: str | int, user_id: str | int) -> bool:
        """True if the member was exempt."""
        ...

    async def exemptions(self, platform: str, chat_id: str | int) -> list[ExemptionRecord]: ...

    async def is_exempt(self, platform: str, chat_id: str | int, user_id: str | int) -> bool: ...

    async def migrate_group(self, platform: str, old_chat_id: str | int, new_chat_id: str | int) -> bool:
        """The group now lives at ``new_chat_id`` (a Telegram group upgraded to a supergroup): its settings,
        own lists, exemptions, followed lists and kept group photos move there in one transaction, and
        groups whose admin log chat it was now send alerts to the new id."""
        ...


class ListsStore(Protocol):
    """Hash lists, entries, follows, entry features and bulk imports."""

    async def set_entry_features(
        self, entry_id: int, *, views: Sequence[Mapping[str, Any]] = (), fingerprint: bytes | None = None
    ) -> EntryFeatures:
        """Stores (or replaces) the trimmed views and local fingerprint of an entry's image."""
        ...

    async def entry_features(self, entry_ids: Iterable[int]) -> dict[int, EntryFeatures]:
        """The features of those entries that have them, by entry id."""
        ...

    async def entries_by_id(self, entry_ids: Iterable[int]) -> dict[int, EntryRecord]:
        """The entries that still exist among ``entry_ids``, by id."""
        ...

    def iter_all_features(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryFeatures]:
        """Every entry's features, by entry id, in chunks (start-up loads them with the entries)."""
        ...

    async def add_entries_bulk(
        self,
        list_id: int,
        hashes: Sequence[Mapping[str, Any]],
        *,
        added_by: str | int | None = None,
        note: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportCounts:
        """Adds many entries: all of them or, on any error, none."""
        ...

    async def followers(self) -> Mapping[int, tuple[tuple[str, str], ...]]:
        """For each followed instance list, the (platform, chat_id) of the groups that follow it."""
        ...

    async def create_list(
        self,
        name: str,
        *,
        kind: str,
        label: str = "local",
        action: str = "delete",
        scope: str = "instance",
        platform: str | None = None,
        chat_id: str | int | None = None,
    ) -> ListRecord:
        """A new list. Instance lists have no platform or chat; group lists need both."""
        ...

    async def group_list(self, platform: str, chat_id: str | int, kind: str) -> ListRecord:
        """The group's own block or allow list, created on first use."""
        ...

    async def get_list(self, list_id: int) -> ListRecord | None: ...

    async def list_by_name(self, name: str) -> ListRecord | None: ...

    async def all_lists(self) -> list[ListRecord]: ...

    async def delete_list(self, list_id: int) -> bool:
        """Removes the list with its entries and follows; True if it existed."""
        ...

    async def add_entry(
        self,
        list_id: int,
        *,
        pdq: str | None = None,
        pdq_quality: int | None = None,
        phash: str | None = None,
        sha256: str | None = None,
        added_by: str | int | None = None,
        source_platform: str | None = None,
        source_chat: str | int | None = None,
        note: str | None = None,
    ) -> EntryRecord:
        """Adds hashes to a list. The same image (same SHA-256, or same PDQ) added again returns the first
        entry."""
        ...

    async def get_entry(self, entry_id: int) -> EntryRecord | None: ...

    async def remove_entry(self, entry_id: int) -> bool: ...

    async def entries(self, list_id: int) -> list[EntryRecord]: ...

    def iter_all_entries(self, chunk_size: int = ENTRY_CHUNK) -> AsyncIterator[EntryRecord]:
        """Every entry of every list, by id, fetched in chunks so other work can run in between."""
        ...

    async def lists_for_group(self, platform: str, chat_id: str | int) -> list[ListRecord]:
        """The group's own lists and the instance lists it follows; never another group's list."""
        ...

    async def follow(self, platform: str, chat_id: str | int, list_id: int) -> bool:
        """The group starts using an instance list; True if it did not follow it before."""
        ...

    async def unfollow(self, platform: str, chat_id: str | int, list_id: int) -> bool: ...

    async def list_sizes(self) -> Mapping[int, int]:
        """Entries per list id, 0 for empty lists."""
        ...


class AuditStore(Protocol):
    """The audit log, reviews, alerts, retention and per-person purge."""

    async def add_audit(
        self,
        *,
        platform: str,
        chat_id: str | int,
        kind: str,
        label: str,
        message_id: str | int | None = None,
        sender_id: str | int | None = None,
        sender_name: str | None = None,
        findings: Mapping[str, Any] | None = None,
        hashes: Mapping[str, Any] | None = None,
        decision: str | None = None,
        actions: Mapping[str, Any] | None = None,
        actor: str | int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Appends one record and returns its id. Ids and hashes only: never image bytes or message text."""
        ...

    async def audit_record(self, audit_id: int) -> AuditRecord | None: ...

    async def audit_for_group(
        self, platform: str, chat_id: str | int, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """The group's records, oldest first; ``since`` keeps those at or after that moment."""
        ...

    async def counts(self, platform: str, chat_id: str | int) -> Mapping[str, int]:
        """Figures for /vigil status."""
        ...

    async def delete_audit_before(self, cutoff: datetime) -> int:
        """Retention: removes records older than ``cutoff`` (with their reviews and alerts)."""
        ...

    async def clear_audit_hashes_before(self, cutoff: datetime) -> int:
        """Retention: empties the image hashes of records older than ``cutoff`` (the records stay); returns
        how many changed."""
        ...

    async def purge_user(self, platform: str, user_id: str | int) -> PurgeCounts:
        """A data-protection request: removes what Vigil keeps about one person."""
        ...

    async def open_review(
        self, audit_id: int, platform: str, chat_id: str | int, message_id: str | int
    ) -> ReviewRecord:
        """A record waiting for an admin decision; opening it again returns the same review."""
        ...

    async def get_review(self, audit_id: int) -> ReviewRecord | None:
        """The review of an audit record (buttons carry the audit id)."""
        ...

    async def review(self, review_id: int) -> ReviewRecord | None: ...

    async def open_reviews(self, platform: str, chat_id: str | int) -> list[ReviewRecord]: ...

    async def decide_review(self, review_id: int, decision: str, by: str | int) -> bool:
        """Records an admin's decision; only the first one counts (a second returns False)."""
        ...

    async def record_alert(
        self, audit_id: int, platform: str, user_id: str | int, message_id: str | int | None = None
    ) -> bool:
        """Remembers that ``user_id`` was alerted about a record; False if they already were."""
        ...

    async def alerts_for(self, audit_id: int) -> list[AlertRecord]: ...


class WorkStore(Protocol):
    """The inbox of media events, platform actions and small state values."""

    async def enqueue_work(
        self, platform: str, chat_id: str | int, message_id: str | int, payload: Mapping[str, Any]
    ) -> int:
        """Keeps a received media event until ``finish_work``; returns its id."""
        ...

    async def work_item(self, work_id: int) -> WorkItem | None: ...

    async def pending_work(self, platform: str | None = None, *, max_attempts: int | None = None) -> list[WorkItem]:
        """Unfinished items, oldest first; ``max_attempts`` leaves out items that failed that often."""
        ...

    async def finish_work(self, work_id: int) -> bool:
        """Marks the item handled and drops its payload; True the first time."""
        ...

    async def start_work(self, work_id: int) -> int | None:
        """Counts an attempt as it starts (a crash during it still counts); returns the attempts
        so far including this one, or None when the item is finished or unknown (PostgreSQL: or
        another process is handling it)."""
        ...

    async def release_work(self, work_id: int) -> None:
        """Takes back the attempt of a run that a clean stop interrupted (it is not the item's fault)."""
        ...

    async def defer_work(self, work_id: int, error: object, not_before: datetime) -> None:
        """A failed attempt (already counted by ``start_work``): the item waits until ``not_before``."""
        ...

    async def give_up_work(self, work_id: int, error: object) -> bool:
        """Finishes an item without a check (too many attempts); True the first time."""
        ...

    async def next_work(
        self, platform: str, chat_id: str | int, now: datetime, exclude: Collection[int] = ()
    ) -> tuple[WorkItem | None, str | None]:
        """The chat's oldest unfinished item that is due at ``now`` and not in ``exclude``, and
        when the next deferred one is due (None: nothing is waiting for a retry time)."""
        ...

    async def pending_chats(self) -> list[tuple[str, str]]:
        """(platform, chat) pairs with unfinished work, the chat with the oldest item first."""
        ...

    async def fail_work(self, work_id: int, error: object) -> int:
        """Counts a failed attempt (the item stays pending); returns the number of attempts so far."""
        ...

    async def record_action(
        self,
        platform: str,
        chat_id: str | int,
        message_id: str | int,
        action: str,
        params: Mapping[str, Any] | None = None,
    ) -> ActionRecord:
        """Records an action before it is tried; a repeat returns the first record (with its state)."""
        ...

    async def action_done(self, action_id: int) -> None: ...

    async def action_failed(self, action_id: int, error: object) -> None: ...

    async def get_action(self, action_id: int) -> ActionRecord | None: ...

    async def pending_actions(self, platform: str | None = None) -> list[ActionRecord]:
        """Actions recorded but never settled (Vigil stopped in between), oldest first."""
        ...

    async def prune_work_before(self, cutoff: datetime) -> PruneCounts:
        """Retention for the inbox: finished items and settled actions older than ``cutoff``."""
        ...

    async def get_state(self, key: str) -> str | None: ...

    async def set_state(self, key: str, value: str) -> None: ...

    async def delete_state(self, key: str) -> bool: ...


class ProtectedStore(Protocol):
    """Protected photos: owners and fingerprints."""

    async def member_owner(
        self, platform: str, user_id: str | int, *, name: str | None = None, create: bool = False
    ) -> ProtectedOwner | None:
        """A member's owner row; with ``create``, made (or renamed to ``name``) if needed."""
        ...

    async def operator_owner(
        self,
        name: str,
        *,
        create: bool = False,
        notify_platform: str | None = None,
        notify_user: str | int | None = None,
    ) -> ProtectedOwner | None:
        """An owner the operator named; with ``create``, made if needed. A notify user given here turns
        notices on for that user (None leaves the setting as it is)."""
        ...

    async def get_protected_owner(self, owner_id: int) -> ProtectedOwner | None: ...

    async def protected_owners(self) -> list[ProtectedOwner]: ...

    async def set_owner_notify(self, owner_id: int, notify: bool) -> ProtectedOwner:
        """A member's answer to "tell me if a manipulated copy is found": the notice goes to them on their
        own platform."""
        ...

    async def remove_protected_owner(self, owner_id: int) -> int:
        """Removes the owner with every fingerprint of theirs; returns how many photos went."""
        ...

    async def add_protected_photo(
        self,
        owner_id: int,
        fingerprint: str,
        *,
        source: str,
        pdq: str | None = None,
        platform: str | None = None,
        chat_id: str | int | None = None,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> ProtectedPhoto:
        """One photo's fingerprint. Group photos ('group') need their group and an expiry."""
        ...

    async def add_member_photo(
        self,
        platform: str,
        user_id: str | int,
        name: str | None,
        fingerprint: str,
        *,
        max_photos: int,
        pdq: str | None = None,
    ) -> tuple[ProtectedOwner, ProtectedPhoto, int, int]:
        """A photo a member registered privately, in one write transaction: the owner row made (or renamed),
        the member's private photos counted and the photo added only while fewer than ``max_photos`` (so an
        album of many photos at once cannot pass the limit). Returns the owner, the photo, how many private
        photos the member had before, and how many photos of every source they have now. Raises
        ``PhotoLimitReached``."""
        ...

    async def protected_photos(self, owner_id: int | None = None) -> list[ProtectedPhoto]:
        """Photos (without fingerprints), of one owner or of all, by id."""
        ...

    async def get_protected_photo(self, photo_id: int) -> ProtectedPhoto | None: ...

    def iter_protected_photos(
        self, *, after: int = 0, ids: list[int] | None = None, chunk_size: int = PHOTO_CHUNK
    ) -> AsyncIterator[ProtectedPhoto]:
        """Photos with their fingerprints, by id, in chunks (start-up, and reloads after a change). ``ids``:
        only these photos."""
        ...

    async def protected_photo_ids(self) -> set[int]: ...

    async def remove_protected_photo(self, photo_id: int) -> bool:
        """Removes one photo; an owner left without photos goes too."""
        ...

    async def remove_group_photos(self, platform: str, chat_id: str | int) -> int:
        """A group stopped keeping group photos: their fingerprints go at once."""
        ...

    async def expire_protected_photos(self, now: datetime) -> int:
        """Retention: group photos past their expiry go; returns how many."""
        ...

    async def protected_counts(self) -> dict[str, int]:
        """Photos per source, and owners."""
        ...


class ChangesStore(Protocol):
    """The change logs of hash lists and protected photos, which every running process follows."""

    async def last_change(self, kind: ChangeKind) -> int:
        """The number of ``kind``'s latest change (0: none logged yet)."""
        ...

    async def changes_since(self, kind: ChangeKind, seq: int, limit: int = CHANGE_CHUNK) -> list[Change]:
        """``kind``'s changes after ``seq``, oldest first, at most ``limit``. Raises ``ChangesPruned`` when some
        of them were pruned already (load everything again)."""
        ...

    async def prune_changes(self, kind: ChangeKind, upto: int) -> int:
        """Deletes ``kind``'s changes up to and including ``upto``; remembers how far the log was pruned."""
        ...

    def change_notices(self) -> AsyncIterator[ChangeKind]:
        """The kind of each change log that grew, as the database tells it (PostgreSQL's NOTIFY);
        on SQLite the iterator ends at once (the followers' polls alone)."""
        ...


class ReportsStore(Protocol):
    """Members' private reports of messages, and the members whose reports a group ignores."""

    async def add_report(
        self, platform: str, chat_id: str | int, message_id: str | int, reporter_id: str | int, source: str
    ) -> ReportAdded:
        """Records a member's report of a message: the report is made once per message, the member added once."""
        ...

    async def get_report(self, report_id: int) -> ReportRecord | None: ...

    async def report_counts(
        self, platform: str, chat_id: str | int, reporter_id: str | int, since: datetime
    ) -> tuple[int, int]:
        """Since ``since``: messages this member reported in the chat, and reports made in the chat."""
        ...

    async def mark_report_alerted(self, report_id: int) -> bool:
        """The admins were told; True the first time."""
        ...

    async def record_report_alert(self, report_id: int, platform: str, user_id: str | int) -> bool:
        """``user_id`` was told of the report; False if they already were."""
        ...

    async def report_alerted_to(self, report_id: int) -> set[str]:
        """The admins already told of the report."""
        ...

    async def unalerted_reports(self, since: datetime, limit: int) -> list[ReportRecord]:
        """Reports made since ``since`` whose alerts were not all sent (a stop came first), oldest first."""
        ...

    async def decide_report(self, report_id: int, state: str, by: str | int) -> bool:
        """An admin's choice on an open report; only the first one counts."""
        ...

    async def delete_reports_before(self, cutoff: datetime) -> int:
        """Retention: removes reports made before ``cutoff``."""
        ...

    async def ignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int, by: str | int) -> bool:
        """The member's reports in the chat are dropped from now on; True if they were not already."""
        ...

    async def unignore_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool: ...

    async def is_ignored_reporter(self, platform: str, chat_id: str | int, user_id: str | int) -> bool: ...

    async def purge_reporter(self, platform: str, user_id: str | int) -> int:
        """A data-protection request: the member's reports leave no trace of them; returns rows changed."""
        ...


class CirclesStore(Protocol):
    """Circles of groups that share blocks (and bans, when the circle says so)."""

    async def add_to_circle(
        self, name: str, groups: Iterable[tuple[str, str | int]], *, shared_bans: bool | None = None
    ) -> CircleRecord:
        """Creates the circle if new, adds the groups; ``shared_bans`` None leaves it as it is."""
        ...

    async def remove_from_circle(self, name: str, groups: Iterable[tuple[str, str | int]]) -> int:
        """Takes the groups out of the circle; returns how many were in it."""
        ...

    async def delete_circle(self, name: str) -> bool:
        """Removes the circle (the groups and their lists stay); True if it existed."""
        ...

    async def circles(self) -> list[CircleRecord]: ...

    async def circles_of(self, platform: str, chat_id: str | int) -> list[CircleRecord]: ...

    async def circle_block_lists(self, platform: str, chat_id: str | int) -> list[int]:
        """The own block lists of the other groups in this group's circles."""
        ...


class SeenStore(Protocol):
    """The seen-images window (bot/sweep.py): ids, hashes and fingerprints of scanned images."""

    async def add_seen(
        self,
        platform: str,
        chat_id: str | int,
        message_id: str | int,
        *,
        variant: str,
        sender_id: str | int,
        posted_at: datetime,
        sha256: str | None,
        frames: Sequence[SeenFrame],
        event: Mapping[str, Any],
    ) -> int:
        """Keeps one scanned image; returns its id (the first id on a repeat)."""
        ...

    async def seen_batch(
        self,
        *,
        since: datetime,
        after_id: int = 0,
        limit: int = SEEN_CHUNK,
        chats: Collection[tuple[str, str | int]] | None = None,
        fingerprints: bool = False,
    ) -> list[SeenImage]:
        """Kept images seen at ``since`` or later with an id above ``after_id``, in id order."""
        ...

    async def seen_image(self, platform: str, chat_id: str | int, message_id: str | int) -> SeenImage | None:
        """The kept hashes of a message's picture (its main file when kept); None when none is kept."""
        ...

    async def prune_seen(self, before: datetime, *, per_chat: int = 0, total: int = 0) -> int:
        """Deletes kept images seen before ``before``, then the oldest beyond the bounds."""
        ...

    async def purge_seen_user(self, platform: str, user_id: str | int) -> int:
        """Deletes every kept image this person posted; returns how many."""
        ...

    async def deleted_messages(self, platform: str, chat_id: str | int, message_ids: Collection[str]) -> set[str]:
        """Of these messages of a chat, those Vigil deleted already (a settled delete action)."""
        ...

    async def seen_count(self) -> tuple[int, int]:
        """(images, frames) the window holds now."""
        ...


class MembersStore(Protocol):
    """When members joined, and which of their profile photos was checked (bot/store/members.py)."""

    async def record_join(self, platform: str, chat_id: str | int, user_id: str | int, at: datetime) -> MemberRecord:
        """The member joined at ``at`` (a new join moves the time on); the avatar checked is kept."""
        ...

    async def member(self, platform: str, chat_id: str | int, user_id: str | int) -> MemberRecord | None: ...

    async def claim_avatar(
        self, platform: str, chat_id: str | int, user_id: str | int, avatar: str, *, hit: bool = False
    ) -> bool:
        """Notes ``avatar`` as the member's photo checked in the group, and whether it was a hit;
        True when that is news there."""
        ...

    async def prune_members_before(self, cutoff: datetime) -> int:
        """Forgets members last seen (joined, or a photo checked) before ``cutoff``."""
        ...

    async def forget_member(self, platform: str, user_id: str | int) -> int:
        """`vigil purge --user`: the person's join times and checked photos in every group."""
        ...


class SnapshotsStore(Protocol):
    """Index snapshots (a built index as bytes, covering its change log up to a seq) and the
    processes following the change logs, with the change each applied last (bot/snapshots.py)."""

    async def save_index_snapshot(self, kind: ChangeKind, seq: int, fmt: int, data: bytes) -> SnapshotInfo:
        """Stores a snapshot; keeps the latest two of the kind."""
        ...

    async def latest_index_snapshot(self, kind: ChangeKind) -> SnapshotInfo | None: ...

    async def index_snapshot_data(self, snapshot_id: int) -> bytes | None:
        """A snapshot's bytes; None when it is gone."""
        ...

    async def record_follower(self, process: str, role: str, kind: ChangeKind, seq: int) -> None:
        """A process's heartbeat: it has applied ``kind``'s log up to ``seq``."""
        ...

    async def live_floor(self, kind: ChangeKind, within: float) -> int | None:
        """The oldest change applied by a process seen within ``within`` seconds; None: none seen."""
        ...

    async def forget_followers(self, older_than: float) -> int: ...

    async def take_snapshot_turn(self, kind: ChangeKind, process: str, lease: float) -> bool:
        """Whether ``process`` writes ``kind``'s snapshots now (a lease of ``lease`` seconds, taken or kept)."""
        ...


class MutesStore(Protocol):
    """Matrix timed mutes, recorded by any process and lifted by the one that reads (bot/store/mutes.py)."""

    async def record_mute(self, mute: MuteRecord) -> None:
        """Records the mute (a new one for the same member and room replaces it)."""
        ...

    async def restore_mute(self, mute: MuteRecord) -> bool:
        """Puts back a mute taken for a lift that failed, unless a newer one was recorded meanwhile."""
        ...

    async def mute_of(self, room: str, user: str) -> MuteRecord | None: ...

    async def expired_mutes(self, now: datetime, limit: int = 100) -> list[MuteRecord]:
        """Mutes whose time ran out by ``now``, the longest over first."""
        ...

    async def take_mute(self, room: str, user: str, until: datetime | None = None) -> MuteRecord | None:
        """Deletes the mute and returns it (with ``until``: only the mute that runs until then);
        None when there was none. Of two processes racing, only one gets it."""
        ...

    async def forget_mutes(self, user: str) -> int:
        """`vigil purge --user`: the person's mute records in every room."""
        ...


class Store(
    GroupsStore,
    ListsStore,
    AuditStore,
    WorkStore,
    ProtectedStore,
    ChangesStore,
    ReportsStore,
    CirclesStore,
    SeenStore,
    MembersStore,
    SnapshotsStore,
    MutesStore,
    Protocol,
):
    """A whole store: every concern, plus opening details, backup and closing."""

    backend: str  # "sqlite" or "postgresql"

    @property
    def location(self) -> str:
        """Where the data lives, fit for messages and logs (never a password)."""
        ...

    async def schema_version(self) -> int: ...

    async def backup(self, dest_path: str | os.PathLike[str]) -> Path:
        """A consistent copy at ``dest_path`` (SQLite: the online backup API; PostgreSQL: pg_dump)."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
