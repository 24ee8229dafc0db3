"""The platform-neutral part of a bot: ask June, store, render, deliver, and recover after a restart.

Delivery sends an answer's text first and its voice note last, each part with retries on transient
platform errors (timeouts, network, 5xx, rate limits with their retry-after). A part the platform
refuses for good is recorded as `failed` with the reason and the next part still goes; a refused
voice note falls back to an audio file, then to the text alone. Every call to June carries an
Idempotency-Key made from the inbound message, so no retry and no restart adds a second turn.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from bots.api_client import JuneApiError, JuneClient, JuneUnavailable, Reply
from bots.commands import Answer
from bots.history import Inbound, MessageHistory, Outbound
from bots.preferences import Preferences
from bots.rendering import Rendered

log = logging.getLogger("june.bots.assistant")

Activity = Literal["typing", "recording"]
TOO_LONG = "That message is too long for me. Could you make it shorter, or send it in parts?"
UNREADABLE = "I couldn't play that audio. Could you record it again?"
UNREACHABLE = "I can't reach my brain right now. Please try again in a minute."
BROKEN = "Something went wrong on my side. Please try again."
MISCONFIGURED = "Sorry, I'm not set up correctly to answer you. I've logged the problem for my owner."
INTERRUPTED = "I restarted before I could finish that command. Please send it again."
FILE_TOO_LARGE = "The file is too large to send here ({size} MB; the limit is {limit} MB)."
MAX_ATTEMPTS = 3  # tries at answering one message, restarts included, before it is given up as failed
SEND_ATTEMPTS = 4
SEND_FIRST_BACKOFF_S = 1.0
SEND_MAX_BACKOFF_S = 30.0
RETRY_AFTER_CAP_S = 120.0
KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")


class AudioTooLarge(Exception):
    """The platform will not hand over the file, or it is over the bot's limit."""


class MarkupRejected(Exception):
    """The platform refused a message's markup; it is sent again as plain text."""


class SendFailed(Exception):
    """The platform refused a message for good: blocked, forbidden, no permission, a bad request."""


