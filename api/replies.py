"""What the HTTP and WebSocket routes share: the graph as a `Pipeline`, stage timings, and a reply made as
events (text deltas as the LLM writes, then each sentence's speech while the next is still written)."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

from api.errors import as_api_error, mid_stream_error
from common.settings import JuneSettings
from common.types import AgentReply, ConversationSummary, PreemptiveEnd, ToolUse, Transcript, Turn, Utterance
from speech.sentences import SentenceBuffer, ends_a_clause
from speech.spoken import spoken_sentence_limit

log = logging.getLogger(__name__)
DIDNT_CATCH_THAT = "Sorry, I didn't catch that. Could you say it again?"
_WORD = re.compile(r"\w")  # a piece with no word in it (a lone mark) has nothing to say


class Pipeline(Protocol):
    """What the API needs from the graph; each method is one hop to a deployment."""

    async def transcribe(self, audio: bytes) -> Transcript: ...
    async def reply(self, utterance: Utterance) -> AgentReply: ...
    def stream_reply(self, utterance: Utterance) -> AsyncIterator[str | dict | PreemptiveEnd]: ...
    async def remember(self, utterance: Utterance, reply: str, tool_uses: list[ToolUse]) -> None: ...
    async def speak(self, text: str, audio_format: str) -> bytes: ...
    def speak_stream(self, text: str, audio_format: str) -> AsyncIterator[bytes]: ...
    async def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def chat_chunks(self, body: dict[str, Any]) -> AsyncIterator[dict]: ...
    async def conversations(self, user_id: str) -> list[ConversationSummary]: ...
    async def conversation(self, user_id: str, conversation_id: str) -> list[Turn]: ...
    async def forget_conversation(self, user_id: str, conversation_id: str) -> int: ...
    async def forget_user(self, user_id: str) -> dict[str, int]: ...
    async def export_user(self, user_id: str) -> dict[str, Any]: ...
    async def health(self) -> dict[str, str]: ...
    def record_latency(self, stage: str, ms: float) -> None: ...


class Stopwatch:
    """Times named stages of one request, in milliseconds."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    async def run(self, stage: str, work: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return await work
        finally:
            self.mark(stage, start)

    async def transcribe(self, work: Awaitable[Transcript]) -> Transcript:
        """"stt" as the route waits for it, and "stt_engine": the speech engine's own part of that."""
        transcript = await self.run("stt", work)
        self.record("stt_engine", transcript.engine_ms)
        return transcript

    def mark(self, stage: str, since: float) -> None:
        self.record(stage, round((time.perf_counter() - since) * 1000, 1))

    def record(self, stage: str, ms: float) -> None:
        self.timings[stage] = ms
        self.pipeline.record_latency(stage, ms)

    def total(self) -> dict[str, float]:
        self.mark("total", self.started)
        return self.timings


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def reply_events(pipeline: Pipeline, settings: JuneSettings, clock: Stopwatch, utterance: Utterance | None,
                       reply_format: str, *, speak: bool = True, transcript: str | None = None,
                       deltas: AsyncIterator[str | dict] | None = None) -> AsyncIterator[tuple[str, dict]]:
    """("delta", …) as the LLM writes, ("audio", …) per finished sentence in order (or "audio_error"), then
    ("done", …) (with the agent's trace if the utterance asked for it) or ("error", …). Without an utterance
    (nothing was heard) the reply asks again. `deltas`: the agent's stream for the utterance, where the caller reads
    it through a filter of its own (a preemptive reply's end)."""
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    think_started = time.perf_counter()
    request = utterance.text if utterance else ""
    trace: dict[str, Any] = {}

    async def write() -> None:
        buffer = SentenceBuffer()
        stream = deltas or (pipeline.stream_reply(utterance) if utterance else _once(DIDNT_CATCH_THAT))
        try:
            async for delta in stream:
                if isinstance(delta, dict):  # the trace, after the text
                    trace.update(delta)
                    continue
                await events.put(("delta", delta))
                for sentence in buffer.feed(delta):
                    await sentences.put(sentence)
            for sentence in buffer.flush():
                await sentences.put(sentence)
            clock.mark("think", think_started)
        finally:
            await sentences.put(None)

    async def say() -> None:
        index = said = 0  # audio events sent; whole sentences among them (a first clause is part of one)
        limit = spoken_sentence_limit(request)
        while (sentence := await sentences.get()) is not None:
            if not speak or not _WORD.search(sentence) or (limit is not None and said >= limit):
                continue
            try:
                audio = await pipeline.speak(sentence, reply_format)
            except Exception as error:  # the text goes on; the client learns why the voice stopped
                mapped = as_api_error(error, settings.retry_after_s)
                log.warning("speech synthesis failed mid-stream", extra={"error": type(error).__name__})
                await events.put(("audio_error", {"code": mapped.code if mapped else "speech_failed",
                                                  "message": mapped.message if mapped else "the reply could not be spoken"}))
                limit = said  # no more audio
                continue
            if index == 0:
                clock.mark("first_audio", clock.started)
            await events.put(("audio", {"index": index, "sentence": sentence, "audio": b64(audio),
                                        "audio_format": reply_format}))
            index += 1
            said += not ends_a_clause(sentence)

    tasks = [asyncio.create_task(write()), asyncio.create_task(say())]
    reply_parts: list[str] = []
    try:
        pending = set(tasks)
        while pending or not events.empty():
            getter = asyncio.create_task(events.get())
            done, _ = await asyncio.wait({getter, *pending}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                kind, payload = getter.result()
                if kind == "delta":
                    reply_parts.append(payload)
                    yield "delta", {"text": payload}
                else:
                    yield kind, payload
            else:
                getter.cancel()
            for task in done - {getter}:
                pending.discard(task)
                task.result()
        finished = {"reply": "".join(reply_parts).strip(), "timings_ms": clock.total()} | (
            {"trace": trace} if trace else {})
        yield "done", ({"transcript": transcript} if transcript is not None else {}) | finished
    except Exception as error:
        yield "error", mid_stream_error(error, settings.retry_after_s)
    finally:
        for task in tasks:
            task.cancel()


async def _once(text: str) -> AsyncIterator[str]:
    yield text
