"""Each tool on its own: schemas, results, refusals, and per-user isolation."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.history import ConversationStore
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.toolcalls import calls_in_text
from agent.tools.base import ConfirmationNeeded, ToolContext, ToolError
from agent.tools.calculator import calculator, evaluate
from agent.tools.clock import make_clock_tools
from agent.tools.memory import make_memory_tools
from agent.tools.units import convert, unit_converter
from speech.spoken import for_speech

ALICE, BOB = ToolContext("alice", "c"), ToolContext("bob", "c")


@pytest.mark.parametrize(("expression", "value"), [
    ("2 + 3 * 4", 14), ("(12.5 * 4) / 3", 50 / 3), ("2^10", 1024), ("sqrt(81)", 9), ("-3 ** 2", -9),
    ("1,000 + 1", 1001), ("round(2.567, 2)", 2.57), ("pi * 2", 6.283185307179586), ("7 // 2 + 7 % 2", 4),
])
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize("hostile", [
    "__import__('os').system('ls')", "().__class__.__bases__", "open('/etc/passwd')", "9 ** 9 ** 9",
    "10 ** 1000 * 10 ** 1000", "lambda: 1", "[1] * 10", "x + 1", "2 +", "a" * 400, "sqrt(-1)",
])
def test_calculator_refuses_everything_else(hostile: str) -> None:
    with pytest.raises(ToolError):
        evaluate(hostile)


def test_calculator_formats_whole_numbers_plainly() -> None:
    assert calculator.run({"expression": "0.5 * 8"}, ALICE) == "4"
    assert calculator.run({"expression": "1 / 3"}, ALICE) == "0.3333333333"


@pytest.mark.parametrize(("expression", "result"), [
    ("17:15 - 9:30", "7:45 (7 hours 45 minutes)"), ("(10:00 - 8:30) * 2", "3:00 (3 hours 0 minutes)"),
    ("9:30 - 17:15", "-7:45 (-7 hours 45 minutes)"), ("7:45 pm + 2:20", "22:05 (10:05 PM)"),
    ("11:30 p.m. + 1:00", "0:30 (12:30 AM)"), ("6:40 PM - 2:00", "16:40 (4:40 PM)"),
])
def test_calculator_takes_clock_times_and_durations_as_hours_and_minutes(expression: str, result: str) -> None:
    assert calculator.run({"expression": expression}, ALICE) == result
    with pytest.raises(ToolError):
        calculator.run({"expression": "25:99 + 1"}, ALICE)


def test_no_tool_description_holds_a_worked_sum_to_copy(tmp_path: Path) -> None:
    """The 1.5B copied the calculator's worked example, "(2 + 3) * 4", for "add the two numbers you just gave me"."""
    for tool in build_tools(Stores.open(tmp_path / "history.db", tmp_path / "notes.db")):
        assert not re.search(r"\d\s*[-+*/%]\s*[\d(]", tool.description), tool.name


def test_tool_arguments_are_validated_against_the_schema() -> None:
    with pytest.raises(ToolError, match="'expression' is a required property"):
        calculator.validate({})
    with pytest.raises(ToolError, match="Additional properties"):
        calculator.validate({"expression": "1", "shell": "rm -rf /"})
    with pytest.raises(ToolError, match="JSON object"):
        calculator.validate(["1+1"])


def test_clock_uses_time_zones_and_city_names() -> None:
    moment = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)
    current_time, convert_time = make_clock_tools(now=lambda: moment)
    tokyo = current_time.run({"timezone": "Tokyo"}, ALICE)
    assert tokyo == "Wednesday 25 November 2026, 00:30 (12:30 AM, Asia/Tokyo, UTC+0900)"
    assert current_time.run({}, ALICE).startswith("Tuesday 24 November 2026, 15:30 (3:30 PM, UTC")
    assert current_time.run({"timezone": "Kolkata"}, ALICE).endswith("(9:00 PM, Asia/Kolkata, UTC+0530)")
    summer = convert_time.run({"time": "2026-07-01T09:00", "from_timezone": "New York", "to_timezone": "Paris"}, ALICE)
    assert summer == "Wednesday 01 July 2026, 15:00 (Europe/Paris)"
    with pytest.raises(ToolError, match="unknown time zone"):
        current_time.run({"timezone": "Atlantis"}, ALICE)
    with pytest.raises(ToolError, match="ISO time"):
        convert_time.run({"time": "teatime", "from_timezone": "UTC", "to_timezone": "UTC"}, ALICE)


