"""Failures on the way: each gives the caller a clear error (or the text without its audio) and June keeps serving.

Faults are injected through the `Pipeline` protocol around the real deployments, except the ones that can
be made real here: a prompt longer than the engine's window, and a replica killed mid-request.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from api.app import create_api
from tests.live_api import Faulty, kill_replicas, real_pipeline
from tests.speech import say, silence


def call(graph, app, method: str, path: str, **kwargs) -> httpx.Response:
    """A request to `app` (an API over the graph's data dir) with the graph's owner key."""
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120,
                                     headers=graph.headers) as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def question() -> bytes:
    return say("What is the capital of France?")


def test_a_failed_synthesis_still_delivers_the_text(graph) -> None:
    """Silence is answered without the model ("I didn't catch that"), which keeps this quick; the speech fails."""
    app = create_api(graph.settings, Faulty(real_pipeline(), speak=RuntimeError("piper crashed")))
    quiet = silence(1.5)
    voice = call(graph, app, "POST", "/v1/voice", files={"audio": ("q.wav", quiet, "audio/wav")})
    assert voice.status_code == 200, voice.text
    body = voice.json()
    assert body["reply"] and body["audio"] is None and body["audio_error"]["code"] == "speech_failed"
    chat = call(graph, app, "POST", "/v1/chat", json={"text": "What is 7 times 8?", "speak": True}).json()
    assert "56" in chat["reply"] and chat["audio"] is None and chat["audio_error"]["code"] == "speech_failed"
    stream = call(graph, app, "POST", "/v1/voice/stream", files={"audio": ("q.wav", quiet, "audio/wav")})
    events = [line.removeprefix("event: ") for line in stream.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "transcript" and "audio_error" in events and events[-1] == "done" and "audio" not in events


def test_a_failed_transcription_is_a_clear_error(graph, question: bytes) -> None:
    app = create_api(graph.settings, Faulty(real_pipeline(), transcribe=RuntimeError("whisper crashed")))
    response = call(graph, app, "POST", "/v1/voice", files={"audio": ("q.ogg", question, "audio/ogg")})
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "whisper" not in response.text  # internals stay in the log
    assert call(graph, app, "POST", "/v1/chat", json={"text": "Still there?"}).status_code == 200


def test_a_prompt_longer_than_the_window_is_413(client: httpx.Client, graph) -> None:
    words = " ".join(f"word{n}" for n in range(graph.settings.llm_max_model_len * 2))[:30000]
    response = client.post("/v1/chat/completions", json={
        "model": graph.settings.engine_model_name, "max_tokens": 8,
        "messages": [{"role": "user", "content": words}]})
    assert response.status_code == 413, response.text
    assert client.post("/v1/chat", json={"text": "Hello again."}).status_code == 200


def test_a_replica_that_dies_mid_request_is_a_retryable_error(graph, client: httpx.Client) -> None:
    """/v1/audio/speech streams: a TextToSpeech replica killed before the first audio is a 503 to retry; killed
    after it, the body breaks off (no clean end of the chunked body), so no client takes cut speech for whole."""
    long_text = "This sentence is here to keep the speech engine busy for a while. " * 25
    outcome: list[httpx.Response | httpx.HTTPError] = []

    def send() -> None:
        try:
            outcome.append(client.post("/v1/audio/speech", json={"model": "tts-1", "input": long_text,
                                                                 "response_format": "wav"}))
        except httpx.HTTPError as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1.0)
    kill_replicas("TextToSpeech")
    sender.join(120)
    [result] = outcome
    if isinstance(result, httpx.Response):
        assert result.status_code == 503, (result.status_code, len(result.content))
        assert result.json()["error"]["code"] == "stage_unavailable" and result.headers["retry-after"]
    else:
        assert isinstance(result, httpx.RemoteProtocolError), repr(result)
    deadline = time.monotonic() + 180
    while client.get("/healthz").json()["status"] != "ok" and time.monotonic() < deadline:
        time.sleep(1)
    again = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Back again.", "response_format": "wav"})
    assert again.status_code == 200 and again.content[:4] == b"RIFF"
