"""The plan cache: cachetools' bounded LRU with expiry, and the hit and miss counts the trace reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

Value = TypeVar("Value")


class TtlLruCache(Generic[Value]):
    def __init__(self, max_entries: int = 256, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self._entries: TTLCache[Hashable, Value] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=clock)
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Value | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: Hashable, value: Value) -> None:
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}
