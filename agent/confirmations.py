"""Actions that wait for the user's yes, one per conversation, kept in SQLite so a restart does not lose them."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.sqlite import open_store, transaction
from common.store_files import NOTES
from agent.tools.base import ConfirmationNeeded

MAX_AGE_S = 600.0
CLARIFY = "clarify"  # a question back; the answer is put into `payload["resume"]` and answered as a new request
_YES = re.compile(r"^\s*(?:yes|yeah|yep|yup|sure|ok(?:ay)?|confirm(?:ed)?|do it|go ahead|please do|"
                  r"correct|that's right|delete (?:it|them))\b[\s\w,'!.]*$", re.I)
_NO = re.compile(r"^\s*(?:no|nope|nah|cancel|stop|don't|do not|never ?mind|keep (?:it|them))\b", re.I)


@dataclass(frozen=True)
class PendingAction:
    action: str
    payload: dict[str, Any]
    question: str


def ask_back(pending: PendingActions, user_id: str, conversation_id: str | None, question: str,
             resume: str) -> ConfirmationNeeded:
    """Keep a question back for this conversation; `resume` holds `{answer}`, where the user's reply goes."""
    pending.ask(user_id, conversation_id, CLARIFY, {"resume": resume}, question)
    return ConfirmationNeeded(question)


def resumed(payload: dict[str, Any], answer: str) -> str:
    return str(payload["resume"]).replace("{answer}", answer.strip().rstrip(".!"))


def answer_to(text: str) -> str | None:
    """'yes', 'no', or None when the text is neither (a new request)."""
    if _NO.match(text):
        return "no"
    if _YES.match(text) and len(text.split()) <= 8:
        return "yes"
    return None


class PendingActions:
    """At most one pending action per (user, conversation); it expires after MAX_AGE_S."""

    def __init__(self, path: Path, clock=time.time):
        self._lock = threading.Lock()
        self._db = open_store(path, NOTES)
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    def ask(self, user_id: str, conversation_id: str | None, action: str, payload: dict[str, Any],
            question: str) -> None:
        with self._lock, transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO pending_actions VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, conversation_id or "", action, json.dumps(payload), question, self._clock()))

    def forget(self, user_id: str, conversation_id: str | None = None) -> int:
        """Drop this user's pending actions: those of one conversation, or all of them."""
        sql, args = "DELETE FROM pending_actions WHERE user_id = ?", [user_id]
        if conversation_id is not None:
            sql, args = sql + " AND conversation_id = ?", [user_id, conversation_id]
        with self._lock, transaction(self._db):
            return self._db.execute(sql, args).rowcount

    def waiting(self, user_id: str, conversation_id: str | None) -> bool:
        """Whether an action waits for this conversation's next message, without taking it."""
        with self._lock:
            return self._unexpired((user_id, conversation_id or "")) is not None

    def take(self, user_id: str, conversation_id: str | None) -> PendingAction | None:
        """The pending action, removed: it is answered (or dropped) by the message that reads it."""
        key = (user_id, conversation_id or "")
        with self._lock, transaction(self._db):
            row = self._unexpired(key)
            self._db.execute("DELETE FROM pending_actions WHERE user_id = ? AND conversation_id = ?", key)
        return None if row is None else PendingAction(row[0], json.loads(row[1]), row[2])

    def _unexpired(self, key: tuple[str, str]) -> tuple[Any, ...] | None:
        row = self._db.execute("SELECT action, payload, question, created_at FROM pending_actions "
                               "WHERE user_id = ? AND conversation_id = ?", key).fetchone()
        return row if row is not None and self._clock() - row[3] <= MAX_AGE_S else None
