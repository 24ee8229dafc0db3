"""A small async client for the graph's HTTP API, retrying while the graph is busy or restarting."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("june.bots.api")

RETRY_STATUSES = {502, 503, 504}
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class JuneApiError(Exception):
    """The graph refused the request (4xx, or 5xx once retries are spent)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class JuneUnavailable(Exception):
    """The graph stayed busy or unreachable for the whole retry window."""


@dataclass(frozen=True)
class Reply:
    """June's answer: the text, and speech when it was asked for."""

    text: str
    audio: bytes | None
    audio_format: str | None
    transcript: str | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    deployments: dict[str, str]


class JuneClient:
    """`/v1/chat`, `/v1/voice` and `/healthz`, with backoff on 502/503/504 and connection errors."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float, retry_for_s: float):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self._retry_for_s = retry_for_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(self, text: str, *, conversation_id: str, user_id: str, speak: bool) -> Reply:
        body = {"text": text, "conversation_id": conversation_id, "user_id": user_id, "speak": speak,
                "reply_format": "ogg"}
        data = await self._post("/v1/chat", json=body)
        return _reply(data)

    async def voice(self, audio: bytes, filename: str, content_type: str, *, conversation_id: str,
                    user_id: str) -> Reply:
        fields = {"conversation_id": conversation_id, "user_id": user_id, "reply_format": "ogg"}
        data = await self._post("/v1/voice", data=fields, files={"audio": (filename, audio, content_type)})
        return _reply(data)

    async def health(self) -> Health:
        try:
            response = await self._http.get("/healthz", timeout=10)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return Health(False, {})
        return Health(response.status_code == 200, dict(body.get("deployments", {})))

    async def _post(self, path: str, **request: Any) -> dict:
        deadline = time.monotonic() + self._retry_for_s
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.post(path, **request)
            except httpx.TransportError as error:
                wait, reason = _backoff(attempt), type(error).__name__
            else:
                if response.status_code < 400:
                    return response.json()
                if response.status_code not in RETRY_STATUSES:
                    raise _api_error(response)
                wait = _retry_after(response) or _backoff(attempt)
                reason = f"HTTP {response.status_code}"
            if time.monotonic() + wait > deadline:
                raise JuneUnavailable(f"{path}: still failing after {attempt} attempts ({reason})")
            log.warning("graph unavailable, retrying", extra={"path": path, "attempt": attempt, "reason": reason,
                                                              "wait_s": round(wait, 2)})
            await asyncio.sleep(wait)


def _reply(data: dict) -> Reply:
    audio = base64.b64decode(data["audio"]) if data.get("audio") else None
    return Reply(data["reply"], audio, data.get("audio_format"), data.get("transcript"))


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
