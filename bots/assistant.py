"""The platform-neutral part of a bot: ask June, store, render, deliver, and recover after a restart.

Delivery sends an answer's text first and its voice note last, each part with retries on transient
platform errors (timeouts, network, 5xx, rate limits with their retry-after). A part the platform
refuses for good is recorded as `failed` with the reason and the next part still goes; a refused
voice note falls back to an audio file, then to the text alone. Every call to June carries an
Idempotency-Key made from the inbound message, so no retry and no restart adds a second turn.
"""

from __future__ import annotations

import asyncio
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
PROGRESS = "Working on it…"
PROGRESS_AFTER_S = 4.0  # a reply slower than this gets a progress message first, edited into the answer
EDIT_INTERVAL_S = 1.0  # a streamed answer's message is edited at most this often
LIVE_MAX_CHARS = 3500  # what a message shows of an answer still being written (the platforms' limit is near 4000)
WRITING = " …"
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
    async def edit_text(self, chat_id: str, message_id: str, text: str, parse_mode: str | None) -> None: ...
    async def forward(self, chat_id: str, message_id: str, owner_id: int) -> tuple[str, str] | None:
        """Forward a user's message to an owner: the copy's (chat id, message id), None when it failed."""
        ...


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
        self.progress_after_s = PROGRESS_AFTER_S
        self.stream_replies = True
        self.edit_interval_s = EDIT_INTERVAL_S
        self.edits = 0  # edits made to messages while answers were written

    async def answer_together(self, batch: list[Inbound]) -> None:
        """Messages one user sent within a few seconds, answered as one request: their texts (voice notes
        transcribed) in order, as the last message's question; the others are marked answered with it."""
        if len(batch) == 1:
            await self.answer(batch[0])
            return
        *others, last = batch
        try:
            texts = [await self._text_of(inbound) for inbound in batch]
        except (AudioTooLarge, JuneApiError, JuneUnavailable) as error:
            for inbound in batch:
                await self._apologise(inbound, error)
            return
        combined = self.history.answer_together(last, others, "\n".join(t for t in texts if t.strip()))
        await self.answer(combined, speak=any(inbound.kind == "voice" for inbound in batch) or None)

    async def _text_of(self, inbound: Inbound) -> str:
        if inbound.kind != "voice":
            return inbound.text or ""
        async with self.transport.activity(inbound.chat_id, "recording"):
            audio, name, content_type = await self.transport.fetch_audio(inbound)
            return await self.client.transcribe(audio, name, content_type)

    async def answer(self, inbound: Inbound, speak: bool | None = None) -> None:
        """Answer a stored message with June's reply; a reply already queued is only sent. `speak` overrides the
        user's voice-reply setting for a text question."""
        if inbound.kind != "command":
            self.preferences.cancel_forget(self.platform, inbound.user_id)  # anything else cancels /forget me
        self.history.attempt(inbound)
        try:
            speech_problem = None
            if self.history.has_answer(inbound):
                outbound = self.history.unsent(inbound)
            else:
                reply = await self._ask_showing_progress(inbound, speak)
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

    async def _ask_showing_progress(self, inbound: Inbound, speak: bool | None = None) -> Reply:
        """June's reply; when it takes longer than `progress_after_s`, a progress message goes first (once, also
        across restarts) and the answer's text is edited into it. A streamed answer shows itself (_streamed)."""
        if self.stream_replies and inbound.kind == "text":
            return await self._ask(inbound, speak)
        asking = asyncio.ensure_future(self._ask(inbound, speak))
        try:
            await asyncio.wait_for(asyncio.shield(asking), self.progress_after_s)
        except asyncio.TimeoutError:
            if self.history.progress_message(inbound) is None:  # one from before a restart is not sent again
                await self._show(inbound, PROGRESS)
        except BaseException:
            asking.cancel()
            raise
        return await asking

    async def edit(self, chat_id: str, message_id: str, text: str) -> None:
        """Replace a sent message's text (its first part, when the new text needs several)."""
        part = self.renderer.render(text).parts[0]
        try:
            await self.send(lambda: self.transport.edit_text(chat_id, message_id, part.text, part.parse_mode))
        except MarkupRejected:
            plain = self.renderer.to_plain(part.text)
            await self.send(lambda: self.transport.edit_text(chat_id, message_id, plain, None))

    async def _ask(self, inbound: Inbound, speak: bool | None = None) -> Reply:
        conversation = self.preferences.conversation_id(self.platform, inbound.chat_id)
        user = f"{self.platform}:{inbound.user_id}"
        options = {"conversation_id": conversation, "user_id": user, "private": not inbound.public,
                   "idempotency_key": idempotency_key(inbound, self.bot_id), "chat_id": inbound.chat_id}
        if inbound.kind == "voice":
            async with self.transport.activity(inbound.chat_id, "recording"):
                audio, name, content_type = await self.transport.fetch_audio(inbound)
                return await self.client.voice(audio, name, content_type, **options)
        if speak is None:
            speak = self.preferences.voice_replies(self.platform, inbound.user_id)
        async with self.transport.activity(inbound.chat_id, "recording" if speak else "typing"):
            if self.stream_replies:
                return await self._streamed(inbound, options, speak)
            return await self.client.chat(inbound.text or "", speak=speak, **options)

    async def _streamed(self, inbound: Inbound, options: dict, speak: bool) -> Reply:
        """The answer as June writes it: one message, sent with the first words (or as a progress note when none
        come within `progress_after_s`) and edited at most every `edit_interval_s`; an answer that is whole
        within the interval gets no intermediate edit. Then the voice note's audio."""
        queue: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            try:
                async for item in self.client.chat_stream(inbound.text or "", **options):
                    await queue.put(item)
                await queue.put(None)
            except Exception as error:  # noqa: BLE001 - handed to the loop below, which raises it
                await queue.put(error)

        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(read())
        text, shown, started, shown_at = "", "", loop.time(), loop.time()
        try:
            while True:
                if text != shown:  # new words: shown when the edit interval has passed, unless the end comes first
                    waiting = max(0.0, shown_at + self.edit_interval_s - loop.time())
                elif text or self.history.progress_message(inbound) is not None:
                    waiting = None
                else:
                    waiting = max(0.0, started + self.progress_after_s - loop.time())
                try:
                    item = await asyncio.wait_for(queue.get(), waiting)
                except asyncio.TimeoutError:
                    await self._show(inbound, text.strip()[:LIVE_MAX_CHARS] + WRITING if text.strip() else PROGRESS)
                    shown, shown_at = text, loop.time()
                    continue
                if item is None:
                    raise JuneUnavailable("the answer's stream ended before its answer")
                if isinstance(item, Exception):
                    raise item
                event, data = item
                if event == "delta":
                    text += str(data.get("text") or "")
                elif event == "error":
                    error = data.get("error") or {}
                    raise JuneApiError(502, str(error.get("code") or "stream_error"), str(error.get("message") or ""))
                elif event == "done":
                    answer = str(data.get("reply") or text).strip()
                    break
        finally:
            reader.cancel()
        audio, problem = None, None
        if speak and answer:
            try:
                audio = await self.client.speech(answer)
            except JuneApiError as error:
                problem = error.code
            except JuneUnavailable:
                problem = "unavailable"
        return Reply(answer, audio, "ogg" if audio else None, None, problem)

    async def _show(self, inbound: Inbound, text: str) -> None:
        """Send the live message, or edit it (one try: a missed edit is made good by the next or the answer)."""
        live = self.history.progress_message(inbound)
        try:
            if live is None:
                sent = await self.send(lambda: self.transport.send_text(inbound.chat_id, text, None,
                                                                         inbound.message_id))
                self.history.progress_sent(inbound, sent, text)
            elif live.status == "sent" and live.message_id:
                await self.transport.edit_text(inbound.chat_id, live.message_id, text, None)
                self.edits += 1
        except (SendFailed, SendRetry, MarkupRejected) as error:
            log.warning("could not show the answer as it is written", extra={"platform": self.platform,
                                                                             "reason": _describe(error)})

    async def _deliver(self, inbound: Inbound, outbound: list[Outbound], transport: Transport) -> list[str]:
        """Send every part, text first; what could not be delivered, as `kind: reason` lines."""
        problems = []
        for part in sorted(outbound, key=lambda p: p.kind == "voice"):
            try:
                if part.kind == "voice":
                    if part.audio:
                        await self._deliver_voice(inbound, part, transport)
                elif part.kind == "file":
                    message_id = await self.send(lambda: transport.send_file(
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
        progress = self.history.progress_message(inbound) if transport is self.transport else None
        if progress is not None and progress.status == "sent" and progress.message_id:
            await self._edit_into(inbound, part, progress)
            return
        try:
            message_id = await self.send(lambda: transport.send_text(
                part.chat_id, part.rendered_text or "", part.parse_mode, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=part.parse_mode)
        except MarkupRejected as rejection:
            plain = self.renderer.to_plain(part.rendered_text or "")
            message_id = await self.send(lambda: transport.send_text(part.chat_id, plain, None, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=None, detail=f"platform rejected markup: {rejection}")

    async def _edit_into(self, inbound: Inbound, part: Outbound, progress: Outbound) -> None:
        """The answer's first text part replaces the progress message."""
        chat, message_id = inbound.chat_id, progress.message_id or ""
        try:
            await self.send(lambda: self.transport.edit_text(chat, message_id, part.rendered_text or "",
                                                              part.parse_mode))
            self.edits += 1
            self.history.sent(part, message_id, parse_mode=part.parse_mode, detail="edited into the progress message")
        except MarkupRejected as rejection:
            plain = self.renderer.to_plain(part.rendered_text or "")
            await self.send(lambda: self.transport.edit_text(chat, message_id, plain, None))
            self.history.sent(part, message_id, parse_mode=None, detail=f"platform rejected markup: {rejection}")
        self.history.progress_used(progress)

    async def _deliver_voice(self, inbound: Inbound, part: Outbound, transport: Transport) -> None:
        audio = part.audio or b""
        try:
            message_id = await self.send(lambda: transport.send_voice(part.chat_id, audio, inbound.message_id))
            self.history.sent(part, message_id, parse_mode=None)
            return
        except (SendFailed, SendRetry) as error:
            refused = f"voice refused ({_describe(error)})"
        if transport.voice_is_file:
            raise SendFailed(f"{refused}; sent the text only")
        try:
            message_id = await self.send(lambda: transport.send_file(part.chat_id, audio, "june.ogg",
                                                                      inbound.message_id))
        except (SendFailed, SendRetry) as error:
            raise SendFailed(f"{refused}; audio file refused ({_describe(error)}); sent the text only") from None
        self.history.sent(part, message_id, parse_mode=None, detail=f"{refused}; sent as an audio file")

    async def send(self, call: Callable[[], Awaitable[str]]) -> str:
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
