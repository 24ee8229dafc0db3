"""The platform-neutral part of a bot: ask June, store, render, deliver, and recover after a restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

from bots.api_client import JuneApiError, JuneClient, JuneUnavailable, Reply
from bots.history import Inbound, MessageHistory, Outbound
from bots.preferences import Preferences
from bots.rendering import Rendered

log = logging.getLogger("june.bots.assistant")

Activity = Literal["typing", "recording"]
TOO_LONG = "That message is too long for me. Could you make it shorter, or send it in parts?"
UNREADABLE = "I couldn't play that audio. Could you record it again?"
UNREACHABLE = "I can't reach my brain right now. Please try again in a minute."
BROKEN = "Something went wrong on my side. Please try again."


class AudioTooLarge(Exception):
    """The platform will not hand over the file, or it is over the bot's limit."""


class MarkupRejected(Exception):
    """The platform refused a message's markup; it is sent again as plain text."""


class Transport(Protocol):
    """One platform's I/O, as the assistant needs it; IDs are the platform's, as strings."""

    async def fetch_audio(self, inbound: Inbound) -> tuple[bytes, str, str]: ...  # data, file name, content type
    def activity(self, chat_id: str, kind: Activity) -> AbstractAsyncContextManager[None]: ...
    async def send_text(self, chat_id: str, text: str, parse_mode: str | None, reply_to: str | None) -> str: ...
    async def send_voice(self, chat_id: str, audio: bytes, reply_to: str | None) -> str: ...


@dataclass(frozen=True)
class Renderer:
    render: Callable[[str], Rendered]
    to_plain: Callable[[str], str]


class Assistant:
    def __init__(self, platform: str, client: JuneClient, history: MessageHistory, preferences: Preferences,
                 renderer: Renderer, transport: Transport):
        self.platform = platform
        self.client = client
        self.history = history
        self.preferences = preferences
        self.renderer = renderer
        self.transport = transport

    async def answer(self, inbound: Inbound) -> None:
        """Answer a stored message with June's reply; a reply already queued is only sent."""
        try:
            if self.history.has_answer(inbound):
                outbound = self.history.unsent(inbound)
            else:
                reply = await self._ask(inbound)
                rendered = self.renderer.render(reply.text)
                outbound = self.history.queue(inbound, reply.text, rendered, reply.audio, reply.transcript)
            await self._deliver(inbound, outbound, self.transport)
            self.history.finish(inbound, "answered")
        except (AudioTooLarge, JuneApiError, JuneUnavailable) as error:
            await self._apologise(inbound, error)

    async def reply_text(self, inbound: Inbound, text: str, transport: Transport | None = None) -> None:
        """Answer a stored message (a command) with a fixed text, through `transport` when it is special."""
        outbound = self.history.queue(inbound, text, self.renderer.render(text), None, None)
        await self._deliver(inbound, outbound, transport or self.transport)
        self.history.finish(inbound, "answered")

    def leftovers(self) -> list[Inbound]:
        """Messages stored but not answered when the bot last stopped; read before new ones arrive."""
        return self.history.pending(self.platform)

    async def recover(self, leftovers: list[Inbound]) -> None:
        for inbound in leftovers:
            log.info("answering a message left over from before a restart",
                     extra={"platform": self.platform, "row": inbound.id})
            await self.answer(inbound)

    async def _ask(self, inbound: Inbound) -> Reply:
        conversation = self.preferences.conversation_id(self.platform, inbound.chat_id)
        user = f"{self.platform}:{inbound.user_id}"
        if inbound.kind == "voice":
            async with self.transport.activity(inbound.chat_id, "recording"):
                audio, name, content_type = await self.transport.fetch_audio(inbound)
                return await self.client.voice(audio, name, content_type, conversation_id=conversation, user_id=user)
        speak = self.preferences.voice_replies(self.platform, inbound.user_id)
        async with self.transport.activity(inbound.chat_id, "recording" if speak else "typing"):
            return await self.client.chat(inbound.text or "", conversation_id=conversation, user_id=user, speak=speak)

    async def _deliver(self, inbound: Inbound, outbound: list[Outbound], transport: Transport) -> None:
        for part in outbound:
            if part.kind == "voice" and part.audio:
                message_id = await transport.send_voice(part.chat_id, part.audio, inbound.message_id)
                self.history.sent(part, message_id, parse_mode=None)
                continue
            try:
                message_id = await transport.send_text(part.chat_id, part.rendered_text or "", part.parse_mode,
                                                       inbound.message_id)
                self.history.sent(part, message_id, parse_mode=part.parse_mode)
            except MarkupRejected as rejection:
                plain = self.renderer.to_plain(part.rendered_text or "")
                message_id = await transport.send_text(part.chat_id, plain, None, inbound.message_id)
                self.history.sent(part, message_id, parse_mode=None, detail=f"platform rejected markup: {rejection}")

    async def _apologise(self, inbound: Inbound, error: Exception) -> None:
        if isinstance(error, AudioTooLarge) or (isinstance(error, JuneApiError) and error.status == 413):
            text = TOO_LONG
        elif isinstance(error, JuneApiError) and error.status in (400, 415):
            text = UNREADABLE
        elif isinstance(error, JuneUnavailable):
            text = UNREACHABLE
        else:
            text = BROKEN
        log.warning("could not answer", extra={"platform": self.platform, "row": inbound.id,
                                               "reason": type(error).__name__,
                                               "status": getattr(error, "status", None)})
        rendered = self.renderer.render(text)
        await self._deliver(inbound, self.history.queue(inbound, text, rendered, None, None), self.transport)
        self.history.finish(inbound, "failed", detail=type(error).__name__)