class SendRetry(Exception):
    """A transient platform error (timeout, network, 5xx, rate limit): try again, after `retry_after` s if given."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class Transport(Protocol):
    """One platform's I/O, as the assistant needs it; IDs are the platform's, as strings.

    The send methods raise `SendRetry` for transient errors, `SendFailed` for permanent ones and
    `MarkupRejected` when only the markup was refused.
    """

    voice_is_file: bool  # the platform's "voice note" is already a plain file: no separate file fallback
    max_file_bytes: int

    async def fetch_audio(self, inbound: Inbound) -> tuple[bytes, str, str]: ...  # data, file name, content type
    def activity(self, chat_id: str, kind: Activity) -> AbstractAsyncContextManager[None]: ...
    async def send_text(self, chat_id: str, text: str, parse_mode: str | None, reply_to: str | None) -> str: ...
    async def send_voice(self, chat_id: str, audio: bytes, reply_to: str | None) -> str: ...
    async def send_file(self, chat_id: str, data: bytes, filename: str, reply_to: str | None) -> str: ...


@dataclass(frozen=True)
class Renderer:
    render: Callable[[str], Rendered]
    to_plain: Callable[[str], str]


def idempotency_key(inbound: Inbound, bot_id: str = "") -> str:
    """One key per inbound message, the same for every retry of it: `platform:bot:chat:message`.

    The bot's own ID is in it because message IDs are only unique per bot and chat: two bots of one
    platform on the same graph must not answer each other's messages from the graph's store.
    """
    scope = f"{inbound.platform}:{bot_id}" if bot_id else inbound.platform
    return KEY_UNSAFE.sub("_", f"{scope}:{inbound.chat_id}:{inbound.message_id}")[:200]


class Assistant:
    def __init__(self, platform: str, client: JuneClient, history: MessageHistory, preferences: Preferences,
                 renderer: Renderer, transport: Transport, bot_id: str = ""):
        self.platform = platform
        self.bot_id = bot_id
        self.client = client
        self.history = history
        self.preferences = preferences
        self.renderer = renderer
        self.transport = transport
        self.send_attempts = SEND_ATTEMPTS
        self.send_backoff_s = SEND_FIRST_BACKOFF_S

    async def answer(self, inbound: Inbound) -> None:
        """Answer a stored message with June's reply; a reply already queued is only sent."""
        if inbound.kind != "command":
            self.preferences.cancel_forget(self.platform, inbound.user_id)  # anything else cancels /forget me
        self.history.attempt(inbound)
        try:
            speech_problem = None
            if self.history.has_answer(inbound):
                outbound = self.history.unsent(inbound)
            else:
                reply = await self._ask(inbound)
                speech_problem = reply.audio_error
                if speech_problem:
                    log.warning("June could not speak its answer; sending the text alone",
                                extra={"platform": self.platform, "row": inbound.id, "code": speech_problem})
                rendered = self.renderer.render(reply.text)
                outbound = self.history.queue(inbound, reply.text, rendered, reply.audio, reply.transcript,
                                              speech_problem=speech_problem)
            problems = await self._deliver(inbound, outbound, self.transport)
            self._finish(inbound, problems, f"no voice: {speech_problem}" if speech_problem else None)
        except (AudioTooLarge, JuneApiError, JuneUnavailable) as error:
            await self._apologise(inbound, error)
        except Exception as error:  # noqa: BLE001 - one broken message must not block the ones after it
            log.error("answering failed unexpectedly", exc_info=True,
                      extra={"platform": self.platform, "row": inbound.id, "reason": type(error).__name__})
            await self._apologise(inbound, error)

    async def reply_text(self, inbound: Inbound, answer: Answer | str, transport: Transport | None = None) -> None:
        """Answer a stored message (a command) with a fixed answer, through `transport` when it is special."""
        transport = transport or self.transport
        answer = Answer(answer) if isinstance(answer, str) else answer
        file = answer.file
        text = answer.text
        if file and len(file[1]) > transport.max_file_bytes:
            text = FILE_TOO_LARGE.format(size=round(len(file[1]) / 2**20, 1),
                                         limit=round(transport.max_file_bytes / 2**20, 1))
            file = None
        if answer.forget:
            self.history.forget_user(self.platform, inbound.user_id)
        outbound = self.history.queue(inbound, text, self.renderer.render(text), None, None, file=file)
        problems = await self._deliver(inbound, outbound, transport)
        if answer.forget:  # the confirmation and its answer go too
            self.history.forget_user(self.platform, inbound.user_id)
            return
        self._finish(inbound, problems)

    def leftovers(self) -> list[Inbound]:
        """Messages stored but not answered when the bot last stopped; read before new ones arrive."""
        return self.history.pending(self.platform)

    async def recover(self, leftovers: list[Inbound]) -> None:
        for inbound in leftovers:
            if inbound.attempts >= MAX_ATTEMPTS:
                log.warning("giving up a message that failed at every try", extra={
                    "platform": self.platform, "row": inbound.id, "attempts": inbound.attempts})
                for part in self.history.unsent(inbound):
                    self.history.failed(part, "given up after a restart")
                self.history.finish(inbound, "failed", detail=f"gave up after {inbound.attempts} attempts")
                continue
            log.info("answering a message left over from before a restart",
                     extra={"platform": self.platform, "row": inbound.id})
            if inbound.kind == "command" and not self.history.has_answer(inbound):
                await self.reply_text(inbound, INTERRUPTED)  # commands change things: never re-run blindly
            else:
                await self.answer(inbound)

    async def _ask(self, inbound: Inbound) -> Reply:
        conversation = self.preferences.conversation_id(self.platform, inbound.chat_id)
        user = f"{self.platform}:{inbound.user_id}"
        options = {"conversation_id": conversation, "user_id": user, "private": not inbound.public,
                   "idempotency_key": idempotency_key(inbound, self.bot_id)}
        if inbound.kind == "voice":
            async with self.transport.activity(inbound.chat_id, "recording"):
                audio, name, content_type = await self.transport.fetch_audio(inbound)
                return await self.client.voice(audio, name, content_type, **options)
        speak = self.preferences.voice_replies(self.platform, inbound.user_id)
        async with self.transport.activity(inbound.chat_id, "recording" if speak else "typing"):
            return await self.client.chat(inbound.text or "", speak=speak, **options)

    async def _deliver(self, inbound: Inbound, outbound: list[Outbound], transport: Transport) -> list[str]:
        """Send every part, text first; what could not be delivered, as `kind: reason` lines."""
        problems = []
        for part in sorted(outbound, key=lambda p: p.kind == "voice"):
            try:
                if part.kind == "voice":
                    if part.audio:
                        await self._deliver_voice(inbound, part, transport)
                elif part.kind == "file":
                    message_id = await self._send(lambda: transport.send_file(
                        part.chat_id, part.audio or b"", part.filename or "june.dat", inbound.message_id))
                    self.history.sent(part, message_id, parse_mode=None)
                else:
                    await self._deliver_text(inbound, part, transport)
            except (SendFailed, SendRetry) as error:
                detail = _describe(error)
                log.warning("the platform did not take a message", extra={
                    "platform": self.platform, "row": part.id, "kind": part.kind, "reason": detail})
                self.history.failed(part, detail)
                problems.append(f"{part.kind}: {detail}")
            except Exception as error:  # noqa: BLE001 - an unexpected error on one part must not lose the rest
                log.error("sending failed unexpectedly", exc_info=True, extra={
                    "platform": self.platform, "row": part.id, "kind": part.kind, "reason": type(error).__name__})
                self.history.failed(part, f"unexpected {type(error).__name__}")
                problems.append(f"{part.kind}: unexpected {type(error).__name__}")
        return problems

    async def _deliver_text(self, inbound: Inbound, part: Outbound, transport: Transport) -> None:
        try:
            message_id = await self._send(lambda: transport.send_text(
                part.chat_id, part.rendered_text or "", part.parse_mode, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=part.parse_mode)
        except MarkupRejected as rejection:
            plain = self.renderer.to_plain(part.rendered_text or "")
            message_id = await self._send(lambda: transport.send_text(part.chat_id, plain, None, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=None, detail=f"platform rejected markup: {rejection}")

    async def _deliver_voice(self, inbound: Inbound, part: Outbound, transport: Transport) -> None:
        audio = part.audio or b""
        try:
            message_id = await self._send(lambda: transport.send_voice(part.chat_id, audio, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=None)
            return
        except (SendFailed, SendRetry) as error:
            refused = f"voice refused ({_describe(error)})"
        if transport.voice_is_file:
            raise SendFailed(f"{refused}; sent the text only")
        try:
            message_id = await self._send(lambda: transport.send_file(part.chat_id, audio, "june.ogg",
                                                                      inbound.message_id))
        except (SendFailed, SendRetry) as error:
            raise SendFailed(f"{refused}; audio file refused ({_describe(error)}); sent the text only") from None
        self.history.sent(part, message_id, parse_mode=None, detail=f"{refused}; sent as an audio file")

    async def _send(self, call: Callable[[], Awaitable[str]]) -> str:
        """One platform call, retried with backoff (or the platform's retry-after) while it fails transiently."""
        retrying = AsyncRetrying(retry=retry_if_exception_type(SendRetry), stop=stop_after_attempt(self.send_attempts),
                                 wait=self._wait, reraise=True, before_sleep=self._log_retry)
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # reraise=True raises the last error

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(initial=self.send_backoff_s, max=SEND_MAX_BACKOFF_S)(state)
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return min(retry_after, RETRY_AFTER_CAP_S) if retry_after else backoff

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("the platform failed transiently, retrying", extra={
            "platform": self.platform, "attempt": state.attempt_number, "reason": str(error)[:200]})

    def _finish(self, inbound: Inbound, problems: list[str], note: str | None = None) -> None:
        """`answered` when some text arrived (a missing voice note is a note), `failed` when none did."""
        text_lost = [p for p in problems if not p.startswith("voice:")]
        detail = "; ".join([*([note] if note else []), *problems]) or None
        self.history.finish(inbound, "failed" if text_lost else "answered", detail=detail)

    async def _apologise(self, inbound: Inbound, error: Exception) -> None:
        if isinstance(error, AudioTooLarge) or (isinstance(error, JuneApiError) and error.status == 413):
            text = TOO_LONG
        elif isinstance(error, JuneApiError) and error.forbidden_user:
            text = MISCONFIGURED
        elif isinstance(error, JuneApiError) and error.status in (400, 415):
            text = UNREADABLE
        elif isinstance(error, JuneUnavailable):
            text = UNREACHABLE
        else:
            text = BROKEN
        log.warning("could not answer", extra={"platform": self.platform, "row": inbound.id,
                                               "reason": type(error).__name__,
                                               "status": getattr(error, "status", None),
                                               "code": getattr(error, "code", None)})
        for part in self.history.unsent(inbound):  # a half-sent answer is not finished after the apology
            self.history.failed(part, f"abandoned: {type(error).__name__}")
        rendered = self.renderer.render(text)
        problems = await self._deliver(inbound, self.history.queue(inbound, text, rendered, None, None),
                                       self.transport)
        self.history.finish(inbound, "failed", detail="; ".join([type(error).__name__, *problems]))


def _describe(error: Exception) -> str:
    reason = str(error) or type(error).__name__
    return reason[:300]
