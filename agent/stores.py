"""Everything June keeps per user, opened together: history, notes, pending questions, preferences, reminders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.confirmations import PendingActions
from agent.history import ConversationStore
from agent.notes import NoteStore
from agent.preferences import UserPreferences
from agent.reminders import ReminderStore


@dataclass(frozen=True)
class Stores:
    history: ConversationStore
    notes: NoteStore
    pending: PendingActions
    preferences: UserPreferences
    reminders: ReminderStore

    def close(self) -> None:
        for store in (self.history, self.notes, self.pending, self.preferences, self.reminders):
            store.close()

    def forget_conversation(self, user_id: str, conversation_id: str) -> int:
        self.pending.forget(user_id, conversation_id)
        return self.history.forget(user_id, conversation_id)

    def forget_user(self, user_id: str) -> dict[str, int]:
        """Delete everything kept about this user; how many rows of each kind went."""
        pending, preferences = self.pending.forget(user_id), self.preferences.forget_user(user_id)
        reminders = self.reminders.forget_user(user_id)
        notes = self.notes.forget_user(user_id)  # last: it empties the log these three share
        return {"turns": self.history.forget_user(user_id), "notes": notes, "pending_actions": pending,
                "preferences": preferences, "reminders": reminders}

    def export(self, user_id: str) -> dict[str, Any]:
        return {"conversations": self.history.export(user_id), "notes": self.notes.export(user_id),
                "preferences": self.preferences.export(user_id), "reminders": self.reminders.export(user_id)}

    @classmethod
    def open(cls, history_db: Path, notes_db: Path, reminders_db: Path | None = None) -> Stores:
        """Conversations in one SQLite file; notes, pending actions and preferences in another; reminders in the
        Messenger's file (its `messages.sqlite3` beside the notes unless given)."""
        return cls(ConversationStore(history_db), NoteStore(notes_db), PendingActions(notes_db),
                   UserPreferences(notes_db), ReminderStore(reminders_db or notes_db.with_name("messages.sqlite3")))
