"""Answers kept by `Idempotency-Key`, so a retried POST gets the first answer instead of running again.

A key belongs to one caller. The first request with it claims the key and runs; its 2xx answer is stored
(in SQLite, for `JUNE_IDEMPOTENCY_TTL_S`). A retry with the same body gets that answer; one sent while the
first still runs waits for it; a different body under a used key is refused. A failed request releases
the key, so its retry runs again. A claim whose process died is taken over after `STALE_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common.sqlite import open_store, purge_wal, transaction
from common.store_files import REQUESTS
from api.errors import ApiError

KEY_PATTERN = r"^[A-Za-z0-9._:@\-]{1,200}$"
STALE_AFTER_S = 600.0
POLL_S = 0.2


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@dataclass
class Claim:
    """The right to run a request (`stored is None`), or the answer it already got."""

    caller: str
    key: str
    stored: dict | None = None


class AnswerStore:
    def __init__(self, path: Path, ttl_s: float, wait_s: float, clock=time.time):
        self._lock = threading.Lock()
        self._db = open_store(path, REQUESTS)
        self.ttl_s, self.wait_s, self._clock = ttl_s, wait_s, clock

    async def claim(self, caller: str, key: str, user_id: str, fingerprint: str) -> Claim:
        deadline = time.monotonic() + self.wait_s
        while True:
            state = await asyncio.to_thread(self._try_claim, caller, key, user_id, fingerprint)
            if isinstance(state, Claim):
                return state
            if time.monotonic() > deadline:
                raise ApiError(409, "a request with this Idempotency-Key is still running; retry later",
                               "idempotency_key_in_use", {"Retry-After": "5"})
            await asyncio.sleep(POLL_S)

    def _try_claim(self, caller: str, key: str, user_id: str, fingerprint: str) -> Claim | None:
        now = self._clock()
        with self._lock, transaction(self._db):
            self._db.execute("DELETE FROM answers WHERE created_at < ?", (now - self.ttl_s,))
            row = self._db.execute("SELECT fingerprint, state, body, created_at FROM answers "
                                   "WHERE caller = ? AND key = ?", (caller, key)).fetchone()
            if row is not None and row[0] != fingerprint:
                raise ApiError(422, "this Idempotency-Key was used for a different request", "idempotency_key_reused")
            if row is not None and row[1] == "done":
                return Claim(caller, key, json.loads(row[2]))
            if row is not None and now - row[3] < STALE_AFTER_S:
                return None  # still running elsewhere
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, 'running', NULL, ?)",
                             (caller, key, user_id, fingerprint, now))
        return Claim(caller, key)

    def finish(self, claim: Claim, body: dict) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("UPDATE answers SET state = 'done', body = ? WHERE caller = ? AND key = ?",
                             (json.dumps(body), claim.caller, claim.key))

    def release(self, claim: Claim) -> None:
        with self._lock, transaction(self._db):
            self._db.execute("DELETE FROM answers WHERE caller = ? AND key = ? AND state = 'running'",
                             (claim.caller, claim.key))

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            with transaction(self._db):
                deleted = self._db.execute("DELETE FROM answers WHERE user_id = ?", (user_id,)).rowcount
            purge_wal(self._db)
        return deleted

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
