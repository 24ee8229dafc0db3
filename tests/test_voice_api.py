"""June's own routes against the real graph: real Whisper, SmolLM2 on vLLM, Piper, SQLite."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import av
import httpx
import ray
from ray import serve

from api.replies import DIDNT_CATCH_THAT
from graphs.launch import APP_NAME, wait_until_healthy
from tests.speech import decoded_seconds, say, silence, words

QUESTION = "What is the capital of France?"


def opus_stream_facts(data: bytes) -> tuple[str, str, int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return container.format.name, stream.codec_context.name, stream.sample_rate, stream.channels


def test_healthz_reports_every_deployment(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["deployments"] == {name: "ok" for name in ("SpeechToText", "Agent", "TextToSpeech", "LanguageModel",
                                                            "Messenger")}


def test_spoken_question_round_trip(client: httpx.Client) -> None:
    response = client.post("/v1/voice", files={"audio": ("question.ogg", say(QUESTION), "audio/ogg")},
                           data={"user_id": "alice", "conversation_id": "round-trip"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"capital", "france"} <= words(body["transcript"])
    assert body["language"] == "en"
    assert body["reply"].strip()
    assert body["audio_format"] == "ogg"
    assert set(body["timings_ms"]) == {"stt", "stt_engine", "think", "tts", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["stt"] + body["timings_ms"]["think"]
    assert 0 < body["timings_ms"]["stt_engine"] < body["timings_ms"]["stt"]  # the engine's part, without the hop

    audio = base64.b64decode(body["audio"])
    assert opus_stream_facts(audio) == ("ogg", "opus", 48_000, 1)
    heard = client.post("/v1/audio/transcriptions", files={"file": ("reply.ogg", audio, "audio/ogg")})
    assert heard.status_code == 200
    spoken, written = words(heard.json()["text"]), words(body["reply"])
    assert len(spoken & written) >= min(3, len(written)) or len(spoken & written) >= 0.5 * len(written), (
        f"reply {body['reply']!r} came back as {heard.json()['text']!r}")


def test_wav_reply_format(client: httpx.Client) -> None:
    response = client.post("/v1/voice", files={"audio": ("q.wav", say("Hello June.", "wav"), "audio/wav")},
                           data={"reply_format": "wav"})
    assert response.status_code == 200, response.text
    audio = base64.b64decode(response.json()["audio"])
    assert audio[:4] == b"RIFF" and decoded_seconds(audio) > 0.3


def test_silence_gets_a_spoken_didnt_catch_that_without_the_llm(client: httpx.Client) -> None:
    response = client.post("/v1/voice", files={"audio": ("silence.wav", silence(2.0), "audio/wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transcript"] == ""
    assert body["reply"] == DIDNT_CATCH_THAT
    assert body["timings_ms"]["think"] == 0.0
    assert decoded_seconds(base64.b64decode(body["audio"])) > 1.0


def test_text_chat_with_speech(client: httpx.Client) -> None:
    response = client.post("/v1/chat", json={"text": "Say hello to me.", "speak": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"].strip()
    assert body["audio_format"] == "ogg"
    assert decoded_seconds(base64.b64decode(body["audio"])) > 0.3
    assert set(body["timings_ms"]) == {"think", "tts", "total"}


def test_text_chat_without_speech_has_no_audio(client: httpx.Client) -> None:
    body = client.post("/v1/chat", json={"text": "What is two plus two?"}).json()
    assert body["reply"].strip() and body["audio"] is None and body["audio_format"] is None


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_voice_stream_sends_transcript_deltas_audio_then_done(client: httpx.Client) -> None:
    response = client.post("/v1/voice/stream", files={"audio": ("q.ogg", say(QUESTION), "audio/ogg")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "transcript" and kinds[-1] == "done"
    assert "delta" in kinds and "audio" in kinds
    assert {"capital", "france"} <= words(events[0][1]["text"])
    deltas = "".join(data["text"] for kind, data in events if kind == "delta")
    done = events[-1][1]
    assert done["reply"] == deltas.strip()
    audio_events = [data for kind, data in events if kind == "audio"]
    assert [a["index"] for a in audio_events] == list(range(len(audio_events)))
    for chunk in audio_events:
        assert decoded_seconds(base64.b64decode(chunk["audio"])) > 0.2
    assert {"stt", "first_audio", "think", "total"} <= set(done["timings_ms"])


def test_voice_stream_of_silence_still_speaks(client: httpx.Client) -> None:
    events = parse_sse(client.post("/v1/voice/stream", files={"audio": ("s.wav", silence(1.5), "audio/wav")}).text)
    assert events[0] == ("transcript", {"text": "", "language": events[0][1]["language"], "duration_s": 1.5})
    assert [kind for kind, _ in events][-2:] == ["audio", "done"]
    assert events[-1][1]["reply"] == DIDNT_CATCH_THAT


def test_eight_concurrent_requests_are_all_answered(graph) -> None:
    question = say("How are you today?")

    async def ask(http: httpx.AsyncClient, number: int) -> int:
        if number % 2:
            response = await http.post("/v1/chat", json={"text": f"Give me a number bigger than {number}."})
        else:
            response = await http.post("/v1/voice", files={"audio": ("q.ogg", question, "audio/ogg")})
        return response.status_code

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=graph.url, headers=graph.headers, timeout=300) as http:
            return await asyncio.gather(*(ask(http, n) for n in range(8)))

    assert asyncio.run(main()) == [200] * 8


def test_history_is_kept_per_user_and_survives_an_agent_replica_restart(graph, client: httpx.Client) -> None:
    for text in ("My name is Ada.", "I live in Lisbon."):
        response = client.post("/v1/chat", json={"text": text, "user_id": "ada", "conversation_id": "c-1"})
        assert response.status_code == 200
    agent = serve.get_deployment_handle("Agent", app_name=APP_NAME)
    before = agent.history.remote("ada", "c-1").result()
    assert [t.role for t in before] == ["user", "assistant", "user", "assistant"]
    assert [before[0].content, before[2].content] == ["My name is Ada.", "I live in Lisbon."]
    assert agent.history.remote("mallory", "c-1").result() == []  # another user's conversation is invisible

    replica = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "Agent" in a["name"])
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
    wait_until_healthy(graph.url, 120)

    after = serve.get_deployment_handle("Agent", app_name=APP_NAME).history.remote("ada", "c-1").result()
    assert after == before
    response = client.post("/v1/chat", json={"text": "Where do I live?", "user_id": "ada", "conversation_id": "c-1"})
    assert response.status_code == 200
    assert len(serve.get_deployment_handle("Agent", app_name=APP_NAME).history.remote("ada", "c-1").result()) == 6


def test_stage_latencies_are_exported_as_a_serve_metric(client: httpx.Client) -> None:
    assert client.post("/v1/chat", json={"text": "Hello!", "speak": True}).status_code == 200
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + 60
    exported = ""
    while time.monotonic() < deadline and 'stage="tts"' not in exported:
        time.sleep(2)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        exported = "\n".join(line for line in metrics.splitlines() if line.startswith("ray_june_stage_latency_ms"))
    for stage in ("stt", "stt_engine", "think", "tts", "total"):
        assert f'stage="{stage}"' in exported, exported[:2000]
