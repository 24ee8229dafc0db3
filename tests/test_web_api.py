"""What the voice page needs from the API: the page itself, status, conversations; under keys and Origin checks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.live_api import forget_users, live_api
from tests.secret_files import private_file

KEY = "web-" + "w" * 40
OTHER_KEY = "bot-" + "b" * 40


@pytest.fixture(scope="module")
def keyed(graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    keys = private_file(tmp_path_factory.mktemp("keys") / "keys.toml",
                        f'[clients.web]\nkey = "{KEY}"\nusers = ["web:*"]\n\n'
                        f'[clients.bot]\nkey = "{OTHER_KEY}"\nusers = ["telegram:*"]\n')
    with live_api(graph.settings, api_keys_file=keys) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def test_the_page_loads_without_a_key_and_asks_for_one(keyed: httpx.Client) -> None:
    page = keyed.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="talk"' in page.text and 'id="key-dialog"' in page.text
    script = keyed.get("/web/june.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert keyed.get("/web/capture.js").status_code == 200 and keyed.get("/web/june.css").status_code == 200
    assert keyed.get("/v1/status").status_code == 401  # what makes the page ask


@pytest.mark.parametrize("path", ["/web/../../common/settings.py", "/web/%2e%2e/%2e%2e/pyproject.toml", "/web/%2e%2e/app.py",
                                  "/web/nope.js", "/web/", "/index.html"])
def test_nothing_but_the_page_is_served(keyed: httpx.Client, path: str) -> None:
    response = keyed.get(path)  # outside /web/ the key is asked for first
    assert response.status_code in (401, 404) and "JuneSettings" not in response.text and "create_api" not in response.text
    assert "[project]" not in response.text


def test_another_sites_page_cannot_load_or_use_it(graph) -> None:
    for path in ("/", "/web/june.js", "/v1/status"):
        response = httpx.get(f"{graph.url}{path}", headers={"Origin": "http://evil.example"}, timeout=30)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden_origin")
    same_origin = httpx.get(f"{graph.url}/v1/status", headers={"Origin": graph.url, **graph.headers}, timeout=30)
    assert same_origin.status_code == 200


def test_status_names_the_models_and_the_health(graph) -> None:
    status = httpx.get(f"{graph.url}/v1/status", headers=graph.headers, timeout=30).json()
    assert status["status"] == "ok" and set(status["deployments"]) >= {"SpeechToText", "Agent", "LanguageModel",
                                                                     "TextToSpeech"}
    assert status["models"] == {"speech_to_text": "Moonshine tiny-en",
                                "language_model": graph.settings.engine_model_name,
                                "text_to_speech": "Piper joe (embedded)"}


def test_conversations_are_listed_read_and_deleted_per_user(keyed: httpx.Client) -> None:
    forget_users("web:ann", "web:bob")
    me = {"Authorization": f"Bearer {KEY}"}
    for text, conversation in [("Remember that my cat is called Tom.", "cats"), ("What is two plus two?", "sums")]:
        assert keyed.post("/v1/chat", json={"text": text, "user_id": "web:ann", "conversation_id": conversation},
                          headers=me).status_code == 200
    listed = keyed.get("/v1/conversations", params={"user_id": "web:ann"}, headers=me).json()["conversations"]
    assert [c["conversation_id"] for c in listed] == ["sums", "cats"]  # the most recent first
    assert listed[1]["title"] == "Remember that my cat is called Tom." and listed[1]["turns"] == 2
    turns = keyed.get("/v1/conversations/cats", params={"user_id": "web:ann"}, headers=me).json()["turns"]
    assert [t["role"] for t in turns] == ["user", "assistant"] and "Tom" in turns[0]["content"]
    assert keyed.get("/v1/conversations", params={"user_id": "web:bob"}, headers=me).json()["conversations"] == []
    missing = keyed.get("/v1/conversations/cats", params={"user_id": "web:bob"}, headers=me)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "conversation_not_found")
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    refused = keyed.get("/v1/conversations", params={"user_id": "web:ann"}, headers=other)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden_user")
    assert keyed.delete("/v1/conversations/cats", params={"user_id": "web:ann"}, headers=me).status_code == 200
    left = keyed.get("/v1/conversations", params={"user_id": "web:ann"}, headers=me).json()["conversations"]
    assert [c["conversation_id"] for c in left] == ["sums"]


@pytest.mark.parametrize("query", [{"user_id": "../x"}, {"user_id": ""}, {"user_id": "a" * 200}])
def test_bad_user_ids_are_refused(keyed: httpx.Client, query: dict) -> None:
    response = keyed.get("/v1/conversations", params=query, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_fields"


def test_typed_text_streams_its_reply(graph) -> None:
    forget_users("web:typist")
    with httpx.stream("POST", f"{graph.url}/v1/chat/stream", timeout=180, headers=graph.headers, json={
            "text": "What is twelve times seven?", "user_id": "web:typist", "conversation_id": "t", "speak": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "delta" and "audio" in events and events[-1] == "done"
    silent = httpx.post(f"{graph.url}/v1/chat/stream", timeout=180, headers=graph.headers,
                        json={"text": "Say hi.", "speak": False})
    assert "event: audio\n" not in silent.text and "event: done" in silent.text
    empty = httpx.post(f"{graph.url}/v1/chat/stream", timeout=30, headers=graph.headers, json={"text": "   "})
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "empty_text")
