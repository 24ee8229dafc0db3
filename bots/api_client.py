"""A small async client for the graph's HTTP API, retrying while the graph is busy or restarting.

`/v1/chat` and `/v1/voice` carry an `Idempotency-Key` (one per inbound message), so a retry after a
read timeout, or the same message answered again after a restart, gets the graph's stored answer
instead of a second turn.
"""

from __future__ import annotations

import base64
import logging
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, retry_if_result, stop_before_delay

log = logging.getLogger("june.bots.api")

RETRY_STATUSES = {502, 503, 504}
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")


class JuneApiError(Exception):
    """The graph refused the request (4xx, or 5xx once retries are spent)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


    @property
    def forbidden_user(self) -> bool:
        """The graph's key for this bot may not act for this user: a misconfiguration, not the user's fault."""
        return self.status == 403 and self.code == "forbidden_user"


class JuneUnavailable(Exception):
    """The graph stayed busy or unreachable for the whole retry window."""


@dataclass(frozen=True)
class Reply:
    """June's answer: the text, and speech when it was asked for."""

    text: str
    audio: bytes | None
    audio_format: str | None
    transcript: str | None = None
    audio_error: str | None = None  # the graph's code when speech synthesis failed (the text is still there)
    replayed: bool = False  # the graph's stored answer to this Idempotency-Key


@dataclass(frozen=True)
class Health:
    ok: bool
    deployments: dict[str, str]


class JuneClient:
    """`/v1/chat`, `/v1/voice`, deletion, export and `/healthz`, with backoff on 502/503/504 and connection errors."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float, retry_for_s: float):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._retry_for_s = retry_for_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(self, text: str, *, conversation_id: str, user_id: str, speak: bool, private: bool = True,
                   idempotency_key: str | None = None, chat_id: str | None = None) -> Reply:
        body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "speak": speak,
                "reply_format": "ogg", "private": private, "chat_id": chat_id}
        response = await self._request("POST", "/v1/chat", json=body, headers=_idempotency(idempotency_key))
        return _reply(response)

    async def voice(self, audio: bytes, filename: str, content_type: str, *, conversation_id: str,
                    user_id: str, private: bool = True, idempotency_key: str | None = None,
                    chat_id: str | None = None) -> Reply:
        fields = {"conversation_id": conversation_id, "user_id": user_id, "reply_format": "ogg",
                  "private": "true" if private else "false", **({"chat_id": chat_id} if chat_id else {})}
        response = await self._request("POST", "/v1/voice", data=fields,
                                       files={"audio": (filename, audio, content_type)},
                                       headers=_idempotency(idempotency_key))
        return _reply(response)

    async def chat_stream(self, text: str, *, conversation_id: str, user_id: str, private: bool = True,
                          idempotency_key: str | None = None, chat_id: str | None = None
                          ) -> AsyncIterator[tuple[str, dict]]:
        """`/v1/chat/stream`'s events as (event, data): `delta`s, then `done` (or an `error` event). Only getting
        the answer is retried: once its first byte has arrived, a broken stream raises JuneUnavailable."""
        body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "speak": False,
                "private": private, "chat_id": chat_id}
        response = await self._request("POST", "/v1/chat/stream", stream=True, json=body,
                                       headers=_idempotency(idempotency_key))
        try:
            async for event in _server_sent_events(response):
                yield event
        except httpx.TransportError as error:  # after the first byte: a retry would answer twice
            raise JuneUnavailable(f"/v1/chat/stream broke off ({type(error).__name__})") from None
        finally:
            await response.aclose()

    async def transcribe(self, audio: bytes, filename: str, content_type: str) -> str:
        response = await self._request("POST", "/v1/audio/transcriptions",
                                       files={"file": (filename, audio, content_type)})
        return str(_json(response).get("text") or "")

    async def speech(self, text: str) -> bytes:
        """The text spoken as an OGG/Opus voice note."""
        response = await self._request("POST", "/v1/audio/speech", json={"model": "june", "input": text,
                                                                          "response_format": "opus"})
        return response.content

    async def delete_conversation(self, conversation_id: str, *, user_id: str) -> int:
        """Delete the user's turns of one conversation in the graph; the number deleted."""
        response = await self._request("DELETE", f"/v1/conversations/{_segment(conversation_id)}",
                                       params={"user_id": user_id})
        return int(_json(response).get("deleted_turns") or 0)

    async def delete_user(self, user_id: str) -> dict[str, int]:
        """Delete everything the graph holds about a user; counts per kind (turns, notes, ...)."""
        response = await self._request("DELETE", f"/v1/users/{_segment(user_id)}")
        deleted = _json(response).get("deleted") or {}
        return {str(kind): int(count) for kind, count in deleted.items() if isinstance(count, int)}

    async def export_user(self, user_id: str) -> dict:
        """Everything the graph holds about a user: conversations, notes, preferences."""
        return _json(await self._request("GET", f"/v1/users/{_segment(user_id)}/export"))

    async def outbox(self, platform: str, wait_s: float) -> list[dict]:
        """What the graph has queued for this platform (one long-poll, no retries: the caller loops)."""
        response = await self._http.get("/v1/outbox", params={"platform": platform, "wait": wait_s},
                                        timeout=wait_s + 30)
        if response.status_code >= 400:
            raise _api_error(response)
        return list(_json(response).get("deliveries") or [])

    async def acknowledge(self, delivery_id: int, delivered: bool, platform_message_id: str | None,
                          detail: str | None = None) -> None:
        await self._request("POST", f"/v1/outbox/{int(delivery_id)}/ack", json={
            "delivered": delivered, "platform_message_id": platform_message_id, "detail": detail})

    async def record(self, record: dict) -> dict:
        """A message for the graph's ledger (the Message API)."""
        return _json(await self._request("POST", "/v1/ledger", json=record))

    async def to_inbox(self, record: dict) -> dict:
        """A forwarded user message for the owner's inbox; the inbox item."""
        return _json(await self._request("POST", "/v1/inbox", json=record))

    async def answer_inbox(self, item_id: int, text: str) -> dict:
        return _json(await self._request("POST", f"/v1/inbox/{int(item_id)}/reply", json={"text": text}))

    async def health(self) -> Health:
        try:
            response = await self._http.get("/healthz", timeout=10)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return Health(False, {})
        return Health(response.status_code == 200, dict(body.get("deployments", {})))

    async def _request(self, method: str, path: str, *, stream: bool = False, **request: Any) -> httpx.Response:
        """The graph's answer, retried on 502/503/504 and connection errors (after `Retry-After` or a backoff) while
        the next try would start within `retry_for_s`. With `stream`, the answer's body is left to read (and the
        response to close): only getting the answer is retried, never its reading."""
        def give_up(state: RetryCallState) -> NoReturn:
            raise JuneUnavailable(f"{method} {path}: still failing after {state.attempt_number} attempts "
                                  f"({_reason(state)})") from None

        def log_retry(state: RetryCallState) -> None:
            log.warning("graph unavailable, retrying", extra={"path": path, "attempt": state.attempt_number,
                                                              "reason": _reason(state),
                                                              "wait_s": round(state.upcoming_sleep, 2)})

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_busy),
            wait=_wait, stop=stop_before_delay(self._retry_for_s), before_sleep=log_retry,
            retry_error_callback=give_up)
        async for attempt in retrying:
            with attempt:
                response = await self._http.send(self._http.build_request(method, path, **request), stream=stream)
                if stream and response.status_code >= 400:
                    await response.aread()  # the error's body, and the connection back to the pool
            if not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(response)
        if response.status_code >= 400:
            error = _api_error(response)
            if error.forbidden_user:
                log.error("the graph's API key may not act for this bot's users: give this bot a key for"
                          " its platform's namespace", extra={"path": path, "status": error.status,
                                                              "code": error.code})
            raise error
        return response


