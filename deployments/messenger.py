"""Messenger: June's side of speaking first — the message ledger, the outbox the bots deliver from, the owner's
inbox, and the clock that fires reminders. One replica: it owns the clock (messaging/ledger.py keeps each firing
to one transaction, so even two would not fire a reminder twice)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from common.settings import JuneSettings
from messaging.ledger import Delivery, InboxItem, Ledger, LedgerError, LedgerMessage, MessageFilter

log = logging.getLogger(__name__)


@serve.deployment  # resources and limits: the placement profile (graphs/profiles)
class Messenger:
    def __init__(self, settings: JuneSettings, tts: DeploymentHandle):
        self.settings = settings
        self.ledger = Ledger(settings.messages_db)
        self.tts = tts
        self._queued = asyncio.Event()
        self._clock = asyncio.get_running_loop().create_task(self._run_clock())

    async def _run_clock(self) -> None:
        """Fire due reminders every tick; a reminder due while June was down fires at the first tick after."""
        while True:
            try:
                if await asyncio.to_thread(self.ledger.fire_due, self.settings.reminder_late_after_s):
                    self._notify()
            except Exception:  # noqa: BLE001 - the clock must keep ticking; the next tick retries
                log.exception("firing reminders failed")
            await asyncio.sleep(self.settings.reminder_tick_s)

    def _notify(self) -> None:
        """Wake every waiting long-poll."""
        self._queued.set()
        self._queued = asyncio.Event()

    async def deliveries(self, platform: str, users: tuple[str, ...], wait_s: float) -> list[Delivery]:
        """What is queued for the platform; waits up to `wait_s` for something to arrive (a long-poll)."""
        deadline = time.monotonic() + wait_s
        while True:
            queued = self._queued
            found = await asyncio.to_thread(self.ledger.pending, platform, users)
            left = deadline - time.monotonic()
            if found or left <= 0:
                break
            try:
                await asyncio.wait_for(queued.wait(), left)
            except asyncio.TimeoutError:
                pass
        ready = []
        for delivery in found:  # one voice note made per poll: a burst of reminders does not hold up the first
            spoken = await self._spoken(delivery)
            ready.append(spoken)
            if spoken is not delivery:
                break
        return ready

    async def _spoken(self, delivery: Delivery) -> Delivery:
        """A voice note for a delivery that asks for one, made once and kept with it (b"" when speech failed)."""
        if not (delivery.speak and delivery.audio is None and delivery.action == "send" and delivery.text):
            return delivery
        try:
            audio = await self.tts.speak.remote(delivery.text, "ogg")
        except Exception as error:  # noqa: BLE001 - the text still goes
            log.warning("could not speak a queued message; it goes as text", extra={"error": type(error).__name__})
            audio = b""
        await asyncio.to_thread(self.ledger.attach_audio, delivery.id, audio)
        return Delivery(**{**asdict(delivery), "audio": audio})

    async def delivery(self, delivery_id: int) -> Delivery | None:
        return await asyncio.to_thread(self.ledger.delivery, delivery_id)

    async def acknowledge(self, delivery_id: int, delivered: bool, platform_message_id: str | None,
                          detail: str | None) -> LedgerMessage:
        return await asyncio.to_thread(self.ledger.acknowledge, delivery_id, delivered, platform_message_id, detail)

    async def record(self, fields: dict[str, Any]) -> LedgerMessage:
        return await asyncio.to_thread(lambda: self.ledger.record(**fields))

    async def messages(self, where: MessageFilter) -> list[LedgerMessage]:
        return await asyncio.to_thread(self.ledger.messages, where)

    async def message(self, message_id: int) -> LedgerMessage:
        return await asyncio.to_thread(self.ledger.message, message_id)

    async def send(self, platform: str, user_id: str, chat_id: str | None, text: str | None, speak: bool,
                   conversation_id: str | None) -> LedgerMessage:
        chat = chat_id or await asyncio.to_thread(self.ledger.known_chat, platform, user_id)
        if chat is None and platform == "telegram":
            chat = user_id.split(":", 1)[-1]  # a private Telegram chat's id is the user's id
        if chat is None:
            raise LedgerError(422, "unknown_chat", f"{user_id} has not written to June on {platform} yet: give chat_id")
        message = await asyncio.to_thread(lambda: self.ledger.send(
            platform=platform, user_id=user_id, chat_id=chat, text=text, speak=speak, origin="api",
            kind="voice" if speak else "text", conversation_id=conversation_id))
        self._notify()
        return message

    async def edit(self, message_id: int, text: str | None = None, append: str | None = None,
                   prepend: str | None = None) -> LedgerMessage:
        """Replace the text (`text`), or add to its end or start; the bot edits the platform's message."""
        message = await asyncio.to_thread(self.ledger.edit, message_id, text, append or "", prepend or "")
        self._notify()
        return message

    async def to_inbox(self, fields: dict[str, Any]) -> InboxItem:
        return await asyncio.to_thread(lambda: self.ledger.to_inbox(**fields))

    async def inbox(self, status: str | None, limit: int) -> list[tuple[InboxItem, LedgerMessage, LedgerMessage | None]]:
        items = await asyncio.to_thread(self.ledger.inbox, status, limit)
        return [await self._with_messages(item) for item in items]

    async def inbox_item(self, item_id: int) -> tuple[InboxItem, LedgerMessage, LedgerMessage | None]:
        """The item, the user's message, and the owner's answer when there is one."""
        return await self._with_messages(await asyncio.to_thread(self.ledger.inbox_item, item_id))

    async def _with_messages(self, item: InboxItem) -> tuple[InboxItem, LedgerMessage, LedgerMessage | None]:
        answer = await self.message(item.answer_id) if item.answer_id else None
        return item, await self.message(item.message_id), answer

    async def answer_inbox(self, item_id: int, text: str) -> tuple[InboxItem, LedgerMessage, LedgerMessage | None]:
        item = await asyncio.to_thread(self.ledger.answer_inbox, item_id, text)
        self._notify()
        return await self._with_messages(item)

    async def forget_user(self, user_id: str) -> int:
        return await asyncio.to_thread(self.ledger.forget_user, user_id)

    async def export_user(self, user_id: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.ledger.export, user_id)

    def check_health(self) -> None:
        if self._clock.done():
            raise RuntimeError("the reminder clock stopped")
        self.ledger.next_due()
