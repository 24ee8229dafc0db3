"""The platform-neutral bot: one core that the Telegram and Discord modules adapt to their platform's I/O.

It owns the stores, the June client, the assistant and the commands, and writes each feature once:
the message flow (store → forward to the owners' inbox → one chat at a time → answer), the owner's
answers to forwarded messages, restart recovery, the outbox (what June says first), the reports that
feed the graph's message ledger, and shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bots.access import Role
from bots.api_client import JuneApiError, JuneClient, JuneUnavailable
from bots.assistant import Assistant, Renderer, Transport
from bots.commands import Answer, Caller, Commands
from bots.history import Inbound, MessageHistory
from bots.outbox import Courier, DeliveryLog
from bots.preferences import Preferences
from bots.settings import BotSettings

log = logging.getLogger("june.bots.core")

REPORT_EVERY_S = 3.0
ANSWER_SENT = "Sent to them. (inbox item {item})"
ALREADY_ANSWERED = "That message already has an answer (inbox item {item}); I did not send this one."
NOT_SENT = "I could not pass that on: {reason}"


@dataclass(frozen=True)
class Incoming:
    """A message as the platform adapter read it: who, where, what, and which message it replies to."""

    kind: str  # "text" or "voice"
    chat_id: str
    user_id: str
    message_id: str
    text: str | None
    media: dict | None = None
    public: bool = False
    reply_to: str | None = None


class BotCore:
    def __init__(self, platform: str, settings: BotSettings, transport: Transport, renderer: Renderer,
                 owners: frozenset[int], bot_id: str, client: JuneClient | None = None):
        self.platform, self.settings, self.owners = platform, settings, owners
        self.history = MessageHistory(settings.history_db)
        self.preferences = Preferences(settings.history_db)
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self.client = client or JuneClient(settings.api_url, api_key, timeout_s=settings.api_timeout_s,
                                           retry_for_s=settings.api_retry_for_s)
        self.transport, self.bot_id = transport, bot_id
        self.assistant = Assistant(platform, self.client, self.history, self.preferences, renderer, transport, bot_id)
        self.assistant.progress_after_s = settings.progress_after_s
        self.assistant.stream_replies = settings.stream_replies
        self.assistant.edit_interval_s = settings.stream_edit_interval_s
        self.commands = Commands(platform, self.client, self.preferences, self.history)
        self.courier = Courier(platform, self.client, transport, renderer, DeliveryLog(self.history.db),
                               self.assistant)
        self.chat_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._groups: dict[tuple[str, str], list[Inbound]] = {}
        self._tasks: list[asyncio.Task] = []

    def start(self, spawn: Callable[[Awaitable[None]], asyncio.Task]) -> int:
        """Start recovery, the outbox and the ledger reports on the bot's loop; the leftovers' count."""
        leftovers = self.assistant.leftovers()
        if leftovers:
            spawn(self._recover(leftovers))
        self._tasks = [spawn(self.courier.run()), spawn(self._report_forever())]
        return len(leftovers)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()
        self.history.close()
        self.preferences.close()

    async def _recover(self, leftovers: list[Inbound]) -> None:
        for inbound in leftovers:
            async with self.chat_locks[inbound.chat_id]:
                if inbound.kind == "answer" and not self.history.has_answer(inbound):
                    await self._pass_on(inbound, int((inbound.media or {})["inbox_id"]))
                else:
                    await self.assistant.recover([inbound])

    # -- the message flow -------------------------------------------------------------------------------
    async def on_message(self, incoming: Incoming, role: Role, empty_reply: str) -> None:
        """An admitted user's message: stored first, then answered (or passed on, for an owner's answer)."""
        item = None
        if role is Role.OWNER and incoming.reply_to:
            item = self.history.inbox_item_of(self.platform, incoming.chat_id, incoming.reply_to)
        kind = "answer" if item is not None and incoming.text else incoming.kind
        inbound = self.history.receive(self.platform, kind, incoming.chat_id, incoming.user_id, incoming.message_id,
                                       incoming.text, {"inbox_id": item} if kind == "answer" else incoming.media,
                                       public=incoming.public)
        if inbound is None:
            return  # delivered twice; the first delivery answers it
        if kind == "answer":
            async with self.chat_locks[inbound.chat_id]:
                await self._pass_on(inbound, item)
            return
        if role is Role.ALLOWED and self.settings.forward_to_owners:
            await self._forward(inbound)
        if inbound.kind != "voice" and not (inbound.text or "").strip():
            async with self.chat_locks[inbound.chat_id]:
                await self.assistant.reply_text(inbound, empty_reply)
            return
        group = await self._gathered(inbound)
        if group:
            async with self.chat_locks[inbound.chat_id]:
                await self.assistant.answer_together(group)

    async def _gathered(self, inbound: Inbound) -> list[Inbound]:
        """The user's messages in this chat until `group_window_s` passes without another; [] when this one joined
        a group that an earlier message is gathering."""
        key = (inbound.chat_id, inbound.user_id)
        if key in self._groups:
            self._groups[key].append(inbound)
            return []
        group = self._groups[key] = [inbound]
        try:
            seen = 0
            while self.settings.group_window_s > 0 and len(group) != seen:
                seen = len(group)
                await asyncio.sleep(self.settings.group_window_s)
        finally:
            del self._groups[key]
        return group

    async def on_command(self, inbound: Inbound, name: str, argument: str, caller: Caller,
                         transport: Transport | None = None) -> None:
        answer: Answer = await self.commands.run(name, argument, caller)
        await self.assistant.reply_text(inbound, answer, transport)

    # -- the owner's inbox ------------------------------------------------------------------------------
    def _record(self, row_id: int, direction: str, kind: str, user_id: str, chat_id: str, message_id: str | None,
                text: str | None, status: str, detail: str | None = None) -> dict:
        """One of this bot's history rows as the graph's ledger takes it (`source` names the row)."""
        return {"platform": self.platform, "direction": direction, "kind": kind,
                "user_id": f"{self.platform}:{user_id}", "chat_id": chat_id,
                "conversation_id": self.preferences.conversation_id(self.platform, chat_id),
                "platform_message_id": message_id, "text": text, "voice": kind == "voice", "status": status,
                "detail": (detail or "")[:1000] or None,
                "source": f"{self.platform}:{self.bot_id or 'bot'}:{direction}:{row_id}"}

    async def _forward(self, inbound: Inbound) -> None:
        """Forward to each owner, and put the message in the graph's inbox so the owner's reply reaches the user."""
        try:
            item = (await self.client.to_inbox(self._record(inbound.id, "in", inbound.kind, inbound.user_id,
                                                            inbound.chat_id, inbound.message_id, inbound.text,
                                                            "pending")))["id"]
        except (JuneApiError, JuneUnavailable) as error:
            log.warning("could not put a message in the owner's inbox", extra={"reason": type(error).__name__})
            item = None
        for owner in self.owners:
            copy = await self.transport.forward(inbound.chat_id, inbound.message_id, owner)
            if copy is not None and item is not None:
                self.history.forwarded(self.platform, copy[0], copy[1], int(item))

    async def _pass_on(self, inbound: Inbound, item: int) -> None:
        """The owner replied to a forwarded message: the reply goes to the user through the graph, once."""
        try:
            await self.client.answer_inbox(item, inbound.text or "")
            text = ANSWER_SENT.format(item=item)
        except JuneApiError as error:
            text = ALREADY_ANSWERED.format(item=item) if error.status == 409 else NOT_SENT.format(reason=error.message)
        except JuneUnavailable:
            text = NOT_SENT.format(reason="June is unreachable; send your answer again in a minute")
        await self.assistant.reply_text(inbound, text)

    # -- the graph's ledger -----------------------------------------------------------------------------
    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            try:
                await self.report()
            except (JuneApiError, JuneUnavailable) as error:
                log.warning("could not report messages to the ledger", extra={"reason": type(error).__name__})

    async def report(self) -> int:
        """Send the ledger the rows it has not had; how many went."""
        rows = self.history.unreported(self.platform)
        for row in rows:
            text = row["raw_text"] if row["direction"] == "in" else row["rendered_text"]
            await self.client.record(self._record(row["id"], row["direction"], row["kind"], row["user_id"],
                                                  row["chat_id"], row["message_id"], text, row["status"],
                                                  row["detail"]))
            self.history.reported(row["id"])
        return len(rows)

