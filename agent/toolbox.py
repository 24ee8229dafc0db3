"""June's standard set of tools, assembled over the stores they read and write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent.stores import Stores
from agent.tools.base import Tool
from agent.tools.calculator import calculator
from agent.tools.clock import make_clock_tools, utc_now
from agent.tools.memory import make_memory_tools
from agent.tools.python import make_python_tool
from agent.tools.reminders import make_reminder_tools
from agent.tools.units import unit_converter


def build_tools(stores: Stores, now: Callable[[], datetime] = utc_now) -> list[Tool]:
    """Memory tools, reminder lists and programs are private: only offered where the answer reaches the user alone."""
    memory = [replace(tool, private=True) for tool in make_memory_tools(stores.notes, stores.history, stores.pending)]
    reminders = [replace(tool, private=tool.name != "set_reminder")
                 for tool in make_reminder_tools(stores.reminders, stores.pending, now)]
    return [calculator, unit_converter, *make_clock_tools(stores.preferences, now), *memory, *reminders,
            replace(make_python_tool(), private=True, runs_code=True)]
