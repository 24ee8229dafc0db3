"""The bots' settings, read from `JUNE_*` environment variables; one object per bot process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.owner_key import read_owner_key
from common.private_files import check_env_file

TELEGRAM_TOKEN_PATTERN = r"^\d{3,}:[A-Za-z0-9_-]{30,}$"
DISCORD_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$"

UserIds = Annotated[frozenset[int], NoDecode]


def _token_shape(pattern: str):
    """A validator that refuses a token not shaped like the platform's, without echoing it."""

    def check(token: SecretStr) -> SecretStr:
        if not re.fullmatch(pattern, token.get_secret_value().strip()):
            raise ValueError("is malformed (check that you copied the whole token)")
        return SecretStr(token.get_secret_value().strip())

    return check


def _parse_ids(value: object) -> object:
    """`"12, 34"` → {12, 34}; an empty string is no one."""
    if isinstance(value, int):
        return frozenset({value})
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValueError("must be numeric user IDs separated by commas")
        return frozenset(int(part) for part in parts)
    return value


class BotSettings(BaseSettings):
    """What every bot needs: where the graph is, where history goes, how hard to retry."""

    model_config = SettingsConfigDict(env_prefix="JUNE_", env_file=".env", extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = Field(None, description="Unset: the owner key June made in <data_dir>/owner.key.")
    data_dir: Path = Path("~/.local/share/june").expanduser()
    allow_readable_secrets: bool = Field(False, description="Only warn about a .env of tokens others can read.")
    api_timeout_s: float = Field(180.0, gt=0)
    api_retry_for_s: float = Field(120.0, ge=0, description="How long to keep retrying a busy or unreachable graph.")
    max_audio_bytes: int = Field(20 * 1024 * 1024, ge=1)
    forward_to_owners: bool = Field(False, description="Forward allowed non-owners' messages to the owners' inbox.")
    progress_after_s: float = Field(4.0, ge=0, description="A reply slower than this gets a progress message first.")
    stream_replies: bool = Field(True, description="Show a text answer as it is written, editing one message.")
    stream_edit_interval_s: float = Field(1.0, ge=0.2, description="The least time between two edits of a message.")
    group_window_s: float = Field(1.5, ge=0, le=30,
                                  description="Messages a user sends within this of each other are one request.")

    @model_validator(mode="after")
    def _private_secrets_and_a_key(self) -> BotSettings:
        """A .env of tokens others can read is refused (ReadableSecret); without JUNE_API_KEY, the owner key."""
        check_env_file(allow_readable=self.allow_readable_secrets)
        if self.api_key is None and (owner_key := read_owner_key(self.data_dir)) is not None:
            self.api_key = SecretStr(owner_key)
        return self

    @property
    def history_db(self) -> Path:
        return self.data_dir / "bot_messages.sqlite3"


def _webhook_secret(value: object) -> object:
    """Telegram's rule for a secret_token; empty means unset (a random one is made per start)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.strip()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value.strip()
    return value


class TelegramSettings(BotSettings):
    telegram_token: SecretStr
    telegram_owners: UserIds = frozenset()
    telegram_allowed: UserIds = frozenset()
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    telegram_local_mode: bool = Field(False, description="The self-hosted Bot API server runs with --local.")
    telegram_webhook_url: str | None = Field(None, description="Public HTTPS URL; set it to use a webhook.")
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(8443, ge=1, le=65535)
    telegram_webhook_secret: SecretStr | None = None
    telegram_poll_timeout_s: float = Field(10.0, ge=0)

    _ids = field_validator("telegram_owners", "telegram_allowed", mode="before")(_parse_ids)
    _token = field_validator("telegram_token")(_token_shape(TELEGRAM_TOKEN_PATTERN))
    _secret = field_validator("telegram_webhook_secret", mode="before")(_webhook_secret)


class DiscordSettings(BotSettings):
    discord_token: SecretStr
    discord_owners: UserIds = frozenset()
    discord_allowed: UserIds = frozenset()
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"

    _ids = field_validator("discord_owners", "discord_allowed", mode="before")(_parse_ids)
    _token = field_validator("discord_token")(_token_shape(DISCORD_TOKEN_PATTERN))
