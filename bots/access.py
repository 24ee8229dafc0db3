"""Who a bot serves: owners and an allow-list; strangers are ignored, counted, and logged once."""

from __future__ import annotations

import enum
import logging
from collections import Counter

log = logging.getLogger("june.bots.access")


class Role(enum.Enum):
    OWNER = "owner"
    ALLOWED = "allowed"
    STRANGER = "stranger"


class AccessPolicy:
    """Owners and allowed users of one platform, by numeric user ID."""

    def __init__(self, platform: str, owners: frozenset[int], allowed: frozenset[int]):
        self.platform = platform
        self.owners = owners
        self.allowed = allowed
        self.strangers: Counter[int] = Counter()

    def role(self, user_id: int) -> Role:
        if user_id in self.owners:
            return Role.OWNER
        if user_id in self.allowed:
            return Role.ALLOWED
        return Role.STRANGER

    def admit(self, user_id: int) -> Role | None:
        """The user's role, or None (counted, and logged the first time) for a stranger."""
        role = self.role(user_id)
        if role is not Role.STRANGER:
            return role
        self.strangers[user_id] += 1
        if self.strangers[user_id] == 1:
            log.info("ignoring a user who is neither owner nor allowed",
                     extra={"platform": self.platform, "user_id": user_id})
        return None
