"""June's real HTTP API over the test session's real deployments, served in this process on loopback.

For tests that need the API with other settings than the running graph's (keys, limits), or with one hop
failing (failure injection through the `Pipeline` protocol): the app is `create_api` as the Ingress builds
it, over `HandlePipeline` handles to the same deployments, under uvicorn on a free port. `live_api` also
writes down every HTTP exchange (`Recorded`: method, path, Idempotency-Key, body, status, replay), so a
test can check what a client sent and what the real API answered.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import uvicorn
from ray import serve

from api.app import create_api
from api.pipeline import HandlePipeline
from common.settings import JuneSettings
from graphs.launch import APP_NAME, free_port


def agent_handle():
    """The running graph's real Agent deployment: its history, export and forgetting, for checks and clean-up."""
    return serve.get_deployment_handle("Agent", app_name=APP_NAME)


def forget_users(*users: str) -> None:
    """Start a test from nothing: whatever the session's earlier tests left in the graph for these users goes."""
    for user in users:
        agent_handle().forget_user.remote(user).result()


def kill_replicas(deployment: str) -> None:
    """Kill every replica of a deployment of the running graph; Serve starts new ones."""
    import ray

    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{deployment}#" in a["name"]]
    assert replicas, f"no {deployment} replica found"
    for replica in replicas:
        ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=False)


def real_pipeline() -> HandlePipeline:
    handle = lambda name: serve.get_deployment_handle(name, app_name=APP_NAME)  # noqa: E731
    return HandlePipeline(handle("SpeechToText"), handle("Agent"), handle("TextToSpeech"), handle("LanguageModel"))


class Faulty:
    """The real pipeline with some hops replaced by a failure, or slowed down."""

    def __init__(self, real: HandlePipeline, delay_s: float = 0.0, **failures: BaseException):
        self.real, self.delay_s, self.failures = real, delay_s, failures

    def __getattr__(self, name: str):
        if name in self.failures:
            error = self.failures[name]

            async def fail(*_: object, **__: object):
                raise error

            return fail
        if name == "reply" and self.delay_s:
            async def slow_reply(utterance):
                await asyncio.sleep(self.delay_s)
                return await self.real.reply(utterance)

            return slow_reply
        return getattr(self.real, name)


@dataclass
class Exchange:
    """One request the real API answered: as the client sent it, and the status and replay it got."""

    method: str
    path: str  # as sent, still percent-encoded
    query: str
    key: str | None  # the Idempotency-Key header
    body: dict | None = None  # a JSON body, or the text fields of a multipart form
    status: int = 0
    replayed: bool = False  # answered with `Idempotent-Replayed: true`

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query))

    @property
    def answered(self) -> bool:
        """The agent ran for it: a chat or voice request answered 200, not from the stored answers."""
        return self.path in ("/v1/chat", "/v1/voice") and self.status == 200 and not self.replayed


class Recorded:
    """ASGI wrapper that writes down each HTTP exchange with the app inside it, and changes nothing."""

    def __init__(self, app):
        self.app = app
        self.exchanges: list[Exchange] = []

    def chats(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path in ("/v1/chat", "/v1/voice")]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        exchange = Exchange(scope["method"], (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                            scope["query_string"].decode("latin-1"), headers.get("idempotency-key"))
        self.exchanges.append(exchange)
        chunks: list[bytes] = []

        async def receiving():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    exchange.body = _fields(headers.get("content-type", ""), b"".join(chunks))
            return message

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.replayed = (b"idempotent-replayed", b"true") in [
                    (k.lower(), v.lower()) for k, v in message.get("headers", [])]
            await send(message)

        await self.app(scope, receiving, sending)


def _fields(content_type: str, body: bytes) -> dict | None:
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    if content_type.startswith("multipart/form-data"):
        text = body.decode("latin-1")
        return dict(re.findall(r'Content-Disposition: form-data; name="([^"]+)"\r\n\r\n(.*?)\r\n--', text))
    return None


class served:
    """A FastAPI app under uvicorn on a free loopback port, in a thread: real HTTP, real streaming."""

    def __init__(self, app, settings: JuneSettings | None = None):
        self.app, self.settings = app, settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def __enter__(self) -> str:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self.url

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def key(self) -> str | None:
        """The owner's key of this API (the owner key in its data dir), as a local client reads it."""
        return self.settings.client_key if self.settings is not None else None

    @property
    def headers(self) -> dict[str, str]:
        return self.settings.client_headers if self.settings is not None else {}

    @property
    def exchanges(self) -> list[Exchange]:
        return getattr(self.app, "exchanges", [])

    def chats(self) -> list[Exchange]:
        """The /v1/chat and /v1/voice exchanges, in order."""
        return self.app.chats()


def live_api(settings: JuneSettings, pipeline=None, **updates) -> served:
    """`with live_api(graph.settings, api_keys_file=path) as url:` — the real API with these settings.

    `api.exchanges` (and `api.chats()`) are what it was sent and answered, in order.
    """
    settings = settings.model_copy(update=updates)
    return served(Recorded(create_api(settings, pipeline or real_pipeline(),
                                      messenger=serve.get_deployment_handle("Messenger", app_name=APP_NAME))), settings)
