"""June's standard set of tools, assembled over the stores they read and write."""

from __future__ import annotations

from agent.history import ConversationStore
from agent.notes import NoteStore
from agent.tools.base import Tool
from agent.tools.calculator import calculator
from agent.tools.clock import make_clock_tools
from agent.tools.memory import make_memory_tools
from agent.tools.python import make_python_tool
from agent.tools.units import unit_converter


def build_tools(notes: NoteStore, history: ConversationStore) -> list[Tool]:
    return [calculator, unit_converter, *make_clock_tools(), *make_memory_tools(notes, history), make_python_tool()]
