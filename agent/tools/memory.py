"""Tools over what June keeps per user: notes, and the user's own conversation history."""

from __future__ import annotations

import re
from typing import Any

from agent.confirmations import PendingActions
from agent.history import ConversationStore
from agent.notes import NoteStore, content_words
from agent.tools.base import ConfirmationNeeded, NothingFound, Recognised, Rule, Tool, ToolContext, object_schema
from agent.tools.signals import words

MEMORY_SIGNALS = words(r"remember|notes?|noted|recall|keep in mind|don't forget|do not forget|write (?:it |that )?down")

DELETE_NOTES = "delete_notes"
MAX_LISTED = 5


_REMEMBER = re.compile(r"^\s*(?:(?:please|hey june|june|ok|okay),?\s+)?(?:remember|note|make a note|save a note|"
                       r"keep in mind|don't forget|do not forget|write down)(?: that|:)?\s+(.+)", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget(?: the note| my note| notes?)?(?: about| that)?\s+(.+?)[.!]*$", re.I)
_RECALL = re.compile(r"\b(?:what (?:did|do) (?:i|you) (?:ask you to )?remember|recall|my notes?|"
                     r"what notes (?:do|did) (?:i|you) (?:have|keep|save)|what notes)\b"
                     r"(?:.*?\babout\s+(.+?))?[?.!]*$", re.I)
_SEARCH = re.compile(r"\b(?:did (?:i|we) (?:talk|speak|say|mention)|what did (?:i|we) (?:say|talk about))\b"
                     r"(?:.*?\babout\s+(.+?))?[?.!]*$", re.I)


def _recognise_remember(text: str) -> Recognised | None:
    if match := _REMEMBER.match(text):
        return Recognised("asks June to remember something", ({"text": match[1].strip().rstrip(".")},))
    return None


def _recognise_forget(text: str) -> Recognised | None:
    """"forget about the wifi": only with words to find the notes by ("forget it" is not a request to delete)."""
    if (match := _FORGET.match(text)) and content_words(match[1]):
        return Recognised("asks June to forget a note (June names it and waits for a yes)",
                          ({"query": match[1].strip()},))
    return None


def _recognise_recall(text: str) -> Recognised | None:
    if match := _RECALL.search(text):
        query = (match[1] or "").strip()
        return Recognised("asks for saved notes", ({"query": query} if query else {},))
    return None


def _recognise_search(text: str) -> Recognised | None:
    if (match := _SEARCH.search(text)) and match[1]:
        return Recognised("asks about earlier conversations", ({"query": match[1].strip()},))
    return None


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
             object_schema({"text": text}, ["text"]), remember, signals=MEMORY_SIGNALS,
             rule=Rule(_recognise_remember, "command", rank=50), changes_state=True),
        Tool("recall_notes", "Find this user's saved notes about the given words (all notes when empty).",
             object_schema({"query": {"type": "string", "maxLength": 200}}, []), recall, signals=MEMORY_SIGNALS,
             rule=Rule(_recognise_recall, "command", rank=80)),
        Tool("forget_notes", "Delete this user's notes about the given words (June asks the user to confirm first).",
             object_schema({"query": text}, ["query"]), forget,
             signals=words(r"(?:forget|delete) (?:the |my |about (?:the |my )?)?notes?"),
             rule=Rule(_recognise_forget, "command", rank=60), changes_state=True),
        Tool("search_conversations", "Search this user's earlier conversations for the given words.",
             object_schema({"query": text}, ["query"]), search_conversations,
             signals=words(r"did (?:i|we) (?:talk|speak|say|mention|tell)|what did (?:i|we) (?:say|talk about)|"
                           r"(?:earlier|last|other|previous) (?:conversations?|chats?)|i told you"),
             rule=Rule(_recognise_search, "command", rank=90)),
    ]


def delete_confirmed(notes: NoteStore, user_id: str, payload: dict[str, Any]) -> str:
    """Carry out a deletion the user said yes to: exactly the notes that were named."""
    ids = [int(i) for i in payload.get("ids", [])]
    named = notes.get(user_id, ids)
    deleted = notes.delete(user_id, [n.id for n in named])
    if not deleted:
        return "Those notes were already gone; nothing was deleted."
    return f"Done, I deleted {'the note' if deleted == 1 else f'{deleted} notes'}: {_quoted([n.text for n in named])}."
