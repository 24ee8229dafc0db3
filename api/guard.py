"""The checks every request passes before a route runs: Host and Origin, the caller's key, body size, admission.

A pure ASGI middleware, so that a streamed response holds its admission slot until its last byte is sent
and a body sent in chunks (no Content-Length) is counted as it arrives.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.callers import OWNER_CLIENT, BrowserCheck, Keys
from api.errors import ApiError, busy, error_response, too_large, unauthorized
from common.settings import JuneSettings

MULTIPART_OVERHEAD = 64 * 1024
UNGUARDED_PATHS = frozenset({"/healthz", "/"})  # probes and the page: no key, no admission queue
UNGUARDED_PREFIXES = ("/web/",)  # the page's scripts and styles
HTTP_SCHEME_OF = {"ws": "http", "wss": "https"}  # a page's origin is http(s) even when it opens a WebSocket
POLICY_VIOLATION = 1008


class BodyTooLarge(HTTPException):
    """Raised while the body is read; an HTTPException so that FastAPI's body parsing passes it on."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request is over {limit} bytes")


class Guard:
    def __init__(self, app: ASGIApp, settings: JuneSettings, keys: Keys):
        self.app, self.settings, self.keys = app, settings, keys
        self.browsers = BrowserCheck(settings, keys.configured)
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if scope["type"] == "websocket":
            if refusal is None:
                await self.app(scope, receive, send)
            else:  # closing before accepting: the browser sees the handshake refused (HTTP 403)
                await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": refusal.message[:120]})
            return
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        if _unguarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self._body_limit(headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(too_large(f"the request is over {limit} bytes"))(scope, receive, send)
            return
        if self.inflight >= self.settings.max_inflight_requests:
            await error_response(busy(self.settings.retry_after_s))(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, _counted(receive, limit), send)
        finally:
            self.inflight -= 1

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> ApiError | None:
        host = headers.get("host", "")
        if problem := self.browsers.host_problem(host):
            return ApiError(403, problem, "forbidden_host")
        scheme = scope.get("scheme", "http")
        if problem := self.browsers.origin_problem(headers.get("origin"), host, HTTP_SCHEME_OF.get(scheme, scheme)):
            return ApiError(403, problem, "forbidden_origin")
        state = scope.setdefault("state", {})
        if not self.keys.required:
            state["caller"] = OWNER_CLIENT  # JUNE_AUTH=none
            return None
        kind, _, token = headers.get("authorization", "").partition(" ")
        caller = self.keys.caller(token.strip()) if kind.lower() == "bearer" and token.strip() else None
        sent_a_key = bool(token.strip())
        # A browser's WebSocket cannot carry the header: its key comes in the first message (api.realtime).
        may_come_later = scope["type"] == "websocket" and not sent_a_key
        if caller is None and not may_come_later and not _unguarded(scope["path"]):
            return unauthorized()
        state["caller"] = caller
        return None

    def _body_limit(self, headers: dict[str, str]) -> int:
        if headers.get("content-type", "").startswith("multipart/form-data"):
            return self.settings.max_audio_bytes + MULTIPART_OVERHEAD
        return self.settings.max_json_bytes


def _unguarded(path: str) -> bool:
    return path in UNGUARDED_PATHS or path.startswith(UNGUARDED_PREFIXES)


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counted
