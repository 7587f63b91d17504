"""Files the world holds: uploads, photo sizes, thumbnails, documents and videos."""

from __future__ import annotations

import copy
import mimetypes
import secrets
from typing import Any

from tests.support.botapi.limits import _FILE_DIR, _FILE_ID_PREFIX, PHOTO_SIDES
from tests.support.botapi.media import _image_size, _probe_video, _scaled_jpegs
from tests.support.botapi.model import FileRef, ScenarioError, _Stored
from tests.support.botapi.params import _file_json, _photo_size
from tests.support.botapi.state import State


class Files(State):
    """Stored files: what users upload, the photo sizes and thumbnails Telegram derives."""

    # --- files -----------------------------------------------------------------------------

    def upload(
        self, data: bytes, *, kind: str = "photo", mime: str | None = None, file_name: str | None = None
    ) -> FileRef:
        """Store bytes as a Telegram file and return its ids (no message is posted)."""
        if kind not in _FILE_DIR:
            raise ScenarioError(f"unknown file kind {kind!r}; use one of {sorted(_FILE_DIR)}")
        if not isinstance(data, (bytes, bytearray)):
            raise ScenarioError("upload() needs bytes")
        number = next(self._file_numbers)
        folder, ext = _FILE_DIR[kind]
        if kind == "document":
            ext = (file_name and "." in file_name and "." + file_name.rsplit(".", 1)[1].lower()) or (
                mimetypes.guess_extension(mime or "") or ""
            )
        path = f"{folder}/file_{number}{ext}"
        ref = FileRef(
            file_id=_FILE_ID_PREFIX[kind] + secrets.token_urlsafe(40),
            file_unique_id="AQAD" + secrets.token_urlsafe(9),
            file_path=path,
            size=len(data),
            kind=kind,
            mime=mime,
            file_name=file_name,
        )
        self._files[ref.file_id] = _Stored(ref, bytes(data))
        self._paths[path] = ref.file_id
        return ref

    def file_bytes(self, file_id: str) -> bytes:
        stored = self._files.get(file_id)
        if stored is None:
            raise ScenarioError(f"no file {file_id!r}")
        return stored.data

    def _ref(self, data: bytes | FileRef, kind: str, **meta: Any) -> FileRef:
        if isinstance(data, FileRef):
            if data.file_id not in self._files:
                raise ScenarioError(f"FileRef {data.file_id!r} was not made by this emulator")
            return data
        return self.upload(data, kind=kind, **meta)

    def _thumbnail(self, image: bytes | None, side: int = 320) -> dict | None:
        if image is None:
            return None
        scaled = _scaled_jpegs(image, [side])
        if not scaled:
            return None
        jpeg, width, height = scaled[0]
        ref = self.upload(jpeg, kind="thumbnail", mime="image/jpeg")
        return _photo_size(ref, width, height)

    def _photo(self, data: bytes | FileRef) -> list[dict]:
        ref = self._ref(data, "photo", mime="image/jpeg")
        if ref.file_id not in self._photo_sets:
            raw = self._files[ref.file_id].data
            width, height = _image_size(raw) or (0, 0)
            sizes = []
            for jpeg, w, h in _scaled_jpegs(raw, [s for s in PHOTO_SIDES if s < max(width, height)]):
                sizes.append(_photo_size(self.upload(jpeg, kind="photo", mime="image/jpeg"), w, h))
            sizes.append(_photo_size(ref, width, height))  # the largest is the original bytes
            self._photo_sets[ref.file_id] = sizes
        return copy.deepcopy(self._photo_sets[ref.file_id])

    def _document(self, data: bytes | FileRef, file_name: str, mime: str | None) -> dict:
        mime = mime or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        ref = self._ref(data, "document", mime=mime, file_name=file_name)
        doc = _file_json(ref)
        doc["file_name"] = ref.file_name or file_name
        doc["mime_type"] = ref.mime or mime
        if (ref.mime or "").startswith("image/"):
            thumb = self._thumbnail(self._files[ref.file_id].data)
            if thumb:
                doc["thumbnail"] = thumb
        return doc

    def _video_like(
        self,
        data: bytes | FileRef,
        kind: str,
        mime: str,
        file_name: str | None,
        width: int | None,
        height: int | None,
        duration: int | None,
    ) -> dict:
        ref = self._ref(data, kind, mime=mime, file_name=file_name)
        probe = _probe_video(self._files[ref.file_id].data)
        pw, ph, pd, frame = probe if probe else (0, 0, 0, None)
        out = _file_json(ref)
        out.update(
            width=width if width is not None else pw,
            height=height if height is not None else ph,
            duration=duration if duration is not None else pd,
            mime_type=ref.mime or mime,
        )
        if ref.file_name or file_name:
            out["file_name"] = ref.file_name or file_name
        thumb = self._thumbnail(frame)
        if thumb:
            out["thumbnail"] = thumb
        return out
