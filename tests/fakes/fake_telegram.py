"""A fake Telegram Bot API server: enough of getUpdates, send*, getFile and file downloads for
python-telegram-bot to run against it unmodified (`base_url`/`base_file_url`).

Tests act as users with `send_text`, `send_command` and `send_voice` (in a private chat, or in a
group with `chat_id=`; `@mentions` get their entities as Telegram computes them, in UTF-16 units),
and read what the bot sent from `sent` and how often it called a method from `calls`. Like Telegram,
it refuses HTML that does not parse and messages over 4096 characters; `fail` makes a method fail
the way Telegram does (a voice note refused by the user's privacy settings, a flood limit, a 5xx).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

from aiohttp import web

from tests.fakes.server import ThreadedServer, wait_until

TOKEN = "123456:AAFakeTelegramTokenForJuneTests_0123456"
BOT_ID = 123456
DOWNLOAD_LIMIT = 20 * 1024 * 1024
BOT_USERNAME = "june_test_bot"
VOICE_FORBIDDEN = "Bad Request: VOICE_MESSAGES_FORBIDDEN"
USER_RESTRICTED_VOICE = "Forbidden: user restricted receiving of voice messages"
MENTION = re.compile(r"@[A-Za-z0-9_]{5,32}")
JSON_FIELDS = {"reply_parameters", "allowed_updates", "commands", "reply_markup", "link_preview_options", "entities"}
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
             "blockquote", "tg-emoji"}


@dataclass
class Sent:
    method: str
    chat_id: int
    message_id: int
    text: str | None = None
    parse_mode: str | None = None
    reply_to: int | None = None
    voice: bytes | None = None
    document: bytes | None = None  # sendDocument and sendAudio
    filename: str | None = None
    at: float = field(default_factory=time.time)  # when the fake received it


@dataclass
class FakeTelegram:
    token: str = TOKEN
    port: int = 0
    sent: list[Sent] = field(default_factory=list)
    chat_actions: list[tuple[int, str]] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    webhook: dict = field(default_factory=dict)  # setWebhook's parameters
    edits: list[tuple[float, int, int, str]] = field(default_factory=list)  # editMessageText: time, chat, message, text

    def __post_init__(self) -> None:
        self._failures: dict[str, list[dict]] = {}
        self._updates: list[dict] = []
        self._files: dict[str, bytes] = {}
        self._ids = itertools.count(random.randrange(10**6, 10**9, 1000))  # each fake is a new world of IDs
        self._update_ids = itertools.count(1)
        self._lock = threading.Lock()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self.server = ThreadedServer(app, self.port)
        self._new_update: asyncio.Event | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        self.server.start()
        self._new_update = self.server.call(self._make_event())
        return self

    async def _make_event(self) -> asyncio.Event:
        return asyncio.Event()

    def stop(self) -> None:
        self.server.stop()

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/bot"

    @property
    def file_url(self) -> str:
        return f"{self.server.url}/file/bot"

    # -- acting as users --------------------------------------------------------------------
    def send_text(self, user_id: int, text: str, chat_id: int | None = None, reply_to: int | None = None) -> int:
        return self._push(self.message(user_id, chat_id, {"text": text, **_mentions(text)}, reply_to))

    def send_command(self, user_id: int, command: str, chat_id: int | None = None) -> int:
        name = command.split()[0]
        entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(name)}]
        return self._push(self.message(user_id, chat_id, {"text": command, "entities": entities}))

    def send_voice(self, user_id: int, audio: bytes, chat_id: int | None = None, duration: int = 2,
                   declared_size: int | None = None, caption: str | None = None, reply_to: int | None = None) -> int:
        file_id = f"voice-{next(self._ids)}"
        self._files[file_id] = audio
        voice = {"file_id": file_id, "file_unique_id": file_id, "duration": duration, "mime_type": "audio/ogg",
                 "file_size": declared_size or len(audio)}
        content: dict = {"voice": voice}
        if caption:
            mentions = _mentions(caption)
            content.update(caption=caption, **({"caption_entities": mentions["entities"]} if mentions else {}))
        return self._push(self.message(user_id, chat_id, content, reply_to))

    def message(self, user_id: int, chat_id: int | None, content: dict, reply_to: int | None = None) -> dict:
        """A message as Telegram sends it: a private chat when `chat_id` is the user's, a group otherwise."""
        chat = chat_id or user_id
        chat_info = {"id": chat, "type": "private", "first_name": "U"} if chat == user_id else \
            {"id": chat, "type": "supergroup" if chat < -1_000_000 else "group", "title": "A group"}
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat_info,
                   "from": {"id": user_id, "is_bot": False, "first_name": "U"}, **content}
        if reply_to is not None:
            replied = next((s for s in self.sent if s.message_id == reply_to), None)
            author = {"id": BOT_ID, "is_bot": True, "first_name": "June", "username": BOT_USERNAME} if replied else \
                {"id": user_id + 1, "is_bot": False, "first_name": "Someone"}
            message["reply_to_message"] = {"message_id": reply_to, "date": int(time.time()), "chat": chat_info,
                                           "from": author, "text": (replied.text if replied else None) or "..."}
        return message

    def update(self, message: dict) -> dict:
        return {"update_id": next(self._update_ids), "message": message}

    def _push(self, message: dict) -> int:
        with self._lock:
            self._updates.append(self.update(message))
        self.server.loop.call_soon_threadsafe(self._new_update.set)
        return message["message_id"]

    def fail(self, method: str, description: str, error_code: int = 400, times: int = 1,
             retry_after: int | None = None) -> None:
        """Make the next `times` calls of `method` fail as Telegram would (`retry_after` for a 429)."""
        failure = {"ok": False, "error_code": error_code, "description": description}
        if retry_after is not None:
            failure["parameters"] = {"retry_after": retry_after}
        with self._lock:
            self._failures.setdefault(method, []).extend([failure] * times)

    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    # -- reading what the bot did -------------------------------------------------------------
    def replies_to(self, message_id: int) -> list[Sent]:
        with self._lock:
            return [sent for sent in self.sent if sent.reply_to == message_id]

    def wait_for_replies(self, message_id: int, timeout: float = 60, count: int = 1) -> list[Sent]:
        return wait_until(lambda: len(self.replies_to(message_id)) >= count and self.replies_to(message_id),
                          timeout, f"{count} replies to message {message_id}")

    def wait_for_text_reply(self, message_id: int, timeout: float = 60) -> list[Sent]:
        """All the bot's messages answering `message_id`, once the last text part has arrived."""

        def complete() -> list[Sent] | None:
            texts = [s for s in self.replies_to(message_id) if s.method == "sendMessage"]
            return self.replies_to(message_id) if texts else None

        return wait_until(complete, timeout, f"a text reply to message {message_id}")

    # -- the Bot API --------------------------------------------------------------------------
    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        self.requests.append(method)
        with self._lock:
            self.calls[method] += 1
            failures = self._failures.get(method)
            failure = failures.pop(0) if failures else None
        if failure is not None:
            return web.json_response(failure, status=failure["error_code"])
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _ok(True)
        return await handler(params)

    async def _api_getMe(self, params: dict) -> web.Response:
        return _ok({"id": BOT_ID, "is_bot": True, "first_name": "June", "username": BOT_USERNAME,
                    "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False})

    async def _api_setMyCommands(self, params: dict) -> web.Response:
        self.commands = params.get("commands", [])
        return _ok(True)

    async def _api_getUpdates(self, params: dict) -> web.Response:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        with self._lock:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones are gone
            ready = list(self._updates)
        if not ready and timeout:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                pass
            with self._lock:
                ready = [u for u in self._updates if u["update_id"] >= offset]
        return _ok(ready[: int(params.get("limit") or 100)])

    async def _api_sendMessage(self, params: dict) -> web.Response:
        text = params.get("text", "")
        if len(text) > 4096:
            return _bad_request("message is too long")
        if params.get("parse_mode") == "HTML":
            problem = _html_problem(text)
            if problem:
                return _bad_request(f"can't parse entities: {problem}")
        return self._record(Sent("sendMessage", int(params["chat_id"]), next(self._ids), text=text,
                                 parse_mode=params.get("parse_mode"), reply_to=_reply_to(params)), {"text": text})

    async def _api_editMessageText(self, params: dict) -> web.Response:
        """Telegram's edit: the message keeps its id and gets the new text (`sent` shows the latest)."""
        text, chat_id, message_id = params.get("text", ""), int(params["chat_id"]), int(params["message_id"])
        if len(text) > 4096:
            return _bad_request("message is too long")
        if params.get("parse_mode") == "HTML" and (problem := _html_problem(text)):
            return _bad_request(f"can't parse entities: {problem}")
        with self._lock:
            target = next((s for s in self.sent if s.chat_id == chat_id and s.message_id == message_id), None)
            if target is None:
                return _bad_request("message to edit not found")
            if target.text == text:
                return _bad_request("message is not modified")
            target.text, target.parse_mode = text, params.get("parse_mode")
            self.edits.append((time.monotonic(), chat_id, message_id, text))
        return _ok({"message_id": message_id, "date": int(time.time()), "text": text,
                    "chat": {"id": chat_id, "type": "private"}, "from": {"id": BOT_ID, "is_bot": True,
                                                                          "first_name": "June"}})

    def sent_to(self, chat_id: int) -> list[Sent]:
        with self._lock:
            return [sent for sent in self.sent if sent.chat_id == chat_id]

    async def _api_sendVoice(self, params: dict) -> web.Response:
        voice = params["voice"]
        sent = Sent("sendVoice", int(params["chat_id"]), next(self._ids), voice=voice, reply_to=_reply_to(params))
        file_id = f"sent-{sent.message_id}"
        return self._record(sent, {"voice": {"file_id": file_id, "file_unique_id": file_id, "duration": 1}})

    async def _api_sendAudio(self, params: dict) -> web.Response:
        return await self._file("sendAudio", "audio", params)

    async def _api_sendDocument(self, params: dict) -> web.Response:
        return await self._file("sendDocument", "document", params)

    async def _file(self, method: str, name: str, params: dict) -> web.Response:
        data = params[name]
        sent = Sent(method, int(params["chat_id"]), next(self._ids), text=params.get("caption"),
                    reply_to=_reply_to(params), document=data, filename=params.get("_filenames", {}).get(name))
        file_id = f"sent-{sent.message_id}"
        media = {"file_id": file_id, "file_unique_id": file_id, "file_name": sent.filename}
        return self._record(sent, {name: {**media, "duration": 1} if name == "audio" else media})

    async def _api_setWebhook(self, params: dict) -> web.Response:
        self.webhook = dict(params)
        return _ok(True)

    async def _api_deleteWebhook(self, params: dict) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _api_forwardMessage(self, params: dict) -> web.Response:
        sent = Sent("forwardMessage", int(params["chat_id"]), next(self._ids))
        return self._record(sent, {"text": "(forwarded)"})

    async def _api_sendChatAction(self, params: dict) -> web.Response:
        self.chat_actions.append((int(params["chat_id"]), params["action"]))
        return _ok(True)

    async def _api_getFile(self, params: dict) -> web.Response:
        data = self._files.get(params["file_id"])
        if data is None:
            return _bad_request("invalid file_id")
        if len(data) > DOWNLOAD_LIMIT:
            return _bad_request("file is too big")
        return _ok({"file_id": params["file_id"], "file_unique_id": params["file_id"], "file_size": len(data),
                    "file_path": f"voice/{params['file_id']}.oga"})

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("voice/").removesuffix(".oga")
        data = self._files.get(file_id)
        return web.Response(body=data) if data is not None else web.Response(status=404)

    def _record(self, sent: Sent, content: dict) -> web.Response:
        with self._lock:
            self.sent.append(sent)
        return _ok({"message_id": sent.message_id, "date": int(time.time()),
                    "chat": {"id": sent.chat_id, "type": "private"},
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "June"}, **content})


async def _params(request: web.Request) -> dict:
    if request.content_type == "application/json":
        return await request.json()
    params: dict = {}
    form = await request.post() if request.method == "POST" else request.query
    for key, value in form.items():
        if hasattr(value, "file"):
            params[key] = value.file.read()
            params.setdefault("_filenames", {})[key] = value.filename
        elif key in JSON_FIELDS:
            params[key] = json.loads(value)
        else:
            params[key] = value
    return params


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _mentions(text: str) -> dict:
    """`entities` for the @mentions in `text`, offsets and lengths in UTF-16 code units as Telegram counts."""
    entities = [{"type": "mention", "offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group())}
                for m in MENTION.finditer(text)]
    return {"entities": entities} if entities else {}


def _reply_to(params: dict) -> int | None:
    reply = params.get("reply_parameters")
    return int(reply["message_id"]) if reply else None


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _bad_request(description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"},
                             status=400)


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in HTML_TAGS:
            self.problem = self.problem or f"Unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problem = self.problem or f"Unexpected end tag \"{tag}\""
        else:
            self.stack.pop()


def _html_problem(text: str) -> str | None:
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    if checker.problem:
        return checker.problem
    if checker.stack:
        return f"Can't find end tag corresponding to start tag \"{checker.stack[-1]}\""
    return None
