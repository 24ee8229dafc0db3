"""Secrets at rest, as ssh treats private keys: files holding keys or tokens, and the data dir, stay the owner's.

A keys file or a `.env` holding tokens that other users can read is refused at start (or, with
`JUNE_ALLOW_READABLE_SECRETS=true`, only warned about); the data dir is made 0700; Ray's auth token is
made 0600 once Ray has written it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

log = logging.getLogger("june.secrets")

GROUP_OR_OTHER_READ = stat.S_IRGRP | stat.S_IROTH
GROUP_OR_OTHER_ANY = stat.S_IRWXG | stat.S_IRWXO
ALLOW_SETTING = "JUNE_ALLOW_READABLE_SECRETS"
# A variable in a .env whose name says it holds a secret: JUNE_API_KEY, JUNE_TELEGRAM_TOKEN, ..._SECRET ...
SECRET_NAME = re.compile(r"^\s*(?:export\s+)?[A-Za-z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Za-z0-9_]*\s*=\s*\S",
                         re.IGNORECASE)
RAY_TOKEN_PATH_VARIABLE = "RAY_AUTH_TOKEN_PATH"


class ReadableSecret(PermissionError):
    """A file holding secrets that other users can read; the message names it and the fix, never its contents."""


def check_secret_file(path: Path, what: str, *, allow_readable: bool) -> None:
    """Refuse (or warn about, when allowed) `path` if group or others may read it; a missing file is not checked."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & GROUP_OR_OTHER_READ:
        return
    problem = (f"{what} {path} can be read by other users (mode {mode:04o}): run `chmod 600 {path}`, "
               f"or set {ALLOW_SETTING}=true to only warn")
    if not allow_readable:
        raise ReadableSecret(problem)
    log.warning("a file of secrets can be read by other users", extra={"path": str(path), "mode": f"{mode:04o}"})


def env_file_holds_secrets(path: Path) -> bool:
    """Whether a `.env` sets a variable named like a secret (…KEY, …TOKEN, …SECRET, …PASSWORD) to a value."""
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False
    return any(SECRET_NAME.match(line) for line in text.splitlines())


def check_env_file(path: Path = Path(".env"), *, allow_readable: bool) -> None:
    """The `.env` that settings read from the working directory, checked when it holds keys or tokens."""
    if path.is_file() and env_file_holds_secrets(path):
        check_secret_file(path.absolute(), "the .env file", allow_readable=allow_readable)


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner may enter (0700): made so, or an existing one of ours tightened.

    A folder of another user's that others may enter is refused: June cannot make it private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & GROUP_OR_OTHER_ANY:
        if info.st_uid != os.geteuid():
            raise ReadableSecret(f"the data dir {path} (mode {mode:04o}) belongs to another user and others may "
                                 f"enter it: use a folder of your own, or `chmod 700 {path}` as its owner")
        path.chmod(0o700)
        log.warning("the data dir was open to other users; it is now 0700",
                    extra={"path": str(path), "mode_was": f"{mode:04o}"})
    return path


def ray_token_path() -> Path:
    """Where Ray reads and writes its auth token: `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`."""
    configured = os.environ.get(RAY_TOKEN_PATH_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".ray" / "auth_token"


def protect_ray_token(path: Path | None = None) -> Path | None:
    """Ray writes its token 0644 into a ~/.ray of default mode: make the token 0600 and Ray's own ~/.ray 0700 (a
    folder named by RAY_AUTH_TOKEN_PATH is the user's, and left alone). Returns the token's path, or None when
    there is none (Ray's token auth is off)."""
    path = path or ray_token_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_uid != os.geteuid():
        log.warning("Ray's auth token belongs to another user; its mode is left as it is", extra={"path": str(path)})
        return path
    if stat.S_IMODE(info.st_mode) & GROUP_OR_OTHER_ANY:
        path.chmod(0o600)
    folder = path.parent
    if folder == Path.home() / ".ray" and folder.stat().st_uid == os.geteuid() \
            and stat.S_IMODE(folder.stat().st_mode) & GROUP_OR_OTHER_ANY:
        folder.chmod(0o700)
    return path
