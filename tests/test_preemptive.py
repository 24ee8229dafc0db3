"""A preemptive request (asked at a pause, before the user's turn is final) runs no tool that changes what June keeps:
the executor refuses it in one place, whichever route asked for the tool."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.executor import AgentLimits, Budget, ToolExecutor
from agent.plan import Step
from agent.stores import Stores
from agent.toolbox import build_tools
from agent.tools.base import ChangeDeferred, ToolContext
from common.types import Trace

USER = "web:preemptive"
WRITES = {"remember_note": {"text": "the locker code is 4271"}, "set_reminder": {"when": "in 20 minutes", "text": "oven"},
          "set_timezone": {"timezone": "Europe/Paris"}}


@pytest.fixture()
def stores(tmp_path: Path) -> Stores:
    return Stores.open(tmp_path / "turns.db", tmp_path / "notes.db")


def run(stores: Stores, name: str, arguments: dict, preemptive: bool) -> tuple[str, str]:
    tool = {tool.name: tool for tool in build_tools(stores)}[name]
    context = ToolContext(USER, "c1", preemptive=preemptive)
    executor = ToolExecutor(1, time.monotonic)
    return asyncio.run(executor.run(Step("s1", name, arguments), arguments, tool, context,
                                    Budget(AgentLimits(), time.monotonic), Trace()))


def test_the_tools_that_write_are_the_ones_marked_as_changing_state(stores: Stores) -> None:
    marked = {tool.name for tool in build_tools(stores) if tool.changes_state}
    assert marked == {"remember_note", "forget_notes", "set_reminder", "cancel_reminder", "set_timezone"}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_preemptive_request_does_not_run_a_tool_that_writes(stores: Stores, name: str) -> None:
    with pytest.raises(ChangeDeferred) as deferred:
        run(stores, name, WRITES[name], preemptive=True)
    assert deferred.value.tool == name
    assert stores.export(USER) == {"conversations": [], "notes": [], "preferences": {}, "reminders": []}
    assert run(stores, name, WRITES[name], preemptive=False)[0] == "ok"  # the final turn's request runs it
    assert stores.export(USER) != {"conversations": [], "notes": [], "preferences": {}, "reminders": []}


def test_a_preemptive_request_runs_tools_that_only_read_or_compute(stores: Stores) -> None:
    assert run(stores, "calculator", {"expression": "12*7"}, preemptive=True) == ("ok", "84")
    assert run(stores, "recall_notes", {}, preemptive=True)[0] == "ok"
