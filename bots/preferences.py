"""Per-user voice replies, per-chat conversation generations (a /reset starts a new one), and the
`/forget me` requests waiting for their confirmation."""

from __future__ import annotations

import time
from pathlib import Path

from common.sqlite import open_store, transaction
from common.store_files import BOT_MESSAGES


class Preferences:
    def __init__(self, path: Path):
        self.db = open_store(path, BOT_MESSAGES)

    def close(self) -> None:
        self.db.close()

    def voice_replies(self, platform: str, user_id: str) -> bool:
        row = self.db.execute("SELECT enabled FROM voice_replies WHERE platform = ? AND user_id = ?",
                              (platform, user_id)).fetchone()
        return bool(row and row[0])

    def set_voice_replies(self, platform: str, user_id: str, enabled: bool) -> None:
        self.db.execute("INSERT INTO voice_replies VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET enabled = excluded.enabled",
                        (platform, user_id, int(enabled)))

    def conversation_id(self, platform: str, chat_id: str) -> str:
        """`telegram:<chat>` at first, `telegram:<chat>:<n>` after the n-th /reset."""
        row = self.db.execute("SELECT generation FROM conversations WHERE platform = ? AND chat_id = ?",
                              (platform, chat_id)).fetchone()
        generation = row[0] if row else 0
        return f"{platform}:{chat_id}" + (f":{generation}" if generation else "")

    def reset(self, platform: str, chat_id: str) -> None:
        self.db.execute("INSERT INTO conversations VALUES (?, ?, 1)"
                        " ON CONFLICT DO UPDATE SET generation = generation + 1", (platform, chat_id))

    def request_forget(self, platform: str, user_id: str) -> None:
        self.db.execute("INSERT INTO forget_requests VALUES (?, ?, ?)"
                        " ON CONFLICT DO UPDATE SET requested_at = excluded.requested_at",
                        (platform, user_id, time.time()))

    def take_forget_request(self, platform: str, user_id: str, within_s: float) -> bool:
        """Whether the user asked to be forgotten in the last `within_s` seconds; the request is used up."""
        row = self.db.execute("DELETE FROM forget_requests WHERE platform = ? AND user_id = ? RETURNING requested_at",
                              (platform, user_id)).fetchone()
        return bool(row) and 0 <= time.time() - row[0] <= within_s

    def cancel_forget(self, platform: str, user_id: str) -> bool:
        """Drop a waiting `/forget me` request; whether there was one."""
        return self.db.execute("DELETE FROM forget_requests WHERE platform = ? AND user_id = ?",
                               (platform, user_id)).rowcount > 0

    def export_user(self, platform: str, user_id: str) -> dict:
        return {"voice_replies": self.voice_replies(platform, user_id)}

    def forget_user(self, platform: str, user_id: str, chat_id: str) -> None:
        """A user's settings, and the conversation generation of their direct chat with the bot."""
        with transaction(self.db):
            self.db.execute("DELETE FROM voice_replies WHERE platform = ? AND user_id = ?", (platform, user_id))
            self.db.execute("DELETE FROM forget_requests WHERE platform = ? AND user_id = ?", (platform, user_id))
            self.db.execute("DELETE FROM conversations WHERE platform = ? AND chat_id = ?", (platform, chat_id))