@pytest.mark.parametrize(("value", "source", "target", "expected"), [
    (5, "miles", "km", 8.04672), (100, "fahrenheit", "celsius", 37.7778), (0, "C", "K", 273.15),
    (10, "kg", "pounds", 22.0462), (1, "GiB", "MB", 1073.741824), (60, "mph", "km/h", 96.5606),
    (2, "cups", "ml", 473.176), (32, "degrees_fahrenheit", "Kelvin", 273.15), (20, "Degrees C", "F", 68),
    (100, "kilometers per hour", "miles_per_hour", 62.1371),
])
def test_unit_conversions(value: float, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target) == pytest.approx(expected, rel=1e-4)


def test_incompatible_or_unknown_units_are_refused() -> None:
    with pytest.raises(ToolError, match="cannot convert"):
        convert(1, "kg", "km")
    with pytest.raises(ToolError, match="unknown unit"):
        unit_converter.run({"value": 1, "from_unit": "furlongs", "to_unit": "m"}, ALICE)
    with pytest.raises(ToolError, match="unknown unit"):
        convert(1, "degrees", "radians")


def memory_tools(tmp_path: Path, history: ConversationStore | None = None) -> list:
    stores = Stores.open(tmp_path / "h.db", tmp_path / "n.db")
    return make_memory_tools(stores.notes, history or stores.history, stores.pending)


def test_notes_are_per_user_and_forgetting_asks_first(tmp_path: Path) -> None:
    remember, recall, forget, _ = memory_tools(tmp_path)
    remember.run({"text": "The wifi password is hunter2"}, ALICE)
    remember.run({"text": "Bob's bike lock is 1234"}, BOB)
    assert recall.run({"query": "wifi"}, ALICE) == "- The wifi password is hunter2"
    assert recall.run({"query": "wifi"}, BOB) == "No matching notes."
    assert "hunter2" not in recall.run({}, BOB)
    assert forget.run({"query": "wifi"}, BOB) == "No note matches 'wifi'; nothing was deleted."
    with pytest.raises(ConfirmationNeeded, match="The wifi password is hunter2"):
        forget.run({"query": "wifi"}, ALICE)
    assert recall.run({}, ALICE) == "- The wifi password is hunter2"


def test_conversation_search_sees_only_the_users_own_history(tmp_path: Path) -> None:
    history = ConversationStore(tmp_path / "h.db")
    history.append("alice", "c1", "I love hiking in the Alps", "Sounds lovely!")
    history.append("bob", "c1", "My hiking boots are broken", "Oh no.")
    *_, search = memory_tools(tmp_path, history)
    assert search.run({"query": "hiking"}, ALICE) == "user: I love hiking in the Alps"
    assert "Alps" not in search.run({"query": "hiking"}, BOB)


def test_speech_rewrite_reads_naturally() -> None:
    assert for_speech("**Total:** 12 * 7 = 84 km") == "Total: 12 times 7 is 84 kilometres"
    assert for_speech("Use `pip`:\n```bash\npip install june\n```") == "Use pip: I've put the code in the written reply."
    assert for_speech("- 50% of 1,000 is 500\n- It's 21°C") == "50 percent of 1000 is 500\nIt's 21 degrees Celsius"
    assert for_speech("See [the docs](https://x.y/z) or https://a.b") == "See the docs or the link in the written reply"


def test_templated_answers_read_as_words() -> None:
    assert for_speech("(99^2) = 9801.") == "(99 to the power of 2) is 9801."
    assert for_speech("sqrt(169) = 13.") == "the square root of 169 is 13."


@pytest.mark.parametrize(("text", "calls"), [
    ('{"name": "calculator", "arguments": {"expression": "2+2"}}', [("calculator", {"expression": "2+2"})]),
    ('<tool_call>\n{"name": "current_time", "arguments": {}}\n</tool_call>', [("current_time", {})]),
    ('```json\n{"name": "teleport", "arguments": {"to": "Mars"}}\n```', [("teleport", {"to": "Mars"})]),
    ('The JSON is {"name": "calculator", "arguments": {}}', []),  # quoted inside an answer: not a call
    ('{"name": "Ada", "age": 36}', []),  # JSON, but not a call
    ("Mars is the red planet.", []),
])
def test_tool_calls_written_as_text_are_recognised(text: str, calls: list) -> None:
    assert [(c.name, c.arguments) for c in calls_in_text(text)] == calls


def test_relevant_notes_are_found_by_stemmed_words_per_user(tmp_path: Path) -> None:
    notes = Stores.open(tmp_path / "h.db", tmp_path / "n.db").notes
    notes.remember("alice", "my locker code is 4711")
    notes.remember("alice", "the dentist appointment is on Friday")
    notes.remember("bob", "my locker code is 1234")
    assert [n.text for n in notes.relevant("alice", "What were my locker codes again?")] == ["my locker code is 4711"]
    assert notes.relevant("alice", "what is it?") == []  # nothing but stopwords
    assert notes.relevant("carol", "locker code") == []
