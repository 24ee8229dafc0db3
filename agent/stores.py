"""Everything June keeps per user, opened together: history, notes, pending confirmations, preferences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.confirmations import PendingActions
from agent.history import ConversationStore
from agent.notes import NoteStore
from agent.preferences import UserPreferences


@dataclass(frozen=True)
class Stores:
    history: ConversationStore
    notes: NoteStore
    pending: PendingActions
    preferences: UserPreferences

    @classmethod
    def open(cls, history_db: Path, notes_db: Path) -> Stores:
        """Conversations in one SQLite file; notes, pending actions and preferences in another."""
        return cls(ConversationStore(history_db), NoteStore(notes_db), PendingActions(notes_db),
                   UserPreferences(notes_db))
