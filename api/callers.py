"""Who is calling: per-client API keys and the user namespaces each may act for, and the browser checks.

A keys file (`JUNE_API_KEYS_FILE`, TOML) names each client, its key (or the key's sha256) and the user ids
it may act for, as shell-style patterns:

    [clients.telegram]
    key_sha256 = "9f86d08…"          # or key = "…"
    users = ["telegram:*"]

    [clients.owner]
    key = "…"
    users = ["*"]
    admin = true

`JUNE_API_KEY` alone is one client, `owner`, that acts for everyone. With neither, the owner key June makes
in its data dir (common/owner_key.py) is that client. Then, as with `JUNE_AUTH=none` (no key at all: any
local user acts as the owner), June is the owner's own loopback service: it answers only Host names of this
machine, so a web page elsewhere (or a DNS name rebound to 127.0.0.1) cannot drive it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from api.errors import ApiError
from api.schemas import ID_PATTERN
from common.owner_key import OwnerKey, ensure_owner_key
from common.private_files import check_secret_file
from common.settings import JuneSettings
from common.types import OWNER

log = logging.getLogger("june.keys")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_KEY_CHARS = 512  # longer is no key of June's: refused before hashing


@dataclass(frozen=True)
class Caller:
    """A client as its key names it."""

    name: str
    users: tuple[str, ...]  # patterns of the user ids it may act for
    admin: bool = False

    def may_act_for(self, user_id: str) -> bool:
        return user_id == self.default_user or any(fnmatch.fnmatchcase(user_id, p) for p in self.users)

    @property
    def default_user(self) -> str:
        """Whom a request without a user_id is for: the client itself (the owner key's: `owner`)."""
        return self.name


OWNER_CLIENT = Caller(OWNER, ("*",), admin=True)  # JUNE_API_KEY's client, the owner key's, JUNE_AUTH=none's caller


class _Client(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, min_length=16)
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    users: list[str] = Field(min_length=1)
    admin: bool = False

    @model_validator(mode="after")
    def _one_key(self) -> _Client:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key or key_sha256")
        return self

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.key_sha256) if self.key_sha256 else _sha256(self.key or "")


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: dict[str, _Client] = Field(min_length=1)


class KeysFileError(ValueError):
    """The keys file is missing or malformed; the message names the problem, never a key."""


class Keys:
    """The clients June knows, found by the sha256 of their key (compared in constant time)."""

    def __init__(self, clients: dict[bytes, Caller], *, owner_key: OwnerKey | None = None):
        self._clients = clients
        self.owner_key = owner_key  # June's own key in its data dir, when no key was configured

    @property
    def configured(self) -> bool:
        """Keys the operator gave (JUNE_API_KEY, a keys file), for a June behind names of its own; with June's own
        owner key (or none) it stays the owner's loopback service."""
        return bool(self._clients) and self.owner_key is None

    @property
    def required(self) -> bool:
        return bool(self._clients)

    def caller(self, token: str) -> Caller | None:
        if not token or len(token) > MAX_KEY_CHARS:
            return None
        digest = _sha256(token)
        found = None
        for known, caller in self._clients.items():
            if hmac.compare_digest(known, digest):
                found = caller
        return found

    @classmethod
    def from_settings(cls, settings: JuneSettings) -> Keys:
        """The configured keys; without any, the owner key in the data dir (made at the first start), or with
        JUNE_AUTH=none none at all."""
        clients: dict[bytes, Caller] = {}
        if settings.api_keys_file is not None:
            clients |= _read_keys_file(settings.api_keys_file, settings.allow_readable_secrets)
        if settings.api_key is not None:
            clients[_sha256(settings.api_key.get_secret_value())] = OWNER_CLIENT
        if clients:
            return cls(clients)
        if settings.auth == "none":
            log.warning("JUNE_AUTH=none: the API needs no key, so any user of this machine can act as the owner "
                        "(read every conversation, the message ledger, the inbox); unset it to use the owner key")
            return cls({})
        owner_key = ensure_owner_key(settings.data_dir)
        return cls({_sha256(owner_key.value): OWNER_CLIENT}, owner_key=owner_key)


def _read_keys_file(path: Path, allow_readable: bool) -> dict[bytes, Caller]:
    check_secret_file(path, "JUNE_API_KEYS_FILE", allow_readable=allow_readable)
    try:
        parsed = _KeysFile.model_validate(tomllib.loads(path.read_text()))
    except OSError as error:
        raise KeysFileError(f"JUNE_API_KEYS_FILE {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise KeysFileError(f"JUNE_API_KEYS_FILE {path} is not valid TOML: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_input=False))
        raise KeysFileError(f"JUNE_API_KEYS_FILE {path}: {problems}") from None
    clients: dict[bytes, Caller] = {}
    for name, client in parsed.clients.items():
        if not re.fullmatch(ID_PATTERN, name):
            raise KeysFileError(f"JUNE_API_KEYS_FILE {path}: client name {name!r}: letters, digits and . _ : @ - only")
        if client.digest in clients:
            raise KeysFileError(f"JUNE_API_KEYS_FILE {path}: clients {clients[client.digest].name!r} and {name!r} "
                                "have the same key")
        clients[client.digest] = Caller(name, tuple(client.users), client.admin)
    return clients


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class BrowserCheck:
    """Host and Origin rules: what stops another site's page, or a rebound DNS name, from using the API."""

    def __init__(self, settings: JuneSettings, keys_configured: bool):
        hosts = {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
        self.any_host = "*" in hosts
        # Deployments with keys of their own sit behind names of their own (a proxy, a cluster's DNS): check Host
        # only when told. The owner's loopback service (its owner key, or none) answers this machine's names.
        self.check_host = not self.any_host and (not keys_configured or bool(hosts))
        self.hosts = hosts | (LOOPBACK_HOSTS if not keys_configured or not hosts else set())
        self.origins = {o.strip().lower().rstrip("/") for o in settings.allowed_origins.split(",") if o.strip()}

    def host_problem(self, host_header: str) -> str | None:
        if not self.check_host:
            return None
        name = _host_name(host_header)
        return None if name in self.hosts else f"Host {name or '(none)'!r} is not one June answers"

    def origin_problem(self, origin: str | None, host_header: str, scheme: str) -> str | None:
        """A browser's cross-site request is refused; requests without an Origin (not browsers) pass."""
        if origin is None:
            return None
        origin = origin.strip().lower().rstrip("/")
        if origin in self.origins or origin == f"{scheme}://{host_header.strip().lower()}":
            return None
        return f"requests from the web page at {origin[:100]!r} are not allowed"


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    parsed = urlsplit(f"//{host}")
    return parsed.hostname or ""


def current_caller(request: Request) -> Caller:
    """The caller the Guard found for this request."""
    return request.state.caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def acting_for(caller: Caller, user_id: str | None) -> str:
    """The user a request is for; a key can never act for a user outside its namespaces."""
    user = user_id or caller.default_user
    if not caller.may_act_for(user):
        raise ApiError(403, f"this API key ({caller.name}) may not act for user {user[:128]!r}", "forbidden_user")
    return user
