"""Every message a bot receives or sends, in SQLite: what came in, what the model said, what was sent.

Inbound rows are the bot's work queue too: a message is stored before anything else happens, and
one still `pending` when the bot stops is answered after the restart. Outbound rows are written
(`queued`) before they are sent, so a restart sends only the parts that did not go out. An answer's
text goes out before its voice note. Each try at answering counts in `attempts`, so a message that
keeps failing (or kills the bot) is given up as `failed` instead of being retried at every start.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bots.rendering import Rendered
from common.sqlite import open_store, transaction
from common.store_files import BOT_MESSAGES

FINAL_STATUSES = ("answered", "failed", "ignored", "sent", "edited")
# What an export leaves out: blobs, and the bookkeeping of other rows.
EXPORTED_COLUMNS = ("id", "direction", "kind", "chat_id", "message_id", "reply_to", "created_at", "raw_text",
                    "rendered_text", "parse_mode", "split_index", "split_count", "status", "detail", "public")


@dataclass(frozen=True)
class Inbound:
    id: int
    platform: str
    kind: str  # "text", "voice" or "command"
    chat_id: str
    user_id: str
    message_id: str
    text: str | None
    media: dict | None  # where to fetch a voice note from, e.g. {"file_id": ...} or {"url": ...}
    public: bool = False  # said in a group or guild channel: June answers without the user's private data
    attempts: int = 0  # earlier tries at answering it


@dataclass(frozen=True)
class Outbound:
    id: int
    kind: str  # "text", "voice" or "file"
    chat_id: str
    rendered_text: str | None
    parse_mode: str | None
    audio: bytes | None  # a voice note's or a file's bytes
    status: str
    filename: str | None = None
    message_id: str | None = None  # the platform's, once sent


class MessageHistory:
    def __init__(self, path: Path):
        self.db = open_store(path, BOT_MESSAGES)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def receive(self, platform: str, kind: str, chat_id: str, user_id: str, message_id: str,
                text: str | None, media: dict | None = None, *, public: bool = False) -> Inbound | None:
        """Store an inbound message as `pending`; None when it was stored before (a redelivery)."""
        now = time.time()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO messages (platform, direction, kind, chat_id, user_id, message_id, created_at,"
            " updated_at, raw_text, status, media, public) VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (platform, kind, chat_id, user_id, message_id, now, now, text, json.dumps(media) if media else None,
             int(public)))
        if cursor.rowcount == 0:
            return None
        return Inbound(cursor.lastrowid, platform, kind, chat_id, user_id, message_id, text, media, public)

    def ignore(self, platform: str, kind: str, chat_id: str, user_id: str, message_id: str) -> None:
        """A stranger's message: recorded without its content."""
        now = time.time()
        self.db.execute(
            "INSERT OR IGNORE INTO messages (platform, direction, kind, chat_id, user_id, message_id, created_at,"
            " updated_at, status) VALUES (?, 'in', ?, ?, ?, ?, ?, ?, 'ignored')",
            (platform, kind, chat_id, user_id, message_id, now, now))

    def pending(self, platform: str) -> list[Inbound]:
        rows = self.db.execute("SELECT * FROM messages WHERE platform = ? AND direction = 'in' AND status = 'pending'"
                               " ORDER BY id", (platform,)).fetchall()
        return [Inbound(r["id"], r["platform"], r["kind"], r["chat_id"], r["user_id"], r["message_id"],
                        r["raw_text"], json.loads(r["media"]) if r["media"] else None, bool(r["public"]),
                        r["attempts"]) for r in rows]

    def attempt(self, inbound: Inbound) -> int:
        """Count one more try at answering `inbound` (stored before the try); the tries so far."""
        self.db.execute("UPDATE messages SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                        (time.time(), inbound.id))
        row = self.db.execute("SELECT attempts FROM messages WHERE id = ?", (inbound.id,)).fetchone()
        return row["attempts"] if row else inbound.attempts + 1

    def finish(self, inbound: Inbound, status: str, detail: str | None = None) -> None:
        """Close an inbound message: `answered` or `failed`."""
        self.db.execute("UPDATE messages SET status = ?, detail = ?, updated_at = ? WHERE id = ?",
                        (status, detail, time.time(), inbound.id))

    def queue(self, inbound: Inbound, raw_text: str, rendered: Rendered, audio: bytes | None,
              transcript: str | None, file: tuple[str, bytes] | None = None,
              speech_problem: str | None = None) -> list[Outbound]:
        """The whole answer as `queued` outbound rows (and a voice note's transcript), in one transaction.

        The text parts come first, then a file (an export), then the voice note: the text is what must
        arrive, the voice a courtesy. `speech_problem` records why an answer that should have been spoken
        has no voice note.
        """
        now = time.time()
        problems = ["fallback: " + "; ".join(rendered.problems)] if rendered.problems else []
        if speech_problem:
            problems.append(f"no voice: {speech_problem}")
        detail = "; ".join(problems) or None
        rows = [("text", p.text, p.parse_mode, p.index, p.count, None, None) for p in rendered.parts]
        if file:
            rows.append(("file", None, None, None, None, file[1], json.dumps({"filename": file[0]})))
        if audio:
            rows.append(("voice", None, None, None, None, audio, None))
        with transaction(self.db):
            if transcript is not None:
                self.db.execute("UPDATE messages SET raw_text = ? WHERE id = ?", (transcript, inbound.id))
            for kind, rendered, mode, index, count, blob, media in rows:
                self.db.execute(
                    "INSERT INTO messages (platform, direction, kind, chat_id, user_id, reply_to, created_at,"
                    " updated_at, raw_text, rendered_text, parse_mode, split_index, split_count, status, detail, audio,"
                    " media, public) VALUES (?, 'out', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                    (inbound.platform, kind, inbound.chat_id, inbound.user_id, inbound.id, now, now, raw_text,
                     rendered, mode, index, count, detail if kind == "text" else None, blob, media,
                     int(inbound.public)))
        return self.unsent(inbound)

    def unsent(self, inbound: Inbound) -> list[Outbound]:
        """Parts not yet sent, text first (rows queued before text went first had the voice first)."""
        rows = self.db.execute("SELECT * FROM messages WHERE reply_to = ? AND status = 'queued'"
                               " ORDER BY kind = 'voice', id", (inbound.id,)).fetchall()
        return [Outbound(r["id"], r["kind"], r["chat_id"], r["rendered_text"], r["parse_mode"], r["audio"],
                         r["status"], json.loads(r["media"]).get("filename") if r["media"] else None) for r in rows]

    def has_answer(self, inbound: Inbound) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE reply_to = ? AND kind != 'progress' LIMIT 1",
                               (inbound.id,)).fetchone() is not None

    def answer_together(self, last: Inbound, others: list[Inbound], text: str) -> Inbound:
        """`last` becomes the text question of the whole group; the others are answered with it."""
        now = time.time()
        with transaction(self.db):
            self.db.execute("UPDATE messages SET kind = 'text', raw_text = ?, updated_at = ? WHERE id = ?",
                            (text, now, last.id))
            for other in others:
                self.db.execute("UPDATE messages SET status = 'answered', detail = ?, updated_at = ? WHERE id = ?",
                                (f"answered together with row {last.id}", now, other.id))
        return Inbound(last.id, last.platform, "text", last.chat_id, last.user_id, last.message_id, text, last.media,
                       last.public, last.attempts)

    def progress_sent(self, inbound: Inbound, message_id: str, text: str) -> None:
        now = time.time()
        self.db.execute("INSERT INTO messages (platform, direction, kind, chat_id, user_id, message_id, reply_to,"
                        " created_at, updated_at, raw_text, rendered_text, status, public) VALUES"
                        " (?, 'out', 'progress', ?, ?, ?, ?, ?, ?, ?, ?, 'sent', ?)",
                        (inbound.platform, inbound.chat_id, inbound.user_id, message_id, inbound.id, now, now, text,
                         text, int(inbound.public)))

    def progress_message(self, inbound: Inbound) -> Outbound | None:
        """The progress message sent while `inbound` was being answered: `sent`, or `edited` into the answer."""
        r = self.db.execute("SELECT * FROM messages WHERE reply_to = ? AND kind = 'progress' LIMIT 1",
                            (inbound.id,)).fetchone()
        return Outbound(r["id"], r["kind"], r["chat_id"], r["rendered_text"], None, None, r["status"],
                        message_id=r["message_id"]) if r else None

    def progress_used(self, progress: Outbound) -> None:
        self.db.execute("UPDATE messages SET status = 'edited', updated_at = ? WHERE id = ?",
                        (time.time(), progress.id))

    def forwarded(self, platform: str, chat_id: str, message_id: str, inbox_id: int) -> None:
        """A copy of a user's message in an owner's chat, and the inbox item it stands for."""
        self.db.execute("INSERT OR REPLACE INTO forwards VALUES (?, ?, ?, ?)",
                        (platform, chat_id, message_id, inbox_id))

    def inbox_item_of(self, platform: str, chat_id: str, message_id: str) -> int | None:
        row = self.db.execute("SELECT inbox_id FROM forwards WHERE platform = ? AND chat_id = ? AND message_id = ?",
                              (platform, chat_id, message_id)).fetchone()
        return row[0] if row else None

    def unreported(self, platform: str, limit: int = 50) -> list[sqlite3.Row]:
        """Finished rows the graph's ledger has not had yet, oldest first."""
        marks = ", ".join("?" for _ in FINAL_STATUSES)
        return self.db.execute(f"SELECT * FROM messages WHERE platform = ? AND reported = 0 AND status IN ({marks})"
                               " ORDER BY id LIMIT ?", (platform, *FINAL_STATUSES, limit)).fetchall()

    def reported(self, row_id: int) -> None:
        self.db.execute("UPDATE messages SET reported = 1 WHERE id = ?", (row_id,))

    def sent(self, outbound: Outbound, message_id: str, *, parse_mode: str | None, detail: str | None = None) -> None:
        """Mark a part delivered; `parse_mode`/`detail` record a plain-text resend the platform forced."""
        self.db.execute("UPDATE messages SET status = 'sent', message_id = ?, parse_mode = ?,"
                        " detail = COALESCE(?, detail), audio = NULL, updated_at = ? WHERE id = ?",
                        (message_id, parse_mode, detail, time.time(), outbound.id))

    def failed(self, outbound: Outbound, detail: str) -> None:
        self.db.execute("UPDATE messages SET status = 'failed', detail = COALESCE(detail || '; ', '') || ?,"
                        " audio = NULL, updated_at = ? WHERE id = ?", (detail, time.time(), outbound.id))

    def is_ours(self, platform: str, chat_id: str, message_id: str) -> bool:
        """Whether the bot sent this platform message (a reply to it is addressed to the bot)."""
        return self.db.execute("SELECT 1 FROM messages WHERE platform = ? AND chat_id = ? AND direction = 'out'"
                               " AND message_id = ? LIMIT 1", (platform, chat_id, message_id)).fetchone() is not None

    def forget_user(self, platform: str, user_id: str) -> int:
        """Delete every row of one user's messages, in and out; the number of rows deleted."""
        with transaction(self.db):
            cursor = self.db.execute("DELETE FROM messages WHERE platform = ? AND user_id = ?", (platform, user_id))
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and out of the log's old pages
        return cursor.rowcount

    def export_user(self, platform: str, user_id: str) -> list[dict]:
        """One user's messages, in and out, without audio or file contents."""
        rows = self.db.execute(f"SELECT {', '.join(EXPORTED_COLUMNS)} FROM messages WHERE platform = ? AND user_id = ?"
                               " ORDER BY id", (platform, user_id)).fetchall()
        return [{**dict(row), "public": bool(row["public"])} for row in rows]

    def query(self, platform: str | None, user_id: str | None, limit: int) -> list[sqlite3.Row]:
        clauses, values = [], []
        if platform:
            clauses.append("platform = ?")
            values.append(platform)
        if user_id:
            clauses.append("user_id = ?")
            values.append(user_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.execute(f"SELECT id, platform, direction, kind, chat_id, user_id, message_id, reply_to,"
                               f" created_at, raw_text, rendered_text, parse_mode, split_index, split_count, status,"
                               f" detail, public, attempts FROM messages {where} ORDER BY id DESC LIMIT ?",
                               (*values, limit)).fetchall()
        return rows[::-1]
