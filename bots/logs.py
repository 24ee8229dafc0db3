"""JSON-lines logging for the bot processes (python-json-logger); `extra=` fields become keys.

Callers never pass secrets or users' texts; as a second line of defence, the bot's token and June's
API key are replaced by `[redacted]` wherever they would appear in a record, tracebacks included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
REDACTED = "[redacted]"


class RedactingFormatter(JsonFormatter):
    """python-json-logger's formatter, with known secrets cut out of the finished line."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__(FORMAT, rename_fields=RENAMED, json_ensure_ascii=False)
        self.secrets = sorted({secret for secret in secrets if secret and len(secret) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def configure_logging(level: int = logging.INFO, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL, and Telegram's URLs contain the bot token.
    for noisy in ("httpx", "httpcore", "telegram.ext.Updater", "discord.http", "discord.gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
