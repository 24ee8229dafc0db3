"""Everything June keeps per user, opened together: history, notes, pending confirmations, preferences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def forget_conversation(self, user_id: str, conversation_id: str) -> int:
        self.pending.forget(user_id, conversation_id)
        return self.history.forget(user_id, conversation_id)

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept about this user; how many rows of each kind went."""
        pending, preferences = self.pending.forget(user_id), self.preferences.forget_user(user_id)
        notes = self.notes.forget_user(user_id)  # last: it empties the log these three share
        return {"turns": self.history.forget_user(user_id), "notes": notes, "pending_actions": pending,
                "preferences": preferences}

    def export(self, user_id: str) -> dict[str, Any]:
        return {"conversations": self.history.export(user_id), "notes": self.notes.export(user_id),
                "preferences": self.preferences.export(user_id)}

    @classmethod
    def open(cls, history_db: Path, notes_db: Path) -> Stores:
        """Conversations in one SQLite file; notes, pending actions and preferences in another."""
        return cls(ConversationStore(history_db), NoteStore(notes_db), PendingActions(notes_db),
                   UserPreferences(notes_db))
