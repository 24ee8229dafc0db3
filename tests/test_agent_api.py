"""The agent inside the real graph, with the embedded SmolLM2: structure, not wording, is asserted."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.speech import say


def chat(client: httpx.Client, text: str, **fields) -> dict:
    response = client.post("/v1/chat", json={"text": text, "trace": True, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_arithmetic_is_computed_by_the_calculator(client: httpx.Client) -> None:
    body = chat(client, "What is 12 times 7?")
    trace = body["trace"]
    assert trace["route"] == "rules" and trace["route_reasons"] == ["contains arithmetic (12 * 7)"]
    assert [(c["tool"], c["status"], c["result"]) for c in trace["tool_calls"]] == [("calculator", "ok", "84")]
    assert "84" in body["reply"]
    assert trace["verdict"] == "answered" and trace["reflections"]


def test_an_answer_is_stored_with_the_tool_calls_behind_it(client: httpx.Client) -> None:
    """The conversation keeps the calculator's call and result for the next turn; the conversation route shows
    what was said, and the user's export holds both."""
    chat(client, "What is 48 plus 76?", conversation_id="tools-kept", user_id="tools-kept-user")
    turns = client.get("/v1/conversations/tools-kept", params={"user_id": "tools-kept-user"}).json()["turns"]
    assert [turn["role"] for turn in turns] == ["user", "assistant"] and set(turns[1]) == {"role", "content"}
    exported = client.get("/v1/users/tools-kept-user/export").json()["conversations"]
    [answer] = [turn for turn in exported[0]["turns"] if turn["role"] == "assistant"]
    assert answer["tool_calls"] == [{"tool": "calculator", "arguments": {"expression": "48 + 76"}, "result": "124"}]


def test_time_question_uses_the_clock(client: httpx.Client) -> None:
    trace = chat(client, "What time is it in Tokyo?")["trace"]
    [call] = trace["tool_calls"]
    assert call["tool"] == "current_time" and call["status"] == "ok" and "Asia/Tokyo" in call["result"]


def test_unit_conversion_end_to_end(client: httpx.Client) -> None:
    body = chat(client, "Convert 5 miles to km")
    assert body["trace"]["tool_calls"][0]["result"] == "8.04672 km"
    assert "8.04672" in body["reply"]


def test_small_talk_takes_the_fast_path(client: httpx.Client) -> None:
    body = chat(client, "Hello June!")
    assert body["reply"] and body["trace"]["route"] == "fast" and body["trace"]["llm_calls"] == 1
    assert body["trace"]["tool_calls"] == []


def test_the_stream_ends_with_the_trace_when_asked(client: httpx.Client) -> None:
    def done(trace: bool) -> dict:
        with client.stream("POST", "/v1/chat/stream", json={"text": "What is 12 times 7?", "trace": trace}) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        return json.loads(lines[-1].removeprefix("data: "))

    traced = done(True)
    assert traced["trace"]["route"] == "rules" and traced["trace"]["llm_calls"] == 0 and "84" in traced["reply"]
    assert "trace" not in done(False)


def test_trace_only_when_asked(client: httpx.Client) -> None:
    assert client.post("/v1/chat", json={"text": "What is 2 plus 2?"}).json()["trace"] is None


def test_saved_notes_reach_the_model_in_another_conversation_without_recall(client: httpx.Client) -> None:
    chat(client, "Keep in mind that my gym locker code is 5150.", user_id="priya", conversation_id="monday")
    asked = chat(client, "What's my gym locker code again?", user_id="priya", conversation_id="friday")
    assert asked["trace"]["notes_consulted"] == 1
    stranger = chat(client, "What's my gym locker code again?", user_id="someone-else", conversation_id="friday")
    assert stranger["trace"]["notes_consulted"] == 0 and "5150" not in stranger["reply"]


def test_forgetting_names_the_note_and_waits_for_a_yes(client: httpx.Client) -> None:
    chat(client, "Remember that the spare key is under the blue pot.", user_id="sam", conversation_id="k")
    chat(client, "Forget it.", user_id="sam", conversation_id="k")
    asked = chat(client, "Forget the note about the spare key", user_id="sam", conversation_id="k")
    assert "spare key is under the blue pot" in asked["reply"]  # "Forget it." deleted nothing
    assert asked["trace"]["tool_calls"][0]["status"] == "needs-confirmation"
    done = chat(client, "yes", user_id="sam", conversation_id="k")
    assert done["trace"]["route"] == "confirmation" and "deleted" in done["reply"]
    recalled = chat(client, "What notes do I have?", user_id="sam", conversation_id="k")
    assert recalled["trace"]["notes_consulted"] == 0 and "blue pot" not in recalled["reply"]


def test_notes_are_remembered_and_recalled_per_user(client: httpx.Client) -> None:
    chat(client, "Remember that my locker code is 4312.", user_id="nora")
    mine = chat(client, "What did I ask you to remember about my locker?", user_id="nora")
    assert "4312" in mine["trace"]["tool_calls"][0]["result"]
    theirs = chat(client, "What did I ask you to remember about my locker?", user_id="otto")
    assert theirs["trace"]["tool_calls"][0]["result"] == "No matching notes."
    assert "4312" not in theirs["reply"]


def test_spoken_arithmetic_with_trace(client: httpx.Client) -> None:
    response = client.post("/v1/voice", files={"audio": ("q.ogg", say("What is 12 times 7?"), "audio/ogg")},
                           data={"trace": "true"})
    body = response.json()
    assert body["trace"]["tool_calls"][0]["tool"] == "calculator"
    assert "84" in body["reply"]


HOSTILE_PROGRAMS = {
    "infinite loop": "while True:\n    pass",
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "memory hog": "hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))",
    "write outside the temp dir": "open('/etc/june-was-here', 'w').write('x')",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)",
}


@pytest.mark.parametrize("name", list(HOSTILE_PROGRAMS))
def test_hostile_python_is_contained_and_reported_as_a_tool_error(client: httpx.Client, name: str) -> None:
    body = chat(client, f"Please run this:\n```python\n{HOSTILE_PROGRAMS[name]}\n```")
    [call] = body["trace"]["tool_calls"][:1]
    assert call["tool"] == "run_python" and call["status"] == "error", call
    assert client.get("/healthz").json()["status"] == "ok"


def test_python_cannot_read_another_users_notes(client: httpx.Client, graph) -> None:
    chat(client, "Remember that my bank PIN is 9876.", user_id="victim")
    program = (f"import sqlite3\nrows = sqlite3.connect('{graph.settings.notes_db}').execute('select text from notes')"
               ".fetchall()\nprint(rows)")
    body = chat(client, f"Run this:\n```python\n{program}\n```", user_id="attacker")
    call = body["trace"]["tool_calls"][0]
    assert "9876" not in call["result"] and "9876" not in body["reply"]


def test_python_runs_ordinary_programs(client: httpx.Client) -> None:
    body = chat(client, "Run this:\n```python\nprint(sum(range(101)))\n```")
    assert body["trace"]["tool_calls"][0]["result"] == "5050"
