"""A small async client for the graph's HTTP API, retrying while the graph is busy or restarting.

`/v1/chat` and `/v1/voice` carry an `Idempotency-Key` (one per inbound message), so a retry after a
read timeout, or the same message answered again after a restart, gets the graph's stored answer
instead of a second turn.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

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
                   idempotency_key: str | None = None) -> Reply:
        body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "speak": speak,
                "reply_format": "ogg", "private": private}
        response = await self._request("POST", "/v1/chat", json=body, headers=_idempotency(idempotency_key))
        return _reply(response)

    async def voice(self, audio: bytes, filename: str, content_type: str, *, conversation_id: str,
                    user_id: str, private: bool = True, idempotency_key: str | None = None) -> Reply:
        fields = {"conversation_id": conversation_id, "user_id": user_id, "reply_format": "ogg",
                  "private": "true" if private else "false"}
        response = await self._request("POST", "/v1/voice", data=fields,
                                       files={"audio": (filename, audio, content_type)},
                                       headers=_idempotency(idempotency_key))
        return _reply(response)

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

    async def health(self) -> Health:
        try:
            response = await self._http.get("/healthz", timeout=10)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return Health(False, {})
        return Health(response.status_code == 200, dict(body.get("deployments", {})))

    async def _request(self, method: str, path: str, **request: Any) -> httpx.Response:
        deadline = time.monotonic() + self._retry_for_s
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, path, **request)
            except httpx.TransportError as error:
                wait, reason = _backoff(attempt), type(error).__name__
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    error = _api_error(response)
                    if error.forbidden_user:
                        log.error("the graph's API key may not act for this bot's users: give this bot a key for"
                                  " its platform's namespace", extra={"path": path, "status": error.status,
                                                                      "code": error.code})
                    raise error
                wait = _retry_after(response) or _backoff(attempt)
                reason = f"HTTP {response.status_code}"
            if time.monotonic() + wait > deadline:
                raise JuneUnavailable(f"{method} {path}: still failing after {attempt} attempts ({reason})")
            log.warning("graph unavailable, retrying", extra={"path": path, "attempt": attempt,
                                                              "reason": reason, "wait_s": round(wait, 2)})
            await asyncio.sleep(wait)


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
