"""One ledger of every message in and out, the outbox the bots deliver from, and the owner's inbox, in SQLite.

Everything that must not be lost or doubled changes in one transaction: a reminder fires and its
message is queued together; an acknowledgement marks the delivery, the message and an inbox answer
together. The bots take what is queued for their platform, deliver it, and acknowledge each item;
until then it stays queued, so a bot or graph restart delivers it later (the bot keeps which items it
already sent, so an acknowledgement lost in a crash does not send a second copy).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.sqlite import open_store, purge_wal
from common.store_files import MESSAGES
from common.timezones import next_after, zone
from common.types import REMINDER_COLUMNS, Reminder

MESSAGE_COLUMNS = ("id", "platform", "direction", "kind", "user_id", "chat_id", "conversation_id",
                   "platform_message_id", "reply_to", "text", "voice", "origin", "status", "detail", "created_at",
                   "updated_at")
DELIVERY_COLUMNS = ("id", "message_id", "action", "platform", "user_id", "chat_id", "text", "speak", "audio", "target",
                    "reply_to")
INBOX_COLUMNS = ("id", "message_id", "status", "answer_id", "detail", "created_at", "updated_at")
LATE_AFTER_S = 30.0  # a reminder fired later than this says it is late
MAX_PAGE = 200
Direction = Literal["in", "out"]


class LedgerError(Exception):
    """A request the ledger refuses; `code` is the API's error code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(status, code, message)  # all three in args: it pickles through a Ray handle
        self.status, self.code, self.message = status, code, message

    def __str__(self) -> str:
        return self.message


class LedgerMessage(BaseModel):
    """One message in the ledger, in or out; times are Unix seconds."""

    model_config = ConfigDict(frozen=True)

    id: int
    platform: str
    direction: Literal["in", "out"]
    kind: str
    user_id: str
    chat_id: str | None
    conversation_id: str | None
    platform_message_id: str | None
    reply_to: str | None
    text: str | None
    voice: bool
    origin: str = Field(description="bot (a bot's record), api (POST /v1/messages), reminder or inbox")
    status: str = Field(description="in: received/pending/answered/failed; out: queued/sent/failed")
    detail: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Delivery:
    """One thing for a bot to do: send a message, or edit one it sent (`target`)."""

    id: int
    message_id: int
    action: str
    platform: str
    user_id: str
    chat_id: str | None
    text: str | None
    speak: bool
    audio: bytes | None
    target: str | None
    reply_to: str | None


@dataclass(frozen=True)
class InboxItem:
    id: int
    message_id: int
    status: str
    answer_id: int | None
    detail: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class MessageFilter:
    platform: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    direction: Direction | None = None
    since: float | None = None
    after_id: int = 0  # the page cursor: the last id of the previous page
    limit: int = 50


def _message(row: tuple) -> LedgerMessage:
    values = dict(zip(MESSAGE_COLUMNS, row))
    return LedgerMessage(**{**values, "voice": bool(values["voice"])})


def _delivery(row: tuple) -> Delivery:
    values = dict(zip(DELIVERY_COLUMNS, row))
    return Delivery(**{**values, "speak": bool(values["speak"])})


def reminder_text(reminder: Reminder, now: float, late_after_s: float = LATE_AFTER_S) -> str:
    """What a firing reminder says; one that fires late (June was down) says when it was due."""
    said = reminder.text if reminder.timer else f"Reminder: {reminder.text}"
    if now - reminder.due_at <= late_after_s:
        return f"⏰ {said}"
    due = datetime.fromtimestamp(reminder.due_at, timezone.utc).astimezone(zone(reminder.timezone))
    return f"⏰ Late, sorry: this was due at {due:%H:%M} on {due:%A} {due.day} {due:%B}, while I was offline. {said}"


