"""Index snapshots: a built in-memory index as bytes, so a new process loads it instead of building it.

Building the protected-photo index (every known fingerprint's descriptors sorted into the
inverted file's segments) is most of a cold start. A snapshot keeps the built arrays (ids,
words, signatures, slot table, the known fingerprints' compact bytes, and per photo its ids
and owner details), never pixels; loading it is reading arrays. The format is numpy's ``.npz``
read with ``allow_pickle=False`` (no code runs from the data), with a kind and a format number
inside: a snapshot of another kind or format, or one whose arrays do not fit together, raises
``BadSnapshot`` and the caller builds the index from its source instead.

Storing snapshots and choosing when to write one is the application's (bot/snapshots.py).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping

import numpy as np

from detectors.errors import VigilError
from detectors.localmatch.index import TABLES, LocalState
from detectors.matching import ListIndex, ListState
from detectors.protected import KnownPhoto, ProtectedIndex

FORMAT = 1  # raise when the arrays or their meaning change: older snapshots are then ignored
PROTECTED = "protected"
LISTS = "lists"


class BadSnapshot(VigilError, ValueError):
    """Bytes that are not a readable index snapshot of this kind and format (build the index instead)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the index snapshot cannot be used: {detail}; the index is built from the store instead")


def _text(value: str) -> np.ndarray:
    return np.frombuffer(value.encode("utf-8"), np.uint8)


def pack(kind: str, arrays: Mapping[str, np.ndarray]) -> bytes:
    """``arrays`` as one snapshot of ``kind`` (uncompressed: descriptors do not compress)."""
    buf = io.BytesIO()
    named = {"_kind": _text(kind), "_format": np.array([FORMAT], np.int64), **arrays}
    np.savez(buf, allow_pickle=False, **named)
    return buf.getvalue()


