"""Per-client keys, the namespaces they act for, and the Host/Origin rules, without a graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from api.callers import BrowserCheck, Keys, KeysFileError
from common.settings import JuneSettings
from tests.secret_files import private_file

TELEGRAM_KEY = "tg-" + "a" * 40
OWNER_KEY = "owner-" + "b" * 40


def settings(tmp_path: Path, **values) -> JuneSettings:
    return JuneSettings(_env_file=None, data_dir=tmp_path, **values)


def keys_file(tmp_path: Path, text: str) -> Path:
    return private_file(tmp_path / "keys.toml", text)


def test_each_key_acts_only_for_its_namespaces(tmp_path: Path) -> None:
    digest = hashlib.sha256(OWNER_KEY.encode()).hexdigest()
    path = keys_file(tmp_path, f'[clients.telegram]\nkey = "{TELEGRAM_KEY}"\nusers = ["telegram:*"]\n\n'
                               f'[clients.owner]\nkey_sha256 = "{digest}"\nusers = ["*"]\nadmin = true\n')
    keys = Keys.from_settings(settings(tmp_path, api_keys_file=path))
    telegram, owner = keys.caller(TELEGRAM_KEY), keys.caller(OWNER_KEY)
    assert telegram is not None and telegram.name == "telegram" and not telegram.admin
    assert telegram.may_act_for("telegram:1001") and telegram.may_act_for("telegram")
    assert not telegram.may_act_for("discord:1001") and not telegram.may_act_for("owner")
    assert not telegram.may_act_for("telegramx:1") and not telegram.may_act_for("xtelegram:1")
    assert owner is not None and owner.admin and owner.may_act_for("discord:7") and owner.default_user == "owner"
    assert keys.caller("wrong") is None and keys.caller("") is None and keys.caller(TELEGRAM_KEY + " ") is None


def test_the_single_api_key_is_the_owner(tmp_path: Path) -> None:
    keys = Keys.from_settings(settings(tmp_path, api_key=SecretStr(OWNER_KEY)))
    assert keys.required and keys.configured and keys.caller(OWNER_KEY).may_act_for("telegram:1")
    assert keys.caller(OWNER_KEY).default_user == "owner"
    assert not (tmp_path / "owner.key").exists()  # a configured key needs no owner key file
    assert not Keys.from_settings(settings(tmp_path, auth="none")).required


@pytest.mark.parametrize(("text", "problem"), [
    ("not toml [", "not valid TOML"),
    ("[clients]\n", "clients"),
    (f'[clients.a]\nkey = "{TELEGRAM_KEY}"\n', "users"),
    ('[clients.a]\nkey = "short"\nusers = ["*"]\n', "key"),
    (f'[clients.a]\nkey = "{TELEGRAM_KEY}"\nkey_sha256 = "{"0" * 64}"\nusers = ["*"]\n', "exactly one"),
    ('[clients.a]\nusers = ["*"]\n', "exactly one"),
    (f'[clients.a]\nkey = "{TELEGRAM_KEY}"\nusers = ["*"]\nrole = "root"\n', "role"),
    (f'[clients."a b"]\nkey = "{TELEGRAM_KEY}"\nusers = ["*"]\n', "client name"),
    (f'[clients.a]\nkey = "{TELEGRAM_KEY}"\nusers = ["*"]\n[clients.b]\nkey = "{TELEGRAM_KEY}"\nusers = ["x"]\n',
     "same key"),
])
def test_a_malformed_keys_file_is_refused_without_echoing_keys(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(KeysFileError) as error:
        Keys.from_settings(settings(tmp_path, api_keys_file=keys_file(tmp_path, text)))
    assert problem in str(error.value) and TELEGRAM_KEY not in str(error.value)


def test_a_missing_keys_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="No such file"):
        Keys.from_settings(settings(tmp_path, api_keys_file=tmp_path / "absent.toml"))


def test_other_machines_are_let_in_only_with_a_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="JUNE_API_KEYS_FILE"):
        settings(tmp_path, host="0.0.0.0")
    assert settings(tmp_path, host="0.0.0.0", api_key=SecretStr(OWNER_KEY)).host == "0.0.0.0"


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True), ("LOCALHOST", True),
    ("attacker.example", False), ("attacker.example:8000", False), ("127.0.0.1.nip.io:8000", False),
    ("", False), ("127.0.0.1@evil.example", False),
])
def test_without_keys_only_this_machines_names_are_answered(tmp_path: Path, host: str, allowed: bool) -> None:
    check = BrowserCheck(settings(tmp_path), keys_configured=False)
    assert (check.host_problem(host) is None) is allowed


def test_with_keys_the_host_is_checked_only_when_names_are_given(tmp_path: Path) -> None:
    assert BrowserCheck(settings(tmp_path), keys_configured=True).host_problem("june.example") is None
    named = BrowserCheck(settings(tmp_path, allowed_hosts="june.example"), keys_configured=True)
    assert named.host_problem("june.example:443") is None and named.host_problem("other.example") is not None
    assert BrowserCheck(settings(tmp_path, allowed_hosts="*"), keys_configured=False).host_problem("x.example") is None


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True), ("http://127.0.0.1:8000", True), ("http://127.0.0.1:8000/", True),
    ("http://evil.example", False), ("null", False), ("http://127.0.0.1:9999", False),
    ("https://127.0.0.1:8000", False), ("https://app.example", True),
])
def test_only_same_origin_or_listed_pages_may_call(tmp_path: Path, origin: str | None, allowed: bool) -> None:
    check = BrowserCheck(settings(tmp_path, allowed_origins="https://app.example"), keys_configured=False)
    assert (check.origin_problem(origin, "127.0.0.1:8000", "http") is None) is allowed
