"""The voice page in a real headless Chromium (Debian's), driven by Playwright, talking to the real graph.

The microphone is a WAV file of a spoken question (Chromium's fake capture device, which loops it); the
page is used as a person would: hold the button, tap it twice, type, or switch on hands-free and talk over
June's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, sync_playwright

from benchmarks.browser import LEAD_IN_S, hold_to_talk, june_page, launch, spoken_question_wav, wait_for_reply
from speech.audio import decode
from speech.transcriber import engine_label
from tests.live_api import live_api
from tests.secret_files import private_file
from tests.speech import say, silence, words

AUDIO_HEARD = "window.june.stats.heardSeconds > 0.3"
KEY = "phone-" + "p" * 40


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def page_hearing(playwright: Playwright, graph, question: str, folder: Path, tail_s: float = 3.0):
    """The page, opened at the address June prints (the owner key in its fragment), in a browser whose microphone
    says `question` (then `tail_s` of silence, looped)."""
    speech = say(question, "wav")
    browser = launch(playwright, spoken_question_wav(speech, folder, tail_s=tail_s))
    return browser, june_page(browser, graph.url, graph.key), decode(speech).duration_s


def turns(graph, user: str, conversation: str) -> list:
    """What June holds for `user` in `conversation`, through the API (the page's event loop runs in this thread)."""
    with graph.client() as http:
        response = http.get(f"/v1/conversations/{conversation}", params={"user_id": user})
    return response.json()["turns"] if response.status_code == 200 else []


def last(page: Page, who: str) -> str:
    return page.locator(f"#log li.{who}").last.inner_text()


def test_hold_tap_and_type(playwright: Playwright, graph, tmp_path: Path) -> None:
    browser, opened, question_s = page_hearing(playwright, graph, "What is twelve times seven?", tmp_path)
    try:
        with opened as page:
            assert page.locator("#health").inner_text() == "ok"
            assert "key" not in page.url and page.evaluate("localStorage.getItem('june.key')") == graph.key
            user = page.evaluate("window.june.user")  # this browser's own user, not the owner's
            models = page.locator("#models").inner_text()
            assert engine_label(graph.settings) in models and graph.settings.engine_model_name in models

            hold_to_talk(page, LEAD_IN_S + question_s + 0.4)
            wait_for_reply(page, 1)
            assert {"twelve", "seven"} <= words(last(page, "you")) or "12" in last(page, "you")
            assert "84" in last(page, "june")
            page.wait_for_function(AUDIO_HEARD, timeout=30_000)  # the reply was played, not only received
            assert "total" in page.locator("#timings").inner_text()

            page.locator("#talk").click()  # a tap starts recording …
            assert page.locator("#talk").inner_text() == "Tap to send"
            page.wait_for_timeout((LEAD_IN_S + question_s + 3.0) * 1000)  # the file loops: a whole question again
            page.locator("#talk").click()  # … and a second tap sends it
            wait_for_reply(page, 2)
            assert "seven" in words(last(page, "you")) or "7" in last(page, "you")

            page.fill("#text", "What is two plus two?")
            page.press("#text", "Enter")
            wait_for_reply(page, 3)
            assert last(page, "you") == "What is two plus two?" and "4" in last(page, "june")

            conversation = page.evaluate("window.june.conversation")
            item = page.locator("#conversations li.current")
            assert item.count() == 1 and ("twelve" in words(item.inner_text()) or "12" in item.inner_text())
            page.reload()  # the conversation is kept in the browser and read back from June
            page.wait_for_function("document.querySelectorAll('#log li').length >= 6")
            assert page.evaluate("window.june.conversation") == conversation
            assert page.evaluate("window.june.user") == user and user.startswith("web:")
            assert len(turns(graph, user, conversation)) == 6 and turns(graph, "owner", conversation) == []
    finally:
        browser.close()


def test_hands_free_answers_and_stops_when_talked_over(playwright: Playwright, graph, tmp_path: Path) -> None:
    browser, opened, _ = page_hearing(playwright, graph, "Tell me a story about a brave little dragon.",
                                      tmp_path, tail_s=2.0)
    try:
        with opened as page:
            page.check("#hands-free")
            page.wait_for_selector("#log li.you", timeout=60_000)  # June heard the end of the turn
            page.click("#mute")  # the file loops: no second question until June speaks
            page.wait_for_function(AUDIO_HEARD, timeout=240_000)
            assert {"story", "dragon"} <= words(last(page, "you"))
            assert last(page, "june").strip()

            page.click("#mute")  # unmuted, the question comes again over June's answer
            page.wait_for_function("window.june.stats.interruptions >= 1", timeout=60_000)
            assert page.evaluate("document.querySelector('#player').paused")
            assert "(interrupted)" in page.locator("#log li.june").first.inner_text()
    finally:
        browser.close()


def test_a_keyed_june_asks_a_phone_for_its_key_once(playwright: Playwright, graph, tmp_path: Path) -> None:
    keys = private_file(tmp_path / "keys.toml", f'[clients.phone]\nkey = "{KEY}"\nusers = ["web:*"]\n')
    with live_api(graph.settings, api_keys_file=keys) as url:
        browser = launch(playwright, spoken_question_wav(silence(1.0), tmp_path))
        try:
            context = browser.new_context(permissions=["microphone"], base_url=url, is_mobile=True, has_touch=True,
                                          viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.goto("/")
            page.locator("#key-dialog").wait_for(state="visible")
            page.fill("#key", "not-the-key")
            page.click("#key-form button")
            page.wait_for_function("document.querySelector('#key-problem').textContent.includes('refused')")
            page.fill("#key", KEY)
            page.click("#key-form button")
            page.wait_for_function("document.querySelector('#health').textContent === 'ok'")

            page.reload()  # kept in the browser: not asked again
            page.wait_for_function("document.querySelector('#health').textContent === 'ok'")
            assert not page.locator("#key-dialog").is_visible()

            talk = page.locator("#talk").bounding_box()  # a phone: the button fits, the list is behind a toggle
            assert talk["x"] >= 0 and talk["x"] + talk["width"] <= 390 and talk["y"] + talk["height"] <= 844
            assert not page.locator("#conversations-panel").is_visible()
            page.locator("#toggle-conversations").tap()
            assert page.locator("#conversations-panel").is_visible()
            page.locator("#toggle-conversations").tap()

            page.locator("#hands-free").tap()  # the WebSocket takes the kept key in its start message
            page.wait_for_function("document.querySelector('#talk').textContent === 'Listening…'")
        finally:
            browser.close()
