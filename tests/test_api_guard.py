"""API key and admission control: the real API over the real deployments, in this process."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr
from ray import serve

from api.app import create_api
from api.pipeline import HandlePipeline
from graphs.launch import APP_NAME


def pipeline() -> HandlePipeline:
    handle = lambda name: serve.get_deployment_handle(name, app_name=APP_NAME)  # noqa: E731
    return HandlePipeline(handle("SpeechToText"), handle("Agent"), handle("TextToSpeech"), handle("LanguageModel"))


def call(app, *requests: tuple[str, str, dict]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as http:
            return await asyncio.gather(*(http.request(method, url, **kw) for method, url, kw in requests))

    return asyncio.run(main())


@pytest.fixture()
def keyed_app(graph):
    return create_api(graph.settings.model_copy(update={"api_key": SecretStr("s3cret-key")}), pipeline())


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic s3cret-key", "Bearer", "s3cret-key"])
def test_wrong_or_missing_key_is_401(keyed_app, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    [response] = call(keyed_app, ("POST", "/v1/chat", {"json": {"text": "hi"}, "headers": headers}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "s3cret" not in response.text


def test_right_key_is_served_and_health_needs_none(keyed_app) -> None:
    served, health = call(
        keyed_app,
        ("POST", "/v1/chat", {"json": {"text": "hi"}, "headers": {"authorization": "Bearer s3cret-key"}}),
        ("GET", "/healthz", {}),
    )
    assert served.status_code == 200 and served.json()["reply"]
    assert health.status_code == 200


def test_full_queue_is_503_with_retry_after(graph) -> None:
    app = create_api(graph.settings.model_copy(update={"max_inflight_requests": 1, "retry_after_s": 3}), pipeline())
    responses = call(app, *[("POST", "/v1/chat", {"json": {"text": f"Say {n}."}, "headers": graph.headers})
                            for n in range(3)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and statuses[-1] == 503
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "3"
    assert busy.json()["error"]["code"] == "busy"
    [after] = call(app, ("POST", "/v1/chat", {"json": {"text": "hi"}, "headers": graph.headers}))
    assert after.status_code == 200
