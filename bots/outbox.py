"""What June says first — reminders, the owner's messages and edits, inbox answers — taken from the graph's outbox
and delivered on this bot's platform.

Each delivery is done, then acknowledged. The bot writes down each part it sent (text, voice note, edit)
before it acknowledges, so an item handed out again after a crash or a lost acknowledgement is only
acknowledged, never sent twice; an item whose acknowledgement never arrived is handed out again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import time

from bots.api_client import JuneApiError, JuneClient
from bots.assistant import Assistant, MarkupRejected, Renderer, SendFailed, SendRetry, Transport

log = logging.getLogger("june.bots.outbox")

POLL_WAIT_S = 25.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 10.0  # while the graph is down: a reminder due then arrives within this of its return


class DeliveryLog:
    """The parts of each delivery this bot has done, in the bot's SQLite file."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def done(self, delivery_id: int) -> dict[str, str | None]:
        rows = self.db.execute("SELECT part, platform_message_id FROM deliveries WHERE delivery_id = ?",
                               (delivery_id,)).fetchall()
        return {row[0]: row[1] for row in rows}

    def mark(self, delivery_id: int, part: str, platform_message_id: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?)",
                        (delivery_id, part, platform_message_id, time.time()))


class Courier:
    def __init__(self, platform: str, client: JuneClient, transport: Transport, renderer: Renderer,
                 deliveries: DeliveryLog, assistant: Assistant):
        self.platform, self.client, self.transport, self.renderer = platform, client, transport, renderer
        self.deliveries, self.assistant = deliveries, assistant
        self.poll_wait_s = POLL_WAIT_S

    async def run(self) -> None:
        """Poll and deliver until cancelled; an unreachable graph is retried with backoff."""
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                for delivery in await self.client.outbox(self.platform, self.poll_wait_s):
                    await self.deliver(delivery)
                backoff = FIRST_BACKOFF_S
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the graph is down or restarting: try again later
                log.warning("could not take the outbox", extra={"platform": self.platform,
                                                                "reason": type(error).__name__, "wait_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def deliver(self, delivery: dict) -> None:
        delivery_id = int(delivery["id"])
        done = self.deliveries.done(delivery_id)
        try:
            if delivery["action"] == "edit":
                first = await self._edit(delivery, done)
            else:
                first = await self._send(delivery, done)
        except SendFailed as error:
            log.warning("the platform refused a queued message", extra={"platform": self.platform,
                                                                        "delivery": delivery_id, "reason": str(error)})
            await self._acknowledge(delivery_id, False, None, str(error)[:500])
            return
        except SendRetry as error:  # still pending in the graph: it comes back at the next poll
            log.warning("the platform failed transiently; the delivery is retried", extra={
                "platform": self.platform, "delivery": delivery_id, "reason": str(error)[:200]})
            await asyncio.sleep(error.retry_after or FIRST_BACKOFF_S)
            return
        await self._acknowledge(delivery_id, True, first, None)

    async def _acknowledge(self, delivery_id: int, delivered: bool, message_id: str | None, detail: str | None) -> None:
        try:
            await self.client.acknowledge(delivery_id, delivered, message_id, detail)
        except JuneApiError as error:
            if error.status != 404:
                raise

    async def _send(self, delivery: dict, done: dict[str, str | None]) -> str | None:
        chat, reply_to = str(delivery["chat_id"]), delivery.get("reply_to")
        delivery_id = int(delivery["id"])
        if delivery.get("text") and "text" not in done:
            parts = self.renderer.render(delivery["text"]).parts
            ids = [await self._text(chat, part.text, part.parse_mode, reply_to) for part in parts]
            self.deliveries.mark(delivery_id, "text", ids[0])
            done["text"] = ids[0]
        audio = base64.b64decode(delivery["audio"]) if delivery.get("audio") else b""
        if audio and "voice" not in done:
            try:
                voice_id = await self.assistant.send(
                    lambda: self.transport.send_voice(chat, audio, reply_to))
            except SendFailed as error:
                if not done.get("text"):
                    raise
                log.warning("a queued voice note was refused; the text went", extra={"reason": str(error)[:200]})
                voice_id = None
            self.deliveries.mark(delivery_id, "voice", voice_id)
            done["voice"] = voice_id
        return done.get("text") or done.get("voice")

    async def _text(self, chat: str, text: str, parse_mode: str | None, reply_to: str | None) -> str:
        try:
            return await self.assistant.send(lambda: self.transport.send_text(chat, text, parse_mode,
                                                                                           reply_to))
        except MarkupRejected:
            plain = self.renderer.to_plain(text)
            return await self.assistant.send(lambda: self.transport.send_text(chat, plain, None,
                                                                                           reply_to))

    async def _edit(self, delivery: dict, done: dict[str, str | None]) -> str | None:
        target = str(delivery["target_message_id"])
        if "edit" not in done:
            await self.assistant.edit(str(delivery["chat_id"]), target, delivery.get("text") or "")
            self.deliveries.mark(int(delivery["id"]), "edit", target)
        return target
