"""What one caller can reach, and what a retry, a browser page or a busy graph can do: the real graph behind it.

The keyed APIs are built in this process over the real deployments (like the Ingress builds them); the
Host, Origin and body checks are tried on the running graph's own HTTP port.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from ray import serve

from api.app import create_api
from graphs.launch import APP_NAME
from tests.live_api import real_pipeline, served
from tests.secret_files import private_file
from tests.speech import say

TELEGRAM_KEY = "telegram-" + "t" * 40
OWNER_KEY = "owner-" + "o" * 40


def turns(user_id: str, conversation_id: str) -> list:
    return serve.get_deployment_handle("Agent", app_name=APP_NAME).history.remote(user_id, conversation_id).result()


@pytest.fixture(scope="module")
def question() -> bytes:
    return say("What is two plus two?")


@pytest.fixture(scope="module")
def keyed(graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """An API with a Telegram bot's key (telegram:* only) and the owner's, served over HTTP on loopback."""
    keys = private_file(tmp_path_factory.mktemp("keys") / "keys.toml",
                        f'[clients.telegram]\nkey = "{TELEGRAM_KEY}"\nusers = ["telegram:*"]\n\n'
                        f'[clients.owner]\nkey = "{OWNER_KEY}"\nusers = ["*"]\nadmin = true\n')
    with served(create_api(graph.settings.model_copy(update={"api_keys_file": keys}), real_pipeline())) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client


def as_telegram(**headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TELEGRAM_KEY}", **headers}


def test_a_bot_key_acts_only_for_its_own_platform(keyed: httpx.Client, question: bytes) -> None:
    mine = keyed.post("/v1/chat", json={"text": "Hi!", "user_id": "telegram:42", "conversation_id": "k1"},
                      headers=as_telegram())
    assert mine.status_code == 200, mine.text
    refused = [
        keyed.post("/v1/chat", json={"text": "What are my notes?", "user_id": "discord:42"}, headers=as_telegram()),
        keyed.post("/v1/chat", json={"text": "Hi", "user_id": "anonymous"}, headers=as_telegram()),
        keyed.post("/v1/voice", files={"audio": ("q.ogg", question, "audio/ogg")}, data={"user_id": "owner"},
                   headers=as_telegram()),
        keyed.post("/v1/chat/completions", json={"model": "june", "user": "discord:42",
                                                 "messages": [{"role": "user", "content": "hi"}]},
                   headers=as_telegram()),
        keyed.get("/v1/users/discord:42/export", headers=as_telegram()),
        keyed.delete("/v1/users/discord:42", headers=as_telegram()),
        keyed.delete("/v1/conversations/k1", params={"user_id": "discord:42"}, headers=as_telegram()),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [(403, "forbidden_user")] * len(refused)


def test_without_a_user_id_a_key_acts_as_its_client(keyed: httpx.Client) -> None:
    response = keyed.post("/v1/chat", json={"text": "Hello there.", "conversation_id": "own"}, headers=as_telegram())
    assert response.status_code == 200, response.text
    assert len(turns("telegram", "own")) == 2 and turns("owner", "own") == []


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {OWNER_KEY}", f"Bearer {OWNER_KEY}x"])
def test_without_a_known_key_nothing_is_served(keyed: httpx.Client, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    for response in (keyed.post("/v1/chat", json={"text": "hi"}, headers=headers),
                     keyed.get("/v1/users/owner/export", headers=headers), keyed.get("/openapi.json", headers=headers)):
        assert response.status_code == 401 and OWNER_KEY not in response.text
    assert keyed.get("/healthz").status_code == 200  # probes need no key


def test_another_sites_page_cannot_drive_the_loopback_api(client: httpx.Client, question: bytes, graph) -> None:
    """A multipart POST is a CORS-simple request: the browser sends it, so June must refuse it itself."""
    before = turns("owner", "csrf")
    forged = client.post("/v1/voice", files={"audio": ("q.ogg", question, "audio/ogg")},
                         data={"conversation_id": "csrf"}, headers={"Origin": "http://attacker.example"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "forbidden_origin"
    rebound = client.get("/v1/users/owner/export", headers={"Host": f"rebind.attacker.example:{graph.settings.port}"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden_host"
    assert turns("owner", "csrf") == before
    same_origin = client.post("/v1/chat", json={"text": "Hello!"},
                              headers={"Origin": f"http://127.0.0.1:{graph.settings.port}"})
    assert same_origin.status_code == 200, same_origin.text


def test_a_body_sent_in_chunks_is_cut_off_at_the_limit(client: httpx.Client, graph) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(3 * 1024):
            yield b"a" * 1024
        yield b'"}'

    response = client.post("/v1/chat", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert client.get("/healthz").json()["status"] == "ok"


def test_a_retried_request_is_answered_once(client: httpx.Client) -> None:
    body = {"text": "Tell me a fun fact about otters.", "user_id": "retry-user", "conversation_id": "r1"}
    key = {"Idempotency-Key": "telegram:77:1001"}
    first = client.post("/v1/chat", json=body, headers=key)
    again = client.post("/v1/chat", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json()["reply"] == first.json()["reply"]
    assert len(turns("retry-user", "r1")) == 2
    reused = client.post("/v1/chat", json=body | {"text": "Something else."}, headers=key)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    bad = client.post("/v1/chat", json=body, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 422


def test_concurrent_retries_of_one_voice_message_make_one_turn(graph, question: bytes) -> None:
    def send() -> httpx.Response:
        with graph.client() as http:
            return http.post("/v1/voice", files={"audio": ("q.ogg", question, "audio/ogg")},
                             data={"user_id": "retry-user", "conversation_id": "r2"},
                             headers={"Idempotency-Key": "telegram:77:1002"})

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: send(), range(3)))
    assert [r.status_code for r in responses] == [200] * 3
    assert len({r.json()["reply"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 2
    assert len(turns("retry-user", "r2")) == 2


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_deleting_and_exporting_a_users_data(client: httpx.Client, graph) -> None:
    user, marker = "telegram:5150", "quokkaplum"
    for conversation, text in (("d1", f"Remember that my locker code is {marker} 4417."), ("d2", f"Say {marker}.")):
        response = client.post("/v1/chat", json={"text": text, "user_id": user, "conversation_id": conversation},
                               headers={"Idempotency-Key": f"del-{conversation}"})
        assert response.status_code == 200, response.text
    exported = client.get(f"/v1/users/{user}/export").json()
    assert {c["conversation_id"] for c in exported["conversations"]} == {"d1", "d2"}
    assert any(marker in note["text"] for note in exported["notes"]), exported
    assert exported["user_id"] == user and exported["exported_at"]

    dropped = client.delete("/v1/conversations/d2", params={"user_id": user}).json()
    assert dropped == {"conversation_id": "d2", "user_id": user, "deleted_turns": 2}
    assert turns(user, "d2") == [] and len(turns(user, "d1")) == 2
    assert client.delete("/v1/conversations/d2", params={"user_id": user}).json()["deleted_turns"] == 0

    deleted = client.delete(f"/v1/users/{user}").json()
    assert deleted["deleted"]["turns"] == 2 and deleted["deleted"]["notes"] >= 1
    assert deleted["deleted"]["stored_answers"] == 2
    after = client.get(f"/v1/users/{user}/export").json()
    assert after["conversations"] == [] and after["notes"] == [] and after["preferences"] == {}
    recall = client.post("/v1/chat", json={"text": "What is my locker code?", "user_id": user, "trace": True}).json()
    assert marker not in recall["reply"] and recall["trace"]["notes_consulted"] == 0
    for db in (graph.settings.history_db, graph.settings.notes_db, graph.settings.requests_db):
        assert marker.encode() not in _file_bytes(db), db  # overwritten on disk, not only unlinked from the index


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/v1/conversations/..%2F..%2Fetc"), ("DELETE", "/v1/users/robert');DROP TABLE turns;--"),
    ("GET", "/v1/users/" + "x" * 300 + "/export"), ("DELETE", "/v1/conversations/c1?user_id=a%20b"),
])
def test_hostile_ids_on_the_data_routes(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code in (404, 422), response.text
    assert client.get("/healthz").json()["status"] == "ok"


def test_in_a_group_no_private_data_reaches_the_answer(client: httpx.Client) -> None:
    user = "discord:9001"
    client.post("/v1/chat", json={"text": "Remember that my passport number is X1234567.", "user_id": user})
    group = client.post("/v1/chat", json={"text": "What is my passport number? Check my notes.", "user_id": user,
                                          "private": False, "trace": True}).json()
    assert "X1234567" not in group["reply"] and group["trace"]["notes_consulted"] == 0
    assert all(call["tool"] not in ("recall_notes", "search_conversations", "run_python")
               for call in group["trace"]["tool_calls"])
    alone = client.post("/v1/chat", json={"text": "What is my passport number?", "user_id": user, "trace": True}).json()
    assert alone["trace"]["notes_consulted"] >= 1


def test_a_stream_holds_its_admission_slot_until_it_ends(graph, question: bytes) -> None:
    app = create_api(graph.settings.model_copy(update={"max_inflight_requests": 1}), real_pipeline())
    with served(app) as url, httpx.Client(base_url=url, headers=graph.headers, timeout=120) as http:
        with http.stream("POST", "/v1/voice/stream", files={"audio": ("q.ogg", question, "audio/ogg")}) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: transcript"
            assert http.post("/v1/chat", json={"text": "hi"}).status_code == 503
            events = [line for line in lines if line.startswith("event: ")]
        assert events[-1] == "event: done"
        deadline = time.monotonic() + 10  # the slot is given back just after the last byte
        while True:
            with http.stream("POST", "/v1/voice/stream", files={"audio": ("q.ogg", question, "audio/ogg")}) as stream:
                if stream.status_code == 503 and time.monotonic() < deadline:
                    continue
                assert next(stream.iter_lines()) == "event: transcript"  # then the client goes away mid-stream
                break
        deadline = time.monotonic() + 60
        while (status := http.post("/v1/chat", json={"text": "hi"}).status_code) == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 200  # the slot came back once the abandoned stream was cancelled


def test_health_is_answered_while_every_transcriber_is_busy(graph) -> None:
    long_question = say("Tell me, in a few words, " + "what the weather is like in spring and in autumn, " * 3)

    async def main() -> tuple[list[int], list[tuple[int, int]]]:
        async with httpx.AsyncClient(base_url=graph.url, headers=graph.headers, timeout=300) as http:
            async def transcribe() -> int:
                files = {"file": ("q.ogg", long_question, "audio/ogg")}
                return (await http.post("/v1/audio/transcriptions", files=files)).status_code

            work = [asyncio.create_task(transcribe()) for _ in range(8)]
            await asyncio.sleep(0.5)
            probes = []  # (status, transcriptions still running when it was answered)
            for _ in range(3):
                response = await http.get("/healthz")
                probes.append((response.status_code, sum(not task.done() for task in work)))
            return await asyncio.gather(*work), probes

    statuses, probes = asyncio.run(main())
    assert statuses == [200] * 8
    assert all(status == 200 and running > 0 for status, running in probes), probes  # answered, not queued


def test_nothing_a_user_says_reaches_the_logs_and_the_logs_are_json(client: httpx.Client, graph) -> None:
    import ray

    marker = "xylophone-cassowary-31337"
    assert client.post("/v1/chat", json={"text": f"Please repeat {marker} back to me."}).status_code == 200
    time.sleep(2)  # log files are flushed by their writers
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    leaked = [path.name for path in logs.rglob("*") if path.is_file()
              and (marker.encode() in (text := path.read_bytes()) or graph.key.encode() in text)]
    assert leaked == []  # neither what users say nor the owner key
    serve_lines = [line for path in (logs / "serve").glob("*.log") for line in path.read_text().splitlines() if line]
    assert serve_lines and all(isinstance(json.loads(line), dict) for line in serve_lines)


def test_stores_keep_no_readable_copy_after_a_conversation_reset(graph, client: httpx.Client) -> None:
    marker = "wombatlantern"
    client.post("/v1/chat", json={"text": f"My code word is {marker}.", "user_id": "reset-user", "conversation_id": "z"})
    client.delete("/v1/conversations/z", params={"user_id": "reset-user"})
    with sqlite3.connect(graph.settings.history_db) as db:
        assert db.execute("SELECT COUNT(*) FROM turns WHERE content LIKE ?", (f"%{marker}%",)).fetchone()[0] == 0
    assert marker.encode() not in _file_bytes(graph.settings.history_db)
