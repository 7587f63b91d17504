"""A Telegram Bot API emulator for Vigil's tests, served by aiohttp on 127.0.0.1.

The real python-telegram-bot (PTB) talks to it over real HTTP; point it here with
``Application.builder().token(emu.token).base_url(f"{emu.url}/bot").base_file_url(f"{emu.url}/file/bot")``
or ``Bot(**emu.bot_kwargs())``. The tests steer the Telegram side with plain Python methods
(users post photos, press buttons, messages age) and assert on :attr:`BotApiEmulator.calls` and on
the resulting chat state.

What it models, because Vigil's behaviour depends on it:

* members with statuses and the full administrator-rights / restriction-permission sets;
* the bot's own membership and privacy mode (a non-admin bot sees only commands, replies to it
  and service messages);
* the update queue with ``offset`` confirmation, ``limit``, long polling, ``allowed_updates``
  (``chat_member`` only when asked for and only for admin bots) and the 409 conflict between two
  pollers;
* the real error texts and shapes for the mistakes a bot makes (deleting without rights or after
  48 h, messaging users who never started the bot, bad HTML / Markdown, oversized callback data,
  files over 20 MB, restricting admins, ...);
* failure injection (429 with ``retry_after``, 5xx) per method.

Everything stays in memory; nothing is written to disk. Run on the caller's event loop, no threads.
Standalone: ``python -m tests.support.botapi --port N`` serves an empty emulator and prints its URL.

Layout: values and rules first, then the emulator as a stack of classes, each adding one area and
using only those below it (so each reads on its own):

* ``limits`` (the Bot API's limits, rights, permissions, update kinds), ``model`` (values handed to
  tests, the mutable state records), ``formatting`` (HTML / Markdown to entities), ``media`` (photo
  sizes, thumbnails, video frames), ``params`` (small pure helpers);
* ``state.State`` (users, chats, the update queue, waking waiters) < ``files.Files`` <
  ``chat_params.ChatParams`` (what the methods share) < ``world.World`` and ``posting.Posting``
  (the test-control API) < ``inspection.Inspection`` (what tests read) < ``methods_chats`` and
  ``methods_messages`` (the Bot API methods by area) < ``emulator.BotApiEmulator`` (the HTTP
  server, the method table, failure injection).
"""

from tests.support.botapi.emulator import BotApiEmulator
from tests.support.botapi.limits import ADMIN_RIGHTS, PERMISSIONS, full_rights
from tests.support.botapi.model import Call, FileRef, NotPermitted, ScenarioError, Upload

__all__ = [
    "ADMIN_RIGHTS",
    "PERMISSIONS",
    "BotApiEmulator",
    "Call",
    "FileRef",
    "NotPermitted",
    "ScenarioError",
    "Upload",
    "full_rights",
]