def unpack(data: bytes, kind: str) -> dict[str, np.ndarray]:
    """The arrays of a snapshot of ``kind``; raises ``BadSnapshot``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise BadSnapshot(f"not a snapshot ({type(exc).__name__}: {exc})") from None
    try:
        found_kind = arrays["_kind"].tobytes().decode("utf-8")
        found_format = int(arrays["_format"][0])
    except (KeyError, IndexError, UnicodeDecodeError, ValueError):
        raise BadSnapshot("it carries no kind or format") from None
    if found_kind != kind:
        raise BadSnapshot(f"it is a snapshot of {found_kind!r}, not of {kind!r}")
    if found_format != FORMAT:
        raise BadSnapshot(f"it has format {found_format}, this version reads format {FORMAT}")
    return arrays


# --- protected photos ---------------------------------------------------------------------------


def _photo_row(p: KnownPhoto) -> list[object]:
    return [p.id, p.owner_id, p.owner, p.source, p.member, p.notify_to, p.group, p.label, p.pdq]


def _pair(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise ValueError("a (platform, id) pair is malformed")


def _opt_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("a text field is malformed")


def _photo(row: object) -> KnownPhoto:
    if not isinstance(row, list) or len(row) != 9:
        raise ValueError("a photo row is malformed")
    pid, owner_id, owner, source = row[:4]
    if not (isinstance(pid, int) and isinstance(owner_id, int) and isinstance(owner, str) and isinstance(source, str)):
        raise ValueError("a photo row's ids or names are malformed")
    return KnownPhoto(
        pid, owner_id, owner, source, _pair(row[4]), _pair(row[5]), _pair(row[6]), _opt_text(row[7]), _opt_text(row[8])
    )


def _local_arrays(st: LocalState, prefix: str = "") -> dict[str, np.ndarray]:
    out = {
        "bounds": np.array([(a, b) for a, b, *_ in st.segments], np.int64).reshape(-1, 2),
        "slot_keys": st.slot_keys,
        "fp_keys": st.fp_keys,
        "fp_ends": st.fp_ends,
        "fp_data": st.fp_data,
        "dead": st.dead,
    }
    for i, (_, _, words, slots, sigs) in enumerate(st.segments):
        for t in range(TABLES):
            out[f"w{i}_{t}"], out[f"s{i}_{t}"], out[f"g{i}_{t}"] = words[t], slots[t], sigs[t]
    return {prefix + k: v for k, v in out.items()}


def _local_state(arrays: Mapping[str, np.ndarray], prefix: str = "") -> LocalState:
    a = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    bounds = a["bounds"]
    if bounds.ndim != 2 or bounds.shape[1] != 2:
        raise ValueError("the segment bounds are malformed")
    segments = tuple(
        (
            int(first),
            int(last),
            tuple(a[f"w{i}_{t}"] for t in range(TABLES)),
            tuple(a[f"s{i}_{t}"] for t in range(TABLES)),
            tuple(a[f"g{i}_{t}"] for t in range(TABLES)),
        )
        for i, (first, last) in enumerate(bounds.tolist())
    )
    dead = a["dead"]
    if dead.ndim != 2 or dead.shape[1] != 2:
        raise ValueError("the dead postings table is malformed")
    return LocalState(segments, a["slot_keys"], a["fp_keys"], a["fp_ends"], a["fp_data"], dead)


def dump_protected(index: ProtectedIndex) -> bytes:
    """The protected-photo index as a snapshot (its photos' ids and owner details, its built arrays)."""
    photos, local = index.state()
    arrays: dict[str, np.ndarray] = {"photos": _text(json.dumps([_photo_row(p) for p in photos]))}
    if local is not None:
        arrays.update(_local_arrays(local))
    return pack(PROTECTED, arrays)


def load_protected(data: bytes) -> ProtectedIndex:
    """The index a ``dump_protected`` snapshot holds; raises ``BadSnapshot``."""
    arrays = unpack(data, PROTECTED)
    try:
        rows = json.loads(arrays["photos"].tobytes().decode("utf-8"))
        if not isinstance(rows, list):
            raise ValueError("the photo table is not a list")
        photos = [_photo(r) for r in rows]
        local = _local_state(arrays) if "bounds" in arrays else None
        return ProtectedIndex.from_state(photos, local)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
        raise BadSnapshot(f"its arrays do not fit together ({exc})") from None


# --- hash lists ---------------------------------------------------------------------------------


def dump_lists(index: ListIndex, lists: list[list[object]]) -> bytes:
    """The hash-list index as a snapshot; ``lists`` are the caller's rows describing its lists
    (JSON-able: ids, names, kinds), given back by ``load_lists``."""
    st = index.state()
    arrays: dict[str, np.ndarray] = {
        "lists": _text(json.dumps(lists)),
        "pdq_ids": st.pdq[0],
        "pdq_codes": st.pdq[1],
        "value_ids": st.value[0],
        "value_codes": st.value[1],
        "phash_ids": st.phash[0],
        "phash_codes": st.phash[1],
        "sha_key": st.sha_key,
        "list_of": st.list_of,
        "quality": st.quality,
        "count": np.array([st.count], np.int64),
        "local_keys": st.local_keys,
    }
    if st.local is not None:
        arrays.update(_local_arrays(st.local, "local_"))
    return pack(LISTS, arrays)


def load_lists(data: bytes, *, mih_threshold: int = 65536, local: bool = True) -> tuple[ListIndex, list[object]]:
    """The index and the list rows a ``dump_lists`` snapshot holds; raises ``BadSnapshot``."""
    a = unpack(data, LISTS)
    try:
        rows = json.loads(a["lists"].tobytes().decode("utf-8"))
        if not isinstance(rows, list):
            raise ValueError("the list table is not a list")
        st = ListState(
            (a["pdq_ids"], a["pdq_codes"]),
            (a["value_ids"], a["value_codes"]),
            (a["phash_ids"], a["phash_codes"]),
            a["sha_key"],
            a["list_of"],
            a["quality"],
            int(a["count"][0]),
            _local_state(a, "local_") if "local_bounds" in a else None,
            a["local_keys"],
        )
        return ListIndex.from_state(st, mih_threshold=mih_threshold, local=local), rows
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
        raise BadSnapshot(f"its arrays do not fit together ({exc})") from None
