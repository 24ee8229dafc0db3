"""The answers kept by Idempotency-Key: claimed once, replayed, released on failure, taken over when stale."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.errors import ApiError
from api.idempotency import STALE_AFTER_S, AnswerStore, fingerprint


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> AnswerStore:
    return AnswerStore(tmp_path / "requests.sqlite3", ttl_s=3600, wait_s=0.5, clock=clock)


def claim(store: AnswerStore, key: str = "k", body: str = "a", caller: str = "bot"):
    return asyncio.run(store.claim(caller, key, "telegram:1", fingerprint(body)))


def test_the_first_claim_runs_and_a_retry_gets_its_answer(store: AnswerStore) -> None:
    first = claim(store)
    assert first.stored is None
    store.finish(first, {"reply": "hi"})
    assert claim(store).stored == {"reply": "hi"}
    assert claim(store, caller="other").stored is None  # keys belong to one caller


def test_a_running_claim_makes_a_retry_wait_then_409(store: AnswerStore) -> None:
    claim(store)
    with pytest.raises(ApiError) as busy:
        claim(store)
    assert busy.value.status == 409 and busy.value.code == "idempotency_key_in_use"


def test_a_failed_request_releases_its_key(store: AnswerStore) -> None:
    store.release(claim(store))
    assert claim(store).stored is None


def test_a_different_body_under_a_used_key_is_refused(store: AnswerStore) -> None:
    store.finish(claim(store), {"reply": "hi"})
    with pytest.raises(ApiError) as reused:
        claim(store, body="b")
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")


def test_a_claim_of_a_dead_process_is_taken_over_and_old_answers_expire(store: AnswerStore, clock: Clock) -> None:
    claim(store)
    clock.now += STALE_AFTER_S + 1
    taken = claim(store)
    assert taken.stored is None
    store.finish(taken, {"reply": "late"})
    clock.now += 3601
    assert claim(store).stored is None


def test_forgetting_a_user_drops_their_answers(store: AnswerStore) -> None:
    store.finish(claim(store), {"reply": "secret"})
    assert store.forget_user("telegram:1") == 1 and claim(store).stored is None


def test_fingerprints_separate_their_parts() -> None:
    assert fingerprint("ab", "c") != fingerprint("a", "bc") and fingerprint(b"x") == fingerprint("x")
