"""The emulator: the HTTP server, the method table, failure injection; see the package docstring."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import BodyPartReader, web

from tests.support.botapi.limits import MAX_DOWNLOAD_BYTES, MAX_UPLOAD_BYTES
from tests.support.botapi.members_door import DoorMethods
from tests.support.botapi.model import ApiError, Call, Upload, _bad, _Failure
from tests.support.botapi.params import _decode_form_value, _is_int_like

API_METHODS = (
    "getMe",
    "logOut",
    "close",
    "deleteWebhook",
    "getWebhookInfo",
    "getUpdates",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "deleteMessage",
    "deleteMessages",
    "getFile",
    "getChat",
    "getChatAdministrators",
    "getChatMember",
    "getChatMemberCount",
    "restrictChatMember",
    "banChatMember",
    "unbanChatMember",
    "answerCallbackQuery",
    "sendDocument",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendChatAction",
    "leaveChat",
    "banChatSenderChat",
    "unbanChatSenderChat",
    "getUserProfilePhotos",
    "approveChatJoinRequest",
    "declineChatJoinRequest",
)


class BotApiEmulator(DoorMethods):
    """One emulated bot and the Telegram world around it. See the package docstring."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "vigil_test_bot",
        bot_name: str = "Vigil",
        privacy_mode: bool = True,
        port: int = 0,
    ) -> None:
        super().__init__(token, bot_username=bot_username, bot_name=bot_name, privacy_mode=privacy_mode, port=port)
        self._handlers: dict[str, Callable[[dict], Any]] = {
            name.lower(): getattr(self, "_m_" + name) for name in API_METHODS
        }
        self._canonical: dict[str, str] = {name.lower(): name for name in API_METHODS}

    # --- server lifecycle -------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on 127.0.0.1 (a free port unless one was given); returns the base URL."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._serve_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._serve_file)
        app.router.add_route("*", "/{tail:.*}", self._serve_not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = False
        return self.url

    async def stop(self) -> None:
        """Answer pending long polls at once, then close the server (short shutdown timeout)."""
        self._stopping = True
        self._wake_poll("stop")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.internal_errors:
            errors, self.internal_errors = self.internal_errors, []
            raise AssertionError(f"the Bot API emulator failed internally: {errors!r}") from errors[0]

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def bot_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``telegram.Bot(...)`` pointed at this emulator."""
        return {"token": self.token, "base_url": f"{self.url}/bot", "base_file_url": f"{self.url}/file/bot"}

    # --- HTTP layer -------------------------------------------------------------------------------

    async def _serve_api(self, request: web.Request) -> web.Response:
        started = time.time()
        name = request.match_info["method"]
        method = self._canonical.get(name.lower(), name)
        params: dict[str, Any] = {}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            params = await self._read_params(request)
            self._note_delete_attempt(method, params)
            held = self._held.get(method.lower())
            if held is not None:  # the test holds this method: its calls wait, then go on as sent
                await held.wait()
            self._maybe_fail(method)
            self._maybe_flood(method, params)
            handler = self._handlers.get(name.lower())
            if handler is None:
                raise ApiError(404, "Not Found")
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as err:
            return self._error_response(method, params, started, err)
        except Exception as exc:  # a bug in the emulator: answer 500 and make the test fail in stop()
            self.internal_errors.append(exc)
            return self._error_response(method, params, started, ApiError(500, f"Internal Server Error: {exc!r}"))
        self._record(Call(method, params, started, 200, copy.deepcopy(result)))
        return web.json_response({"ok": True, "result": result})

    async def _serve_file(self, request: web.Request) -> web.Response:
        started = time.time()
        path = request.match_info["path"]
        params = {"file_path": path}
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            self._maybe_fail("downloadFile")
            file_id = self._paths.get(path)
            if file_id is None or self._files[file_id].ref.size > MAX_DOWNLOAD_BYTES:
                raise ApiError(404, "Not Found")
        except ApiError as err:
            return self._error_response("downloadFile", params, started, err)
        stored = self._files[file_id]
        self._record(Call("downloadFile", params, started, 200, {"size": stored.ref.size}))
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _serve_not_found(self, request: web.Request) -> web.Response:
        return self._error_response(request.path, {}, time.time(), ApiError(404, "Not Found"))

    def _error_response(self, method: str, params: dict, started: float, err: ApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": err.status, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        self._record(Call(method, params, started, err.status, None, err.description))
        return web.json_response(body, status=err.status)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: _decode_form_value(k, v) for k, v in request.query.items()}
        if not request.can_read_body:
            return params
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON object")
            params.update(body)
        elif ctype == "multipart/form-data":
            # read parts ourselves: aiohttp's request.post() would spool file parts to disk
            reader = await request.multipart()
            total = 0
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    raise _bad("can't parse multipart form data")  # nested or nameless parts: no client sends them
                data = await part.read()
                total += len(data)
                if total > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "Request Entity Too Large")
                if part.filename is not None:
                    params[part.name] = Upload(part.filename, part.headers.get("Content-Type"), bytes(data))
                else:
                    params[part.name] = _decode_form_value(part.name, data.decode("utf-8"))
            for key, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    attached = params.get(value[len("attach://") :])
                    if isinstance(attached, Upload):
                        params[key] = attached
        else:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            for key, value in form.items():
                params[key] = _decode_form_value(key, value) if isinstance(value, str) else value
        return params

    def _note_delete_attempt(self, method: str, params: dict) -> None:
        # noted on arrival: a delete of a gone message is answered 400 (deleteMessages skips it and
        # answers True), and a call cut off by a killed client never gets an answer, yet each is a repeat
        if method not in ("deleteMessage", "deleteMessages"):
            return
        ids = params.get("message_ids") if method == "deleteMessages" else [params.get("message_id")]
        chat = params.get("chat_id")
        if not isinstance(ids, list) or not _is_int_like(chat):
            return
        self.delete_attempts.extend((int(chat), int(i)) for i in ids if _is_int_like(i))

    def _maybe_fail(self, method: str) -> None:
        for key in (method.lower(), "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
                raise ApiError(failure.status, failure.description, failure.parameters)

    def _maybe_flood(self, method: str, params: dict) -> None:
        if self._flood_after is None or method not in ("deleteMessage", "deleteMessages"):
            return
        chat = params.get("chat_id")
        ids = params.get("message_ids") if method == "deleteMessages" else [params.get("message_id")]
        if not isinstance(ids, list) or not _is_int_like(chat):
            return
        keys = {(int(chat), int(i)) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
        if keys - self._flood_seen:
            self._flood_seen |= keys
            raise ApiError(
                429, f"Too Many Requests: retry after {self._flood_after}", {"retry_after": self._flood_after}
            )

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed()

    # --- test-control API: failures -----------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        parameters: dict | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ("*": any method, "downloadFile": downloads) fail.

        429 answers carry ``parameters.retry_after``; other statuses get the HTTP reason as
        description unless one is given. Nothing changes on a failed call.
        """
        if status == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after, **(parameters or {})}
        elif description is None:
            try:
                description = HTTPStatus(status).phrase
            except ValueError:
                description = "Error"
        self._failures.setdefault(method.lower(), []).append(_Failure(status, description, parameters, times))

    def hold(self, method: str) -> None:
        """Calls of ``method`` wait (unanswered, as on a slow link) until ``release(method)``; then
        each is answered in turn, injected failures included."""
        self._held[method.lower()] = asyncio.Event()

    def release(self, method: str) -> None:
        held = self._held.pop(method.lower(), None)
        if held is not None:
            held.set()

    def flood_new_deletes(self, retry_after: int = 1) -> None:
        """From now on, a delete call (deleteMessage or deleteMessages) that names a message no
        delete call named before is answered 429 with ``retry_after`` (and deletes nothing), as a
        group under flood control answers: each message's first delete meets one rate limit."""
        self._flood_after = retry_after