async def _server_sent_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict]]:
    """The stream's events as (event, data), data parsed as JSON; an event without data is no event."""
    try:
        async for event in EventSource(response).aiter_sse():
            if not event.data:
                continue
            try:
                data = event.json()
            except ValueError:
                raise JuneApiError(response.status_code, "invalid_response", "an event is not JSON") from None
            yield event.event, data
    except SSEError:  # not text/event-stream
        raise JuneApiError(response.status_code, "invalid_response", "the graph's answer is not an event stream") \
            from None


def _idempotency(key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError("an Idempotency-Key is 1-200 characters of A-Z a-z 0-9 . _ : @ -")
    return {"Idempotency-Key": key}


def _segment(value: str) -> str:
    """One path segment: IDs are `platform:number`, but never let one add a segment or a query."""
    return quote(value, safe=":@")


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise JuneApiError(response.status_code, "invalid_response", "the graph's answer is not JSON") from None
    if not isinstance(body, dict):
        raise JuneApiError(response.status_code, "invalid_response", "the graph's answer is not a JSON object")
    return body


def _reply(response: httpx.Response) -> Reply:
    data = _json(response)
    if not isinstance(data.get("reply"), str):
        raise JuneApiError(response.status_code, "invalid_response", "the graph's answer has no reply text")
    audio = base64.b64decode(data["audio"]) if data.get("audio") else None
    audio_error = data.get("audio_error")
    code = None
    if audio is None and isinstance(audio_error, dict):
        code = str(audio_error.get("code") or "speech_failed")
    replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
    return Reply(data["reply"], audio, data.get("audio_format") if audio else None, data.get("transcript"), code,
                 replayed)


def _busy(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def _wait(state: RetryCallState) -> float:
    """The graph's `Retry-After` when it sent one, else an exponential backoff with jitter."""
    retry_after = None if state.outcome.failed else _retry_after(state.outcome.result())
    return retry_after or _backoff(state.attempt_number)


def _reason(state: RetryCallState) -> str:
    if state.outcome.failed:
        return type(state.outcome.exception()).__name__
    return f"HTTP {state.outcome.result().status_code}"


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(MAX_BACKOFF_S * 6, max(0.0, float(value)))
    except ValueError:
        return None


def _api_error(response: httpx.Response) -> JuneApiError:
    try:
        error = response.json()["error"]
        return JuneApiError(response.status_code, str(error.get("code", "")), str(error.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return JuneApiError(response.status_code, "http_error", response.reason_phrase)
