"""The owner's API key: made at June's first start as `<data dir>/owner.key` (0600, in a 0700 data dir), and read
from there by every local client (the CLIs, the bots, the benchmarks) that is given no key of its own.

Rotate it by deleting the file and starting June again. The page gets it once, from the URL June prints
(`http://127.0.0.1:8000/#key=…`: in the fragment, which browsers never send to a server or log).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from common.private_files import GROUP_OR_OTHER_ANY, private_dir

log = logging.getLogger("june.owner_key")

OWNER_KEY_FILE = "owner.key"
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}")  # token_urlsafe(32) is 43 of these


class OwnerKeyError(PermissionError):
    """The owner key file is unusable; the message names the file and the fix, never the key."""


@dataclass(frozen=True)
class OwnerKey:
    path: Path
    value: str = field(repr=False)
    created: bool = False  # made by this call: June's first start with this data dir (or after a rotation)


def owner_key_path(data_dir: Path) -> Path:
    return data_dir / OWNER_KEY_FILE


def page_url(base_url: str, key: str) -> str:
    """The page's address with the key in the fragment (never the query: a fragment is not sent or logged)."""
    return f"{base_url.rstrip('/')}/#key={key}"


def ensure_owner_key(data_dir: Path) -> OwnerKey:
    """The owner key in `data_dir`, made (atomically, 0600) when there is none; the data dir is made 0700.

    Several processes may start at once (Ingress replicas): the key is written to a private file of its own and
    linked into place, so each sees either no file or a whole one, and all of them end with the same key."""
    path = owner_key_path(private_dir(data_dir))
    existing = _read(path)
    if existing is not None:
        return OwnerKey(path, existing)
    key = secrets.token_urlsafe(32)
    draft = path.with_name(f".{OWNER_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(draft, path)  # fails if another process made one first: then that one is the key
    except FileExistsError:
        return OwnerKey(path, _read(path) or _unusable(path, "is empty"))
    finally:
        draft.unlink(missing_ok=True)
    log.info("made the owner key", extra={"path": str(path)})
    return OwnerKey(path, key, created=True)


def read_owner_key(data_dir: Path) -> str | None:
    """For clients: the owner key if this user can read it, else None (the API then answers 401, which says why)."""
    try:
        return _read(owner_key_path(data_dir))
    except OwnerKeyError as problem:
        log.warning("the owner key file is unusable", extra={"problem": str(problem)})
        return None
    except OSError:  # another user's June, a data dir we may not enter
        return None


def _read(path: Path) -> str | None:
    """The key in `path`, None if there is no file; a file others may read is made 0600 (it is June's own)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            _unusable(path, "is a symbolic link")
        raise
    with os.fdopen(descriptor) as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            _unusable(path, "is not a regular file")
        if stat.S_IMODE(info.st_mode) & GROUP_OR_OTHER_ANY and info.st_uid == os.geteuid():
            os.fchmod(file.fileno(), 0o600)
            log.warning("the owner key file was open to other users; it is now 0600 (rotate the key: delete the "
                        "file and restart June)", extra={"path": str(path)})
        key = file.read(256).strip()
    if not KEY_SHAPE.fullmatch(key):
        _unusable(path, "does not hold a key")
    return key


def _unusable(path: Path, problem: str) -> str:
    raise OwnerKeyError(f"the owner key file {path} {problem}: delete it and start June again to make a new key")
