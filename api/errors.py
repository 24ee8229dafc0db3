"""Every failure the API reports, as `{"error": {"message", "type", "code"}}` with the right status."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.llm_client import LanguageModelError
from common.types import RequestTooLong
from common.validation import describe_validation_errors
from speech.audio import AudioTooLong, UndecodableAudio

log = logging.getLogger(__name__)
# vLLM's words for a prompt longer than the window (not for a max_tokens that is too large: that stays a 400)
_CONTEXT_OVERFLOW = re.compile(
    r"reduce the length of the (?:input )?(?:messages|prompt)|prompt .{0,40}(?:is too long|is longer than)", re.I)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    @property
    def type(self) -> str:
        return "invalid_request_error" if self.status < 500 else "server_error"


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, message, code)


def too_large(message: str) -> ApiError:
    return ApiError(413, message, "too_large")


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, message, "unsupported_media_type")


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message, "invalid_fields")


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, message, code)


def unauthorized() -> ApiError:
    return ApiError(401, "a valid API key is required (Authorization: Bearer <key>)", "unauthorized",
                    {"WWW-Authenticate": "Bearer"})


def busy(retry_after_s: int) -> ApiError:
    return ApiError(503, "June is busy; retry shortly", "busy", {"Retry-After": str(retry_after_s)})


def error_body(error: ApiError) -> dict:
    return {"error": {"message": error.message, "type": error.type, "code": error.code}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)


def mid_stream_error(exc: BaseException, retry_after_s: int) -> dict:
    """The error body for a failure after a stream's headers were sent (so no status code)."""
    if as_api_error(exc, retry_after_s) is None:
        log.exception("stream failed", exc_info=exc)
    return error_body(as_api_error(exc, retry_after_s) or ApiError(500, "the reply failed", "internal_error"))


def as_api_error(exc: BaseException, retry_after_s: int) -> ApiError | None:
    """Map a domain exception, also one re-raised through a Ray handle, to an API error."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AudioTooLong):
        return too_large(str(exc.args[0]) if exc.args else "the audio is too long")
    if isinstance(exc, UndecodableAudio):
        return bad_request(str(exc.args[0]) if exc.args else "the audio could not be decoded", "undecodable_audio")
    if isinstance(exc, BackPressureError):
        return busy(retry_after_s)
    if isinstance(exc, (RayActorError, ActorUnavailableError)):  # a replica died; Serve starts another
        return ApiError(503, "a part of June restarted while answering; retry shortly", "stage_unavailable",
                        {"Retry-After": str(retry_after_s)})
    if isinstance(exc, RequestTooLong):
        return too_large(str(exc))
    if _is_engine_client_error(exc):  # the engine refused the request itself (e.g. an invalid grammar)
        return ApiError(400, str(getattr(exc, "cause", None) or exc).splitlines()[0][:500], "language_model_error")
    if isinstance(exc, LanguageModelError):
        if exc.status_code == 422:  # a body the engine cannot honour
            return unprocessable(str(exc))
        if _CONTEXT_OVERFLOW.search(str(exc)) and "max_tokens" not in str(exc):
            return too_large(f"the request does not fit the language model's window ({exc})")
        status = exc.status_code if 400 <= exc.status_code < 600 else 502
        return ApiError(status, str(exc), "language_model_error")
    return None


def _is_engine_client_error(exc: BaseException) -> bool:
    """vLLM's own 'the request is wrong' errors, without importing vLLM (the Ingress does not load it)."""
    return any(cls.__name__ == "VLLMClientError" for cls in type(exc).__mro__)


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            return error_response(bad_request("the body is not valid JSON", "invalid_json"))
        return error_response(unprocessable(describe_validation_errors(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
        if exc.status_code == 400:  # the body could not be parsed at all
            json_sent = request.headers.get("content-type", "").startswith("application/json")
            code = "invalid_json" if json_sent else "bad_request"
        return error_response(ApiError(exc.status_code, str(exc.detail), code, dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        mapped = as_api_error(exc, retry_after_s)
        if mapped is None:
            log.exception("unhandled error")
            mapped = ApiError(500, "internal error", "internal_error")
        return error_response(mapped)
