"""A fake Discord: the REST routes and the gateway WebSocket (hello, identify, ready, heartbeats,
dispatches) that discord.py uses, enough to run it unmodified once its base URLs point here.

Tests act as users with `send_message` and `run_command` (in a DM, or in a guild channel with
`guild_id=`), and read what the bot sent from `sent` and every message the bot tried to create from
`attempts`. `fail` makes message creation fail the way Discord does: 403 with code 50013 (missing
permissions) on attachments, a 429 with its retry-after, a 5xx.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import WSMsgType, web

from tests.fakes.server import ThreadedServer, wait_until

MISSING_PERMISSIONS = 50013
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GfakeA.FakeDiscordTokenForJuneTests_0123456"
BOT_ID = 900000000000000001
APPLICATION_ID = 900000000000000002


@dataclass
class Sent:
    channel_id: int
    message_id: int
    content: str | None
    reply_to: int | None
    files: dict[str, bytes] = field(default_factory=dict)
    interaction_id: int | None = None


def _user(user_id: int, bot: bool = False) -> dict:
    return {"id": str(user_id), "username": f"user{user_id}", "discriminator": "0", "global_name": None,
            "avatar": None, "bot": bot}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class FakeDiscord:
    token: str = TOKEN
    sent: list[Sent] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    typing: list[int] = field(default_factory=list)
    attempts: list[tuple[int, bool, int]] = field(default_factory=list)  # channel, with files, status answered
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # PATCH of a message: channel, message, content

    def __post_init__(self) -> None:
        self._failures: list[dict] = []
        self._ids = itertools.count(1_000_000_000_000_000_000 + random.randrange(10**15))  # a new world of IDs
        self._sequence = itertools.count(1)
        self._files: dict[str, bytes] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._lock = threading.Lock()
        self.ready = threading.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self.server = ThreadedServer(app)

    def start(self) -> FakeDiscord:
        self.server.start()
        return self

    def stop(self) -> None:
        for socket in list(self._sockets):
            self.server.call(socket.close())
        self.server.stop()

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/gateway"

    # -- acting as users --------------------------------------------------------------------
    def send_message(self, user_id: int, content: str = "", audio: bytes | None = None,
                     voice_message: bool = False, guild_id: int | None = None, channel_id: int | None = None,
                     reply_to: int | None = None) -> int:
        """A message from `user_id`: a DM (channel ID = user ID + 1), or in a guild channel with `guild_id`.

        `<@id>` in `content` mentions that user; `reply_to` replies to a message (the bot's, if it sent it).
        """
        message_id = next(self._ids)
        channel = channel_id or (user_id + 1)
        attachments = []
        if audio is not None:
            name = f"voice-{message_id}.ogg"
            self._files[name] = audio
            attachment = {"id": str(next(self._ids)), "filename": name, "size": len(audio),
                          "url": f"{self.server.url}/attachments/{name}",
                          "proxy_url": f"{self.server.url}/attachments/{name}", "content_type": "audio/ogg"}
            if voice_message:
                attachment.update(duration_secs=2.0, waveform="AAAA")
            attachments.append(attachment)
        mentioned = [int(found) for found in re.findall(r"<@!?(\d+)>", content)]
        payload = {"id": str(message_id), "channel_id": str(channel), "author": _user(user_id),
                   "content": content, "timestamp": _now(), "edited_timestamp": None, "tts": False,
                   "mention_everyone": False, "mentions": [_user(m, bot=m == BOT_ID) for m in mentioned],
                   "mention_roles": [], "attachments": attachments,
                   "embeds": [], "pinned": False, "type": 0, "flags": 8192 if voice_message else 0}
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["member"] = {"roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}
        if reply_to is not None:
            replied = next((sent for sent in self.sent if sent.message_id == reply_to), None)
            payload["type"] = 19
            payload["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel),
                                            **({"guild_id": str(guild_id)} if guild_id else {})}
            someone_elses = {**{k: v for k, v in payload.items() if k != "message_reference"}, "id": str(reply_to),
                             "author": _user(user_id + 7), "content": "someone else", "type": 0}
            payload["referenced_message"] = self._message(replied) if replied else someone_elses
        self.dispatch("MESSAGE_CREATE", payload)
        return message_id

    def run_command(self, user_id: int, name: str, options: list[dict] | None = None,
                    guild_id: int | None = None) -> int:
        interaction_id = next(self._ids)
        channel = {"id": str(user_id + 1), "type": 1} if guild_id is None else \
            {"id": str(user_id + 1), "type": 0, "guild_id": str(guild_id), "name": "general", "position": 0}
        payload = {"id": str(interaction_id), "application_id": str(APPLICATION_ID), "type": 2,
                   "token": f"itoken{interaction_id}", "version": 1, "channel_id": str(user_id + 1),
                   "channel": channel, "user": _user(user_id),
                   "data": {"id": str(next(self._ids)), "name": name, "type": 1, "options": options or []},
                   "app_permissions": "0", "locale": "en-US", "entitlements": [], "attachment_size_limit": 10485760,
                   "authorizing_integration_owners": {"1": str(user_id)}, "context": 1 if guild_id is None else 0}
        if guild_id is not None:
            del payload["user"]
            payload["guild_id"] = str(guild_id)
            payload["member"] = {"user": _user(user_id), "roles": [], "joined_at": _now(), "deaf": False,
                                 "mute": False, "flags": 0, "permissions": "0"}
        self.dispatch("INTERACTION_CREATE", payload)
        return interaction_id

    def fail(self, status: int, code: int = 0, message: str = "", times: int = 1, files_only: bool = False,
             retry_after: float | None = None) -> None:
        """Make the next `times` message creations (only those with files, if `files_only`) fail like Discord."""
        failure = {"status": status, "body": {"message": message or f"{status}", "code": code}, "files": files_only}
        if retry_after is not None:
            failure["body"].update(retry_after=retry_after, **{"global": False})
        with self._lock:
            self._failures.extend([failure] * times)

    def dispatch(self, event: str, data: dict) -> None:
        wait_until(lambda: self._sockets, 20, "the bot's gateway connection")
        frame = json.dumps({"op": 0, "t": event, "s": next(self._sequence), "d": data})
        self.server.call(self._sockets[-1].send_str(frame))

    def replies_to(self, message_id: int) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if message_id in (s.reply_to, s.interaction_id)]

    def wait_for_text_reply(self, message_id: int, timeout: float = 60) -> list[Sent]:
        return wait_until(lambda: any(s.content for s in self.replies_to(message_id)) and self.replies_to(message_id),
                          timeout, f"a text reply to {message_id}")

    # -- the gateway ----------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message["op"] == 1:
                await socket.send_str(json.dumps({"op": 11}))
            elif message["op"] == 2:
                if message["d"]["token"] != self.token:
                    await socket.close(code=4004, message=b"Authentication failed.")
                    break
                self._sockets.append(socket)
                ready = {"v": 10, "user": _user(BOT_ID, bot=True), "guilds": [], "session_id": "fake-session",
                         "resume_gateway_url": self.gateway_url, "application": {"id": str(APPLICATION_ID), "flags": 0}}
                await socket.send_str(json.dumps({"op": 0, "t": "READY", "s": next(self._sequence), "d": ready}))
                self.ready.set()
        if socket in self._sockets:
            self._sockets.remove(socket)
        return socket

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self._files.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    # -- REST -------------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.Response:
        path, method = request.match_info["path"], request.method
        interaction = path.startswith(("interactions/", "webhooks/"))
        if not interaction and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        parts = path.split("/")
        if path == "users/@me":
            return _json({**_user(BOT_ID, bot=True), "verified": True, "mfa_enabled": False})
        if path == "oauth2/applications/@me":
            return _json({"id": str(APPLICATION_ID), "name": "June", "icon": None, "description": "",
                                      "bot_public": False, "bot_require_code_grant": False, "owner": _user(1),
                                      "verify_key": "00", "flags": 0})
        if path in ("gateway", "gateway/bot"):
            return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
        if parts[0] == "applications" and parts[-1] == "commands" and method == "PUT":
            self.commands = await request.json()
            return _json([{**c, "id": str(next(self._ids)), "application_id": str(APPLICATION_ID),
                                       "version": "1", "default_member_permissions": None} for c in self.commands])
        if parts[0] == "channels" and parts[-1] == "typing":
            self.typing.append(int(parts[1]))
            return web.Response(status=204)
        if parts[0] == "channels" and parts[-1] == "messages" and method == "POST":
            return await self._create_message(request, int(parts[1]), None)
        if parts[0] == "channels" and len(parts) == 4 and parts[2] == "messages" and method == "PATCH":
            return await self._edit_message(request, int(parts[1]), int(parts[3]))
        if parts[0] == "interactions" and parts[-1] == "callback":
            return await self._interaction_callback(request, int(parts[1]))
        if parts[0] == "webhooks" and method == "POST":
            interaction_id = int(parts[2].removeprefix("itoken"))
            return await self._create_message(request, interaction_id + 1, interaction_id)
        return _json({"message": f"404: {method} {path} is not faked", "code": 0}, status=404)

    async def _create_message(self, request: web.Request, channel_id: int, interaction_id: int | None) -> web.Response:
        payload, files = await _body(request)
        with self._lock:
            failure = next((f for f in self._failures if not f["files"] or files), None)
            if failure is not None:
                self._failures.remove(failure)
            self.attempts.append((channel_id, bool(files), failure["status"] if failure else 200))
        if failure is not None:
            headers = {"Via": "1.1 google"} if failure["status"] == 429 else {}
            return web.Response(body=json.dumps(failure["body"]).encode(), status=failure["status"],
                                headers={"Content-Type": "application/json", **headers})
        reference = payload.get("message_reference") or {}
        sent = Sent(channel_id, next(self._ids), payload.get("content"), int(reference["message_id"])
                    if reference.get("message_id") else None, files, interaction_id)
        with self._lock:
            self.sent.append(sent)
        return _json(self._message(sent))

    async def _edit_message(self, request: web.Request, channel_id: int, message_id: int) -> web.Response:
        payload, _ = await _body(request)
        with self._lock:
            target = next((s for s in self.sent if s.channel_id == channel_id and s.message_id == message_id), None)
            if target is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            target.content = payload.get("content", target.content)
            self.edits.append((channel_id, message_id, target.content or ""))
        return _json(self._message(target))

    async def _interaction_callback(self, request: web.Request, interaction_id: int) -> web.Response:
        payload, files = await _body(request)
        data = payload.get("data") or {}
        response = {"interaction": {"id": str(interaction_id), "type": 2, "response_message_loading":
                    payload["type"] == 5, "response_message_ephemeral": bool(data.get("flags", 0) & 64)},
                    "resource": {"type": payload["type"]}}
        if payload["type"] == 4:
            sent = Sent(0, next(self._ids), data.get("content"), None, files, interaction_id)
            with self._lock:
                self.sent.append(sent)
            response["interaction"]["response_message_id"] = str(sent.message_id)
            response["resource"]["message"] = self._message(sent)
        return _json(response)

    def _message(self, sent: Sent) -> dict:
        return {"id": str(sent.message_id), "channel_id": str(sent.channel_id), "author": _user(BOT_ID, bot=True),
                "content": sent.content or "", "timestamp": _now(), "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [], "mention_roles": [], "embeds": [], "pinned": False,
                "type": 0, "flags": 0, "attachments": [
                    {"id": str(next(self._ids)), "filename": name, "size": len(data), "url": "", "proxy_url": ""}
                    for name, data in sent.files.items()]}


async def _body(request: web.Request) -> tuple[dict, dict[str, bytes]]:
    if request.content_type == "application/json":
        return await request.json(), {}
    if request.content_type.startswith("multipart/"):
        payload: dict = {}
        files: dict[str, bytes] = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                payload = json.loads(await part.text())
            else:
                files[part.filename or part.name] = bytes(await part.read())
        return payload, files
    return {}, {}


def _json(body: object, status: int = 200) -> web.Response:
    """discord.py parses a body only when Content-Type is exactly `application/json` (no charset)."""
    return web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"})