class Ledger:
    def __init__(self, path: Path, clock=time.time):
        self._lock = threading.Lock()
        self._db = open_store(path, MESSAGES)
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- the ledger -------------------------------------------------------------------------------------
    def record(self, *, platform: str, direction: Direction, kind: str, user_id: str, chat_id: str | None,
               platform_message_id: str | None, text: str | None, status: str, source: str,
               conversation_id: str | None = None, reply_to: str | None = None, voice: bool = False,
               detail: str | None = None) -> LedgerMessage:
        """A bot's record of a message in or out; the same `source` again updates the row (reports repeat)."""
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (platform, direction, kind, user_id, chat_id, conversation_id,"
                " platform_message_id, reply_to, text, voice, origin, status, detail, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'bot', ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET"
                " platform_message_id = excluded.platform_message_id, text = excluded.text, status = excluded.status,"
                " detail = excluded.detail, voice = excluded.voice, updated_at = excluded.updated_at",
                (platform, direction, kind, user_id, chat_id, conversation_id, platform_message_id, reply_to, text,
                 int(voice), status, detail, source, now, now))
            row_id = db.execute("SELECT id FROM messages WHERE source = ?", (source,)).fetchone()[0]
        return self.message(row_id)

    def message(self, message_id: int) -> LedgerMessage:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE id = ?",
                                   (message_id,)).fetchone()
        if row is None:
            raise LedgerError(404, "message_not_found", f"there is no message {message_id}")
        return _message(row)

    def messages(self, where: MessageFilter) -> list[LedgerMessage]:
        clauses, values = ["id > ?"], [where.after_id]
        for column in ("platform", "user_id", "conversation_id", "direction"):
            if (value := getattr(where, column)) is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if where.since is not None:
            clauses.append("created_at >= ?")
            values.append(where.since)
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE {' AND '.join(clauses)}"
                                    " ORDER BY id LIMIT ?", (*values, min(where.limit, MAX_PAGE))).fetchall()
        return [_message(row) for row in rows]

    def known_chat(self, platform: str, user_id: str) -> str | None:
        """The chat this user last wrote from on the platform, where a message to them goes."""
        with self._lock:
            row = self._db.execute("SELECT chat_id FROM messages WHERE platform = ? AND user_id = ? AND"
                                   " direction = 'in' AND chat_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                                   (platform, user_id)).fetchone()
        return row[0] if row else None

    def forget_user(self, user_id: str) -> int:
        """Delete the user's messages, deliveries and inbox items; the number of messages deleted."""
        with self._transaction() as db:
            db.execute("DELETE FROM inbox WHERE message_id IN (SELECT id FROM messages WHERE user_id = ?)"
                       " OR answer_id IN (SELECT id FROM messages WHERE user_id = ?)", (user_id, user_id))
            db.execute("DELETE FROM outbox WHERE user_id = ?", (user_id,))
            deleted = db.execute("DELETE FROM messages WHERE user_id = ?", (user_id,)).rowcount
        with self._lock:
            purge_wal(self._db)
        return deleted

    def export(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE user_id = ? ORDER BY id",
                                    (user_id,)).fetchall()
        return [_message(row).model_dump() for row in rows]

    # -- the outbox -------------------------------------------------------------------------------------
    def send(self, *, platform: str, user_id: str, chat_id: str | None, text: str | None, speak: bool, origin: str,
             kind: str = "text", conversation_id: str | None = None, reply_to: str | None = None) -> LedgerMessage:
        """Queue a message to a user: a ledger row (`queued`) and its delivery, together."""
        with self._transaction() as db:
            message_id = self._queue(db, platform, user_id, chat_id, text, speak, origin, kind, conversation_id,
                                     reply_to)
        return self.message(message_id)

    def _queue(self, db: sqlite3.Connection, platform: str, user_id: str, chat_id: str | None, text: str | None,
               speak: bool, origin: str, kind: str, conversation_id: str | None, reply_to: str | None) -> int:
        now = self._clock()
        message_id = db.execute(
            "INSERT INTO messages (platform, direction, kind, user_id, chat_id, conversation_id, reply_to, text, voice,"
            " origin, status, created_at, updated_at) VALUES (?, 'out', ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (platform, kind, user_id, chat_id, conversation_id, reply_to, text, int(speak), origin, now, now)).lastrowid
        db.execute("INSERT INTO outbox (message_id, action, platform, user_id, chat_id, text, speak, reply_to,"
                   " created_at) VALUES (?, 'send', ?, ?, ?, ?, ?, ?, ?)",
                   (message_id, platform, user_id, chat_id, text, int(speak), reply_to, now))
        return message_id

    def edit(self, message_id: int, text: str | None = None, append: str = "", prepend: str = "") -> LedgerMessage:
        """Replace a sent message's text (or add to its end or start): the ledger holds the new text and the bot
        edits the platform's copy."""
        with self._transaction() as db:
            row = db.execute("SELECT direction, platform_message_id, platform, user_id, chat_id, text FROM messages"
                             " WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise LedgerError(404, "message_not_found", f"there is no message {message_id}")
            direction, target, platform, user_id, chat_id, current = row
            text = f"{prepend}{current or ''}{append}" if text is None else text
            if direction != "out" or not target:
                raise LedgerError(409, "not_editable", "only a message June sent (and the platform took) can be "
                                                        "edited; this one is inbound or not delivered yet")
            now = self._clock()
            db.execute("UPDATE messages SET text = ?, updated_at = ? WHERE id = ?", (text, now, message_id))
            db.execute("INSERT INTO outbox (message_id, action, platform, user_id, chat_id, text, target, created_at)"
                       " VALUES (?, 'edit', ?, ?, ?, ?, ?, ?)", (message_id, platform, user_id, chat_id, text, target,
                                                                  now))
        return self.message(message_id)

    def pending(self, platform: str, users: tuple[str, ...], limit: int = 20) -> list[Delivery]:
        """What is queued for this platform, oldest first, for the users a caller may act for."""
        if not users:
            return []
        patterns = " OR ".join("user_id GLOB ?" for _ in users)  # GLOB matches as fnmatchcase does
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM outbox WHERE status = 'pending' AND"
                                    f" platform = ? AND ({patterns}) ORDER BY id LIMIT ?",
                                    (platform, *users, limit)).fetchall()
        return [_delivery(row) for row in rows]

    def attach_audio(self, delivery_id: int, audio: bytes) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET audio = ? WHERE id = ?", (audio, delivery_id))

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM outbox WHERE id = ?",
                                   (delivery_id,)).fetchone()
        return _delivery(row) if row else None

    def acknowledge(self, delivery_id: int, delivered: bool, platform_message_id: str | None,
                    detail: str | None) -> LedgerMessage:
        """The bot did (or could not do) a delivery; the second acknowledgement of one changes nothing."""
        with self._transaction() as db:
            row = db.execute("SELECT message_id, action, status FROM outbox WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise LedgerError(404, "delivery_not_found", f"there is no delivery {delivery_id}")
            message_id, action, status = row
            if status == "pending":
                self._finish(db, delivery_id, message_id, action, delivered, platform_message_id, detail)
        return self.message(message_id)

    def _finish(self, db: sqlite3.Connection, delivery_id: int, message_id: int, action: str, delivered: bool,
                platform_message_id: str | None, detail: str | None) -> None:
        now = self._clock()
        db.execute("UPDATE outbox SET status = ?, detail = ?, done_at = ? WHERE id = ?",
                   ("delivered" if delivered else "failed", detail, now, delivery_id))
        if action == "edit":
            db.execute("UPDATE messages SET detail = ?, updated_at = ? WHERE id = ?",
                       ("edited" if delivered else f"edit failed: {detail}", now, message_id))
            return
        db.execute("UPDATE messages SET status = ?, platform_message_id = ?, detail = ?, updated_at = ? WHERE id = ?",
                   ("sent" if delivered else "failed", platform_message_id, detail, now, message_id))
        db.execute("UPDATE inbox SET status = ?, detail = ?, updated_at = ? WHERE answer_id = ?",
                   ("RESPONDED" if delivered else "ERROR", None if delivered else detail, now, message_id))

    # -- reminders --------------------------------------------------------------------------------------
    def fire_due(self, late_after_s: float = LATE_AFTER_S) -> list[int]:
        """Queue every reminder that is due, once: the message and the reminder's next time (or its end) are
        written together, so no reminder fires twice and none is lost. Ids of the messages queued."""
        now = self._clock()
        queued = []
        with self._transaction() as db:
            rows = db.execute(f"SELECT {', '.join(REMINDER_COLUMNS)} FROM reminders WHERE status = 'scheduled' AND"
                              " due_at <= ? ORDER BY due_at", (now,)).fetchall()
            for reminder in map(Reminder.of_row, rows):
                queued.append(self._queue(db, reminder.platform, reminder.user_id, reminder.chat_id,
                                          reminder_text(reminder, now, late_after_s), True, "reminder",
                                          "timer" if reminder.timer else "reminder", reminder.conversation_id, None))
                following = next_after(reminder.recurrence, datetime.fromtimestamp(now, timezone.utc),
                                       zone(reminder.timezone)) if reminder.recurrence else None
                db.execute("UPDATE reminders SET fired = fired + 1, status = ?, due_at = ? WHERE id = ?",
                           ("scheduled" if following else "done",
                            following.timestamp() if following else reminder.due_at, reminder.id))
        return queued

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(due_at) FROM reminders WHERE status = 'scheduled'").fetchone()
        return row[0]

    # -- the owner's inbox ------------------------------------------------------------------------------
    def to_inbox(self, **message: Any) -> InboxItem:
        """A user's message for the owner to see (reported by the bot, which forwards it); NEW until answered."""
        recorded = self.record(**message)
        now = self._clock()
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO inbox (message_id, status, created_at, updated_at)"
                       " VALUES (?, 'NEW', ?, ?)", (recorded.id, now, now))
            row_id = db.execute("SELECT id FROM inbox WHERE message_id = ?", (recorded.id,)).fetchone()[0]
        return self.inbox_item(row_id)

    def inbox_item(self, item_id: int) -> InboxItem:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(INBOX_COLUMNS)} FROM inbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise LedgerError(404, "inbox_item_not_found", f"there is no inbox item {item_id}")
        return InboxItem(*row)

    def inbox(self, status: str | None = None, limit: int = 50) -> list[InboxItem]:
        sql = f"SELECT {', '.join(INBOX_COLUMNS)} FROM inbox"
        values: list[Any] = []
        if status:
            sql, values = sql + " WHERE status = ?", [status]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*values, min(limit, MAX_PAGE))).fetchall()
        return [InboxItem(*row) for row in rows]

    def answer_inbox(self, item_id: int, text: str) -> InboxItem:
        """The owner's answer: queued to the user as a reply to their message, once. NEW (or ERROR, to retry)
        becomes PROCESSING; the acknowledgement of the delivery makes it RESPONDED (or ERROR)."""
        with self._transaction() as db:
            row = db.execute("SELECT inbox.status, m.platform, m.user_id, m.chat_id, m.conversation_id,"
                             " m.platform_message_id FROM inbox JOIN messages m ON m.id = inbox.message_id"
                             " WHERE inbox.id = ?", (item_id,)).fetchone()
            if row is None:
                raise LedgerError(404, "inbox_item_not_found", f"there is no inbox item {item_id}")
            status, platform, user_id, chat_id, conversation_id, asked = row
            if status not in ("NEW", "ERROR"):
                raise LedgerError(409, "already_answered", f"inbox item {item_id} is {status}: it has an answer")
            answer = self._queue(db, platform, user_id, chat_id, text, False, "inbox", "text", conversation_id, asked)
            db.execute("UPDATE inbox SET status = 'PROCESSING', answer_id = ?, detail = NULL, updated_at = ?"
                       " WHERE id = ?", (answer, self._clock(), item_id))
        return self.inbox_item(item_id)
