"""How domain failures become HTTP errors."""

from __future__ import annotations

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError
from vllm.exceptions import VLLMValidationError

from api.errors import as_api_error, mid_stream_error
from common.llm_client import LanguageModelError
from common.types import RequestTooLong
from speech.audio import AudioTooLong, UndecodableAudio


@pytest.mark.parametrize(("exc", "status", "code"), [
    (AudioTooLong("the audio is longer than 300 s"), 413, "too_large"),
    (UndecodableAudio("the audio is empty"), 400, "undecodable_audio"),
    (LanguageModelError("max_tokens too large", 400), 400, "language_model_error"),
    (LanguageModelError("engine died", 0), 502, "language_model_error"),
    (RequestTooLong(5000, 3000), 413, "too_large"),
    (LanguageModelError("This model's maximum context length is 4096 tokens. However, your request has 5000 input "
                        "tokens. Please reduce the length of the input messages.", 400), 413, "too_large"),
    (BackPressureError(num_queued_requests=10, max_queued_requests=10), 503, "busy"),
    (VLLMValidationError("Invalid response_format structural_tag specification.", parameter="response_format"),
     400, "language_model_error"),  # found by fuzzing: it was a 500
    (ActorDiedError(), 503, "stage_unavailable"),
])
def test_domain_errors_map_to_statuses(exc: Exception, status: int, code: str) -> None:
    error = as_api_error(exc, retry_after_s=4)
    assert (error.status, error.code) == (status, code)
    assert error.type == ("invalid_request_error" if status < 500 else "server_error")


def test_busy_says_when_to_retry() -> None:
    error = as_api_error(BackPressureError(num_queued_requests=1, max_queued_requests=1), retry_after_s=4)
    assert error.headers == {"Retry-After": "4"}


def test_unknown_failures_are_not_mapped_and_stream_as_internal_errors() -> None:
    assert as_api_error(KeyError("secret detail"), 2) is None
    body = mid_stream_error(KeyError("secret detail"), 2)
    assert body == {"error": {"message": "the reply failed", "type": "server_error", "code": "internal_error"}}
