"""Tools over what June keeps per user: notes, and the user's own conversation history."""

from __future__ import annotations

from typing import Any

from agent.history import ConversationStore
from agent.notes import NoteStore
from agent.tools.base import Tool, ToolContext, object_schema


def make_memory_tools(notes: NoteStore, history: ConversationStore) -> list[Tool]:
    def remember(arguments: dict[str, Any], context: ToolContext) -> str:
        note = notes.remember(context.user_id, arguments["text"])
        return f"Remembered: {note.text}"

    def recall(arguments: dict[str, Any], context: ToolContext) -> str:
        found = notes.recall(context.user_id, arguments.get("query", ""))
        return "\n".join(f"- {note.text}" for note in found) if found else "No matching notes."

    def forget(arguments: dict[str, Any], context: ToolContext) -> str:
        removed = notes.forget(context.user_id, arguments["query"])
        return f"Forgot {removed} note{'s' if removed != 1 else ''}."

    def search_conversations(arguments: dict[str, Any], context: ToolContext) -> str:
        found = history.search(context.user_id, arguments["query"])
        return "\n".join(f"{turn.role}: {turn.content[:200]}" for turn in found) if found else "Nothing found."

    text = {"type": "string", "minLength": 1, "maxLength": 2000}
    return [
        Tool("remember_note", "Save a note for this user to recall later.", object_schema({"text": text}, ["text"]),
             remember),
        Tool("recall_notes", "Find this user's notes containing the given words (all notes when empty).",
             object_schema({"query": {"type": "string", "maxLength": 200}}, []), recall),
        Tool("forget_notes", "Delete this user's notes containing the given words.",
             object_schema({"query": text}, ["query"]), forget),
        Tool("search_conversations", "Search this user's earlier conversations for the given words.",
             object_schema({"query": text}, ["query"]), search_conversations),
    ]
