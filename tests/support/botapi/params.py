"""Small pure helpers: decoding request parameters, member and file JSON, markup checks."""

from __future__ import annotations

import json
import re
from typing import Any, TypeGuard

from tests.support.botapi.limits import _BUTTON_ACTIONS, _STRING_PARAMS, ADMIN_RIGHTS, MAX_CALLBACK_DATA
from tests.support.botapi.model import FileRef, ScenarioError, Upload, _bad, _Member

# --- small pure helpers ---------------------------------------------------------------------------


def _decode_form_value(key: str, value: str) -> Any:
    # PTB JSON-encodes every non-string value; the Bot API decodes by parameter type
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _opt_int(p: dict, name: str) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"invalid {name} specified")
    return value


def _is_int_like(value: object) -> TypeGuard[int | str]:
    """An integer, or the decimal text of one (chat ids may come as strings)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())


def _req_int(p: dict, name: str, missing: str) -> int:
    value = _opt_int(p, name)
    if value is None:
        raise _bad(missing)
    return value


def _bool(p: dict, name: str) -> bool:
    value = p.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _counts(m: _Member) -> bool:
    return m.status in ("creator", "administrator", "member") or (m.status == "restricted" and m.is_member)


def _checked_rights(rights: dict[str, bool]) -> dict[str, bool]:
    unknown = set(rights) - set(ADMIN_RIGHTS)
    if unknown:
        raise ScenarioError(f"unknown administrator rights {sorted(unknown)}; known: {', '.join(ADMIN_RIGHTS)}")
    return {**{r: False for r in ADMIN_RIGHTS}, **{k: bool(v) for k, v in rights.items()}, "can_manage_chat": True}


def _bot_member(rights: dict[str, bool] | None) -> _Member:
    return _Member("member") if rights is None else _Member("administrator", rights=_checked_rights(rights))


def _file_json(ref: FileRef) -> dict:
    return {"file_id": ref.file_id, "file_unique_id": ref.file_unique_id, "file_size": ref.size}


def _photo_size(ref: FileRef, width: int, height: int) -> dict:
    return {**_file_json(ref), "width": width, "height": height}


def _scope_key(scope: dict | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _inline_markup(markup: Any) -> dict | None:
    """Validate reply_markup; return the inline keyboard a message keeps (other keyboards: None)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
            return None
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("can't parse inline keyboard button: InlineKeyboardMarkup must be an Array of Arrays")
    clean_rows = []
    for row in rows:
        clean = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                raise _bad("can't parse inline keyboard button: Text must be non-empty")
            actions = [a for a in _BUTTON_ACTIONS if a in button]
            if not actions:
                raise _bad("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad("can't parse inline keyboard button: exactly one of the optional fields must be used")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise _bad(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
            clean.append(dict(button))
        if clean:
            clean_rows.append(clean)
    return {"inline_keyboard": clean_rows}


def _short(params: dict) -> str:
    def one(v: Any) -> str:
        if isinstance(v, Upload):
            return f"<upload {v.filename} {len(v.data)} B>"
        s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
        return s if len(s) <= 60 else s[:57] + "..."

    return "{" + ", ".join(f"{k}={one(v)}" for k, v in params.items()) + "}"
