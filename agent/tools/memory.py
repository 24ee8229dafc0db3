"""Tools over what June keeps per user: notes, and the user's own conversation history."""

from __future__ import annotations

from typing import Any

from agent.confirmations import PendingActions
from agent.history import ConversationStore
from agent.notes import NoteStore
from agent.tools.base import ConfirmationNeeded, NothingFound, Tool, ToolContext, object_schema
from agent.tools.signals import words

MEMORY_SIGNALS = words(r"remember|notes?|noted|recall|keep in mind|don't forget|do not forget|write (?:it |that )?down")

DELETE_NOTES = "delete_notes"
MAX_LISTED = 5


def _quoted(texts: list[str]) -> str:
    return "; ".join(f"“{text}”" for text in texts)


def make_memory_tools(notes: NoteStore, history: ConversationStore, pending: PendingActions) -> list[Tool]:
    def remember(arguments: dict[str, Any], context: ToolContext) -> str:
        note = notes.remember(context.user_id, arguments["text"])
        return f"Remembered: {note.text}"

    def recall(arguments: dict[str, Any], context: ToolContext) -> str:
        query = arguments.get("query", "")
        found = notes.relevant(context.user_id, query) if query.strip() else notes.recall(context.user_id)
        if not found:
            return NothingFound("No matching notes." if query.strip() else "You have no saved notes.")
        return "\n".join(f"- {note.text}" for note in found)

    def forget(arguments: dict[str, Any], context: ToolContext) -> str:
        """Nothing is deleted here: the matching notes are named and the user's yes deletes exactly those."""
        found = notes.relevant(context.user_id, arguments["query"], limit=MAX_LISTED)
        if not found:
            return NothingFound(f"No note matches {arguments['query']!r}; nothing was deleted.")
        which = "this note" if len(found) == 1 else f"these {len(found)} notes"
        question = f"Should I delete {which}: {_quoted([n.text for n in found])}? Say yes to delete, or no to keep."
        pending.ask(context.user_id, context.conversation_id, DELETE_NOTES, {"ids": [n.id for n in found]}, question)
        raise ConfirmationNeeded(question)

    def search_conversations(arguments: dict[str, Any], context: ToolContext) -> str:
        found = history.search(context.user_id, arguments["query"])
        return "\n".join(f"{turn.role}: {turn.content[:200]}" for turn in found) if found else "Nothing found."

    text = {"type": "string", "minLength": 1, "maxLength": 2000}
    return [
        Tool("remember_note", "Save a note for this user to recall later (facts, codes, dates they ask you to keep).",
             object_schema({"text": text}, ["text"]), remember, signals=MEMORY_SIGNALS),
        Tool("recall_notes", "Find this user's saved notes about the given words (all notes when empty).",
             object_schema({"query": {"type": "string", "maxLength": 200}}, []), recall, signals=MEMORY_SIGNALS),
        Tool("forget_notes", "Delete this user's notes about the given words (June asks the user to confirm first).",
             object_schema({"query": text}, ["query"]), forget,
             signals=words(r"(?:forget|delete) (?:the |my |about (?:the |my )?)?notes?")),
        Tool("search_conversations", "Search this user's earlier conversations for the given words.",
             object_schema({"query": text}, ["query"]), search_conversations,
             signals=words(r"did (?:i|we) (?:talk|speak|say|mention|tell)|what did (?:i|we) (?:say|talk about)|"
                           r"(?:earlier|last|other|previous) (?:conversations?|chats?)|i told you")),
    ]


def delete_confirmed(notes: NoteStore, user_id: str, payload: dict[str, Any]) -> str:
    """Carry out a deletion the user said yes to: exactly the notes that were named."""
    ids = [int(i) for i in payload.get("ids", [])]
    named = notes.get(user_id, ids)
    deleted = notes.delete(user_id, [n.id for n in named])
    if not deleted:
        return "Those notes were already gone; nothing was deleted."
    return f"Done, I deleted {'the note' if deleted == 1 else f'{deleted} notes'}: {_quoted([n.text for n in named])}."
