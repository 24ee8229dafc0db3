"""How every June program (the CLIs, the bots) loads its settings: a problem — a value missing or invalid, secrets that
other users can read — is said in one line as `<program>: …`, never echoing a value (tokens are secrets), and the
program ends with status 2."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from common.private_files import ReadableSecret

Settings = TypeVar("Settings", bound=BaseSettings)
INVALID_SETTINGS = 2  # the exit status


def describe_settings_error(errors: list[dict]) -> str:
    """Pydantic errors as `JUNE_<NAME> problem`, never echoing the values."""
    problems = []
    for error in errors:
        name = "JUNE_" + "_".join(map(str, error["loc"][:1])).upper()
        message = "is not set" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        problems.append(f"{name} {message}")
    return "; ".join(problems)


def load_settings(kind: type[Settings], program: str) -> Settings | None:
    """The settings, or None after saying on stderr what is wrong with them."""
    try:
        return kind()
    except ValidationError as error:
        print(f"{program}: invalid settings: {describe_settings_error(error.errors())}", file=sys.stderr)
    except ReadableSecret as error:  # a .env of tokens that other users can read
        print(f"{program}: {error}", file=sys.stderr)
    return None
